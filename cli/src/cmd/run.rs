//! `zcsafe run`: the catalogue's policies with real system calls on the running kernel,
//! over loopback and veth pairs, judged by a verifying receiver — beside each policy's
//! expectation and the model's prediction for the measured kernel profile.
//! `--external CMD` judges any sender program that sends the stream pattern instead.

use crate::junit::JunitArgs;
use crate::known::{warn_stale, KnownArgs};
use crate::output::{self, Clock, TimingArgs};
use crate::table;
use anyhow::{bail, Context, Result};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use zcsafe_kernel::{
    default_geometry_for, try_run_policy, veth, ExternalOptions, ExternalOutcome, ReaderSpeed,
    RunOptions, Transport,
};
use zcsafe_model::window::{predict, Receiver};
use zcsafe_model::{CheckOptions, Scenario};
use zcsafe_policy::{
    junit, Align, Geometry, PeerScript, Profile, Results, Table, TraceProfile, Verdict,
};

#[derive(clap::Args)]
#[command(after_help = super::matrix::EXIT_STATUS_HELP)]
pub struct Args {
    #[command(flatten)]
    select: super::Selection,
    /// loopback, veth, veth-lossy, veth-slow, remote, tun (comma-separated) or all (the
    /// first four). veth* and tun need root; veth-lossy needs `nft` (Debian package
    /// nftables); remote needs a peer behind a real NIC in ZCSAFE_PEER_NETNS /
    /// ZCSAFE_PEER_ADDR (the VM guests set it up); tun is the remote class on this host:
    /// a TUN device and zcsafe's own TCP peer (see --peer).
    #[arg(long, short = 't', default_value = "loopback")]
    transport: String,
    /// What the tun transport's peer does, comma-separated: window=BYTES (advertised
    /// receive window, default 65536), drop=K (lose the first transmission of the K-th
    /// data segment: the kernel reads the page again to retransmit it), hold-acks[=MS]
    /// (send every ACK MS late, default 300: past the minimum RTO, so the retransmit
    /// queue keeps the pages and retransmits), seed=N (draw drop and window from N).
    /// Repeat --peer to run several variants, e.g. `--peer hold-acks --peer drop=3`.
    #[arg(long, value_name = "SCRIPT", value_parser = parse_peer)]
    peer: Vec<PeerScript>,
    /// A failure scenario file (TOML, as `zcsafe sim --scenario` reads it): its
    /// `lose = K` and `[peer]` table become one more --peer script (needs -t tun).
    #[arg(long, value_name = "FILE")]
    scenario: Option<std::path::PathBuf>,
    /// Percent of the sender's data segments veth-lossy drops.
    #[arg(long, default_value_t = zcsafe_kernel::transport::DEFAULT_LOSS_PCT, value_name = "PCT")]
    loss: u8,
    /// veth-slow's rate limit in kbit/s.
    #[arg(long, default_value_t = zcsafe_kernel::transport::DEFAULT_RATE_KBIT, value_name = "KBIT")]
    rate: u64,
    /// Stream length in bytes (a multiple of the 64 KiB chunk; default 1 MiB).
    #[arg(long, value_name = "N")]
    bytes: Option<u64>,
    /// Runs per policy and transport (at least 1); any corrupt run makes the verdict
    /// corrupt.
    #[arg(long, default_value_t = 3, value_name = "R",
          value_parser = crate::output::at_least_one::<u32>)]
    repeat: u32,
    /// Stream seed of the first run (run i uses seed + i), to rerun a finding.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How the receiver reads: fast, slow (default: widens the race window), crawl, or
    /// PAUSE_MS,SLICE_BYTES,INTERVAL_MS.
    #[arg(long, default_value = "slow")]
    reader: String,
    /// The verifying receiver's SO_RCVBUF: `auto` (default) gives each policy the window
    /// that exposes its failure — wide (524288 bytes, fixed) where the peer's queue holds
    /// the pages, the kernel's own where zero-copy pages wait unsent; `kernel` leaves the
    /// kernel's default and its autotuning; or a size in bytes.
    #[arg(long, default_value = "auto", value_name = "auto|kernel|BYTES",
          value_parser = parse_rcvbuf)]
    rcvbuf: Rcvbuf,
    /// Kernel profile for the expectations and the model's prediction: measured now
    /// (default), a built-in name, or a JSON file from `zcsafe probe --json`.
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
    /// Seconds any blocking operation may wait before the run is `stuck`.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
    /// Judge this sender program instead of the catalogue: `{host}` and `{port}` are
    /// replaced (also in env ZCSAFE_HOST, ZCSAFE_PORT). One finding of policy
    /// `external`: safe (intact while the kernel was seen holding stream bytes: exit 0),
    /// corrupt (exit 1), error (the run failed: exit 3), or inconclusive (intact, but the
    /// receiver never fell behind and the sender's socket never had bytes unacknowledged:
    /// exit 4).
    #[arg(long, value_name = "CMD", conflicts_with_all = ["policies", "all"])]
    external: Option<String>,
    /// Write consumed-byte counts back to an external sender (8-byte little endian).
    #[arg(long, requires = "external")]
    app_ack: bool,
    /// Run the external sender under the zero-copy sanitizer (`zcsafe sanitize`): every
    /// write to bytes an in-flight `MSG_ZEROCOPY` send still holds is a finding of its
    /// own, beside the receiver's verdict on the stream.
    #[arg(long, requires = "external")]
    sanitize: bool,
    /// Print one JSON object (`results`, as `check` does) instead of the table.
    #[arg(long)]
    json: bool,
    /// Leave out the traces of unsafe verdicts.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    timings: TimingArgs,
    #[command(flatten)]
    junit: JunitArgs,
    #[command(flatten)]
    known: KnownArgs,
}

/// The kernel backend refuses a link it cannot shape when it builds it, without knowing
/// which option set it; name the option here, before anything runs.
pub(crate) fn check_link_options(transports: &[Transport]) -> Result<()> {
    for t in transports {
        match *t {
            Transport::VethSlow { rate_kbit: 0 } => {
                bail!("invalid option: --rate must be positive")
            }
            Transport::VethLossy { loss_pct } if loss_pct >= 100 => {
                bail!("invalid option: --loss must be below 100")
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_peer(s: &str) -> Result<PeerScript, String> {
    PeerScript::parse(s).map_err(|e| e.to_string())
}

fn transports(args: &Args) -> Result<Vec<Transport>> {
    let mut out = Vec::new();
    for name in args.transport.split(',').map(str::trim) {
        if name == "all" {
            out.extend(Transport::all(args.loss, args.rate));
        } else {
            out.push(Transport::parse(name, args.loss, args.rate)?);
        }
    }
    let mut peers = args.peer.clone();
    if let Some(path) = &args.scenario {
        peers.push(zcsafe_policy::FailureScenario::load(path)?.peer_script());
    }
    if !peers.is_empty() {
        if !out.iter().any(|t| matches!(t, Transport::Tun(_))) {
            bail!("invalid option: --peer scripts the tun transport's peer; add -t tun");
        }
        // Each script is a variant of every tun transport asked for.
        out = out
            .into_iter()
            .flat_map(|t| match t {
                Transport::Tun(_) => peers.iter().map(|p| t.with_peer(*p)).collect(),
                t => vec![t],
            })
            .collect();
        out.dedup();
    }
    check_link_options(&out)?;
    for t in &out {
        if let Some(why) = veth::unavailable(t) {
            bail!("{why}; run as root, install what is missing, or use --transport loopback");
        }
    }
    Ok(out)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let known = args.known.load()?;
    let transports = transports(&args)?;
    let reader = args.reader.parse::<ReaderSpeed>()?;
    let timeout = Duration::from_secs(args.timeout.max(1));
    if let Some(cmd) = &args.external {
        return external(cmd, &args, &transports, reader, timeout, known);
    }
    let entries = args.select.entries()?;
    let profile = match &args.profile {
        Some(spec) => super::check::load_profile(spec)?,
        None => zcsafe_kernel::probe().profile,
    };
    // A UDP policy sends a chunk per datagram, so its chunks are smaller.
    let geometry_for = |socket| -> Result<Geometry> {
        let mut geometry = default_geometry_for(socket);
        if let Some(b) = args.bytes {
            geometry.stream = b;
            geometry.validate().with_context(|| {
                format!(
                    "--bytes {b} must be a positive multiple of {}",
                    geometry.chunk
                )
            })?;
        }
        Ok(geometry)
    };
    let geometry = geometry_for(zcsafe_policy::SocketKind::Tcp)?;
    for e in &entries {
        geometry_for(e.pipeline.socket)?;
    }
    let mut clock = Clock::start();
    let mut results = Results::default();
    // The model's prediction depends on policy, transport class and the receiver's window.
    let mut predictions = std::collections::HashMap::new();
    // Progress on stderr, a line per finding as it ends: widths from what can come.
    let mut progress = Table::new(["", "", "", ""])
        .indent("  ")
        .align(3, Align::Right);
    for e in &entries {
        progress.row([e.name.to_string(), String::new(), "unsupported".into()]);
    }
    for t in &transports {
        progress.row([String::new(), t.label()]);
    }
    let widths = progress.widths();
    for t in &transports {
        let class = t.class();
        let opts = RunOptions {
            transport: *t,
            geometry,
            seed: args.seed,
            repeat: args.repeat,
            reader,
            rcvbuf: None,
            sndbuf: None,
            op_timeout: timeout,
            run_timeout: timeout * 6,
            profile: match &args.profile {
                Some(_) => TraceProfile::Named(profile.name.clone()),
                None => TraceProfile::Probed(zcsafe_kernel::kernel_release()),
            },
            socket: zcsafe_policy::SocketKind::Tcp,
        };
        for e in &entries {
            // The policy's slots, in chunks of the run's size for its socket.
            let run = geometry_for(e.pipeline.socket)?;
            let geometry = e.pipeline.kernel_geometry(run.chunk, run.stream);
            let opts = RunOptions {
                rcvbuf: args.rcvbuf.for_window(e.window),
                socket: e.pipeline.socket,
                geometry,
                ..opts.clone()
            };
            let device = t.device().unwrap_or_default();
            let prediction = predictions
                .entry((e.name, class, device, opts.rcvbuf))
                .or_insert_with(|| {
                    // Behind the transport's own device: a TUN device copies zero-copy
                    // frags at transmission where a NIC reads them at TX completion.
                    let mut base =
                        Scenario::derived(&e.pipeline, class, profile.clone()).with_device(device);
                    // Predict for what the kernel run can reach: its 32-bit zerocopy
                    // counter never wraps within one stream.
                    base.geometry.zc_id_bits = geometry.zc_id_bits;
                    let receiver = Receiver {
                        rcvbuf: opts.rcvbuf,
                        chunk: geometry.chunk,
                    };
                    predict(
                        |s| e.build(&s.geometry).ok(),
                        &base,
                        &receiver,
                        &CheckOptions::default(),
                    )
                    .ok()
                    .flatten()
                })
                .clone();
            let predicted = prediction.as_ref().map(|p| p.verdict());
            let t0 = Instant::now();
            let report = try_run_policy(|g| e.build(g), e.name, &opts)
                .with_context(|| format!("running {} over {}", e.name, t.label()))?;
            let mut finding = report.to_finding(
                &e.expect_behind(device, class, &profile, &geometry),
                predicted,
            );
            if let Some(p) = prediction.filter(|p| p.needs_autotuning()) {
                // Say why a run that stayed safe proves little here.
                if finding.verdict != Verdict::Corrupt {
                    finding.evidence.detail += &format!("; model: {}", p.reason(profile.window));
                }
            }
            if !args.json {
                let secs = format!("{:.2} s", t0.elapsed().as_secs_f64());
                let cells = [e.name, &t.label(), finding.verdict.name(), &secs];
                eprintln!("{}", progress.line(&widths, &cells));
            }
            clock.timing.findings.push(report.timing());
            results.results.push(finding);
        }
    }
    let timing = clock.finish();
    if let Some(k) = &known {
        results.apply_known(k);
    }
    if args.json {
        println!("{}", output::json(&results, &timing, args.timings)?);
        warn_stale(&results.known);
    } else {
        output::require_evidence(&results)?;
        print_human(&results, &profile, &args);
        if args.timings.timings {
            print!("{}", table::timing(&timing));
        }
    }
    write_junit(&results, &args)?;
    Ok(ExitCode::from(results.exit_code()))
}

/// `--junit`: each finding with the command that reruns its deciding run.
fn write_junit(results: &Results, args: &Args) -> Result<()> {
    args.junit.write(|| {
        let reruns: Vec<String> = results.results.iter().map(|f| rerun(f, args)).collect();
        let cases: Vec<junit::Case<'_>> = results
            .results
            .iter()
            .zip(&reruns)
            .map(|(f, r)| junit::Case {
                rerun: Some(r),
                ..junit::Case::of(f)
            })
            .collect();
        junit::write("zcsafe run", &cases)
    })
}

fn print_human(results: &Results, profile: &Profile, args: &Args) {
    println!(
        "\nzcsafe run: Linux {}, kernel profile {}, {} run(s) each, reader {}, seed {}\n",
        zcsafe_kernel::kernel_release(),
        profile.name,
        args.repeat,
        args.reader,
        args.seed
    );
    print!("{}", table::render(results));
    print!("{}", table::exposure(results));
    println!(
        "\n{} (expectation or model prediction)",
        table::tally(results)
    );
    let loud = table::contradictions(results);
    if !loud.is_empty() {
        println!("\n{loud}");
    }
    let gaps = table::gaps(results);
    if !gaps.is_empty() {
        print!("\n{gaps}");
    }
    for f in &results.results {
        if f.verdict == Verdict::Safe && f.agrees() {
            continue;
        }
        println!(
            "\n── {} / {}: {} (expected {}, model {}) ──\n   {}\n   rerun: {}",
            f.policy,
            f.transport,
            f.verdict,
            f.expected,
            f.predicted.map_or("-".to_string(), |p| p.to_string()),
            f.evidence.detail,
            rerun(f, args),
        );
        if args.quiet {
            continue;
        }
        if let Some(t) = &f.evidence.trace {
            print!("\n{}", zcsafe_explain::text::render_first(t, 40));
        }
    }
}

/// The command that repeats exactly the deciding run of a finding.
fn rerun(f: &zcsafe_policy::Finding, args: &Args) -> String {
    let c = &f.evidence.counts;
    let transport = f.transport.split('(').next().unwrap_or(&f.transport);
    let mut cmd = format!(
        "{} run --policy {} --transport {transport} --seed {} --repeat 1 --reader {}",
        zcsafe_policies::registry::program(),
        f.policy,
        c.get("seed").and_then(|s| s.as_u64()).unwrap_or(0),
        args.reader
    );
    if let Some(b) = args.bytes {
        cmd += &format!(" --bytes {b}");
    }
    match args.rcvbuf {
        Rcvbuf::Auto => {}
        Rcvbuf::Kernel => cmd += " --rcvbuf kernel",
        Rcvbuf::Bytes(b) => cmd += &format!(" --rcvbuf {b}"),
    }
    match transport {
        "veth-lossy" => cmd += &format!(" --loss {}", args.loss),
        "veth-slow" => cmd += &format!(" --rate {}", args.rate),
        _ => {}
    }
    // The label `tun(SCRIPT)` carries the peer's script in the form --peer reads.
    let script = f
        .transport
        .strip_prefix("tun(")
        .and_then(|s| s.strip_suffix(')'))
        .and_then(|s| PeerScript::parse(s).ok());
    if let Some(p) = script {
        cmd += &format!(" --peer {}", p.script());
    }
    cmd
}

fn external(
    cmd: &str,
    args: &Args,
    transports: &[Transport],
    reader: ReaderSpeed,
    timeout: Duration,
    known: Option<zcsafe_policy::KnownFile>,
) -> Result<ExitCode> {
    let [transport] = transports else {
        bail!(
            "--external runs over one transport at a time (got {})",
            args.transport
        );
    };
    let opts = ExternalOptions {
        transport: *transport,
        seed: args.seed,
        reader,
        expect: args.bytes,
        app_ack: args.app_ack,
        timeout: timeout * 6,
    };
    if cmd.trim().is_empty() {
        bail!("the external command is empty");
    }
    let preload = args
        .sanitize
        .then(|| crate::cmd::sanitize::Preload::new(false))
        .transpose()?;
    let mut sender = zcsafe_kernel::Sender::shell(cmd);
    if let Some(p) = &preload {
        sender.env = p.env();
    }
    let r = zcsafe_kernel::run_sender(&sender, &opts)?;
    let sanitized = match &preload {
        Some(p) => Some(p.events(&format!("`{cmd}`"))?),
        None => None,
    };
    let mut results = match &sanitized {
        Some(events) => crate::cmd::sanitize::results(
            events,
            cmd,
            &r.transport,
            &crate::cmd::sanitize::ending(&r, opts.timeout),
            Some(&r),
        ),
        None => {
            let mut finding = r.to_finding();
            // The wall clock goes in the timing object (--timings), as for every other run.
            finding.evidence.counts.remove("elapsed_ms");
            Results::new(vec![finding])
        }
    };
    let mut timing = zcsafe_policy::Timing {
        total_ms: r.elapsed_ms as f64,
        ..Default::default()
    };
    timing.push(
        zcsafe_kernel::external::EXTERNAL_POLICY,
        &r.transport,
        Duration::from_millis(r.elapsed_ms),
    );
    if let Some(k) = &known {
        results.apply_known(k);
    }
    if args.json {
        println!("{}", output::json(&results, &timing, args.timings)?);
        warn_stale(&results.known);
    } else {
        let word = r.outcome.word();
        println!("zcsafe run --external over {}: {word}", r.transport);
        println!("  command: {}", r.command);
        println!("  {}", r.detail);
        if let (Some(p), Some(events)) = (&preload, &sanitized) {
            crate::cmd::sanitize::print_human(&results, events, cmd, p.runtime(), None);
        }
        print!("{}", table::contradictions(&results));
        if r.outcome != ExternalOutcome::Intact && !r.sender_stderr_tail.trim().is_empty() {
            println!("  sender stderr (tail):");
            for line in r
                .sender_stderr_tail
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                println!("    {line}");
            }
        }
        if args.timings.timings {
            print!("{}", table::timing(&timing));
        }
    }
    args.junit
        .write(|| junit::write("zcsafe run", &junit::cases(&results)))?;
    Ok(ExitCode::from(results.exit_code()))
}

/// `--rcvbuf`: the receiver's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rcvbuf {
    /// The policy's own [`ReceiveWindow`](zcsafe_policy::ReceiveWindow).
    Auto,
    /// The kernel's default and autotuning.
    Kernel,
    /// This `SO_RCVBUF`.
    Bytes(u32),
}

impl Rcvbuf {
    fn for_window(self, w: zcsafe_policy::ReceiveWindow) -> Option<u32> {
        match self {
            Rcvbuf::Auto => w.rcvbuf(),
            Rcvbuf::Kernel => None,
            Rcvbuf::Bytes(b) => Some(b),
        }
    }
}

fn parse_rcvbuf(s: &str) -> Result<Rcvbuf, String> {
    match s {
        "auto" => Ok(Rcvbuf::Auto),
        "kernel" => Ok(Rcvbuf::Kernel),
        n => match n.parse::<u32>() {
            Ok(b) if b > 0 => Ok(Rcvbuf::Bytes(b)),
            _ => Err(format!(
                "`{n}` is not auto, kernel or a positive number of bytes"
            )),
        },
    }
}
