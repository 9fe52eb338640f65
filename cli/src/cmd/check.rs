//! `zcsafe check`: every selected policy × transport class, judged by an exhaustive
//! check of the kernel model, with the shortest counterexample under each unsafe verdict.

use crate::junit::JunitArgs;
use crate::output::{self, Clock, TimingArgs};
use crate::progress::{ProgressBar, SearchProgress};
use crate::table;
use anyhow::{bail, Context, Result};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use zcsafe_explain::text::render;
use zcsafe_model::{check_observed, sweep, CheckOptions, CheckReport, Scenario};
use zcsafe_policies::Entry;
use zcsafe_policy::{
    Evidence, Expectation, Finding, Profile, RemoteDevice, Results, ScenarioSizes, SweepStep,
    TransportClass, Verdict,
};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    select: super::Selection,
    /// Transport class: local (loopback, veth: the peer socket keeps the pages),
    /// remote (a real NIC: the device reads them), or all.
    #[arg(long, short = 't', default_value = "all", value_parser = ["local", "remote", "all"])]
    transport: String,
    /// The remote class's device: nic (reads the pages by DMA at TX completion, as the
    /// QEMU guests' virtio and e1000 do) or tun (`-t tun` on this host: copies zero-copy
    /// frags when the segment is queued on it, `tun_net_xmit`).
    #[arg(long, default_value = "nic", value_name = "nic|tun",
          value_parser = PossibleValuesParser::new(RemoteDevice::ALL.map(RemoteDevice::name))
              .map(|s| s.parse::<RemoteDevice>().expect("one of RemoteDevice::ALL")))]
    device: RemoteDevice,
    /// Kernel profile: a built-in name (classic, copying-splice) or a JSON file written
    /// by `zcsafe probe --json`.
    #[arg(long, default_value = "classic", value_name = "NAME|FILE")]
    profile: String,
    /// Print one JSON object with a `results` array instead of the table.
    #[arg(long)]
    json: bool,
    /// Leave out the counterexample timelines.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    timings: TimingArgs,
    #[command(flatten)]
    junit: JunitArgs,
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// Walk a family of scenarios from small to large (each policy's derived windows,
    /// streams from one reuse of the first slot up to the derived length) and report
    /// the smallest that yields a counterexample, or that none did up to the largest.
    /// Each step's progress goes to stderr.
    #[arg(long, conflicts_with_all = ["stream", "buffer", "sndbuf", "rcvbuf", "cwnd", "zc_id_bits", "zc_optmem", "losses", "spurious_rto", "base"])]
    sweep: bool,
    /// Give up on one sweep step beyond this many states (the sweep stops there).
    #[arg(
        long,
        default_value_t = 2_000_000,
        value_name = "STATES",
        requires = "sweep"
    )]
    step_states: usize,
}

/// Which scenario a check starts from before the overrides.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Base {
    /// Derived from each policy's declared pipeline (`Catalogued::PIPELINE`).
    Derived,
    /// `Scenario::standard`, the same for every policy.
    Standard,
}

/// The scenario to start from, and overrides of it (sizes in pages).
#[derive(clap::Args)]
pub struct ScenarioArgs {
    /// The scenario the overrides apply to: derived from each policy's pipeline, or the
    /// one standard scenario.
    #[arg(long = "scenario", value_enum, default_value = "derived", id = "base")]
    base: Base,
    /// Stream length in pages.
    #[arg(long, value_name = "PAGES")]
    stream: Option<u64>,
    /// User buffer size in pages (two chunks by default).
    #[arg(long, value_name = "PAGES")]
    buffer: Option<u64>,
    /// Send buffer in pages.
    #[arg(long, value_name = "PAGES")]
    sndbuf: Option<u64>,
    /// Peer receive buffer in pages.
    #[arg(long, value_name = "PAGES")]
    rcvbuf: Option<u64>,
    /// Congestion window in segments.
    #[arg(long, value_name = "SEGMENTS")]
    cwnd: Option<u64>,
    /// Segments the network may drop.
    #[arg(long)]
    losses: Option<u8>,
    /// Retransmission timeouts that may fire although nothing was lost.
    #[arg(long)]
    spurious_rto: Option<u8>,
    /// Width of the MSG_ZEROCOPY counter (32 on real kernels; small to reach wrap).
    #[arg(long, value_name = "BITS")]
    zc_id_bits: Option<u8>,
    /// MSG_ZEROCOPY notifications that may exist at once before `send` fails with
    /// ENOBUFS (`optmem_max` in `msg_zerocopy_alloc`); 1 reaches ENOBUFS.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    zc_optmem: Option<u8>,
    /// Give up beyond this many states.
    #[arg(long, default_value_t = 20_000_000)]
    max_states: usize,
    /// Stop a cell once its search holds more than SIZE (`512M`, `4G`, bytes without a
    /// unit): that cell is `inconclusive` (exit status 4) with the states and depth it
    /// covered, never `safe`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_memory: Option<u64>,
    /// Threads that expand each BFS level, 0 for every available core. The output is the
    /// same bytes whatever the number; one is the default because the merge of each level
    /// is serial and two were measured slower than one (docs/design.md §11).
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,
}

/// `SIZE` of `--max-memory`: a number of bytes, with an optional binary unit suffix
/// (`K`, `M`, `G`, `T`; `KiB`, `MB`, … read alike).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        u => {
            return Err(format!(
                "unknown unit {u:?}: use K, M, G or T (e.g. 512M, 4G)"
            ))
        }
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 512M, 4G, 1000000)"))?;
    let bytes = n * (1u64 << shift) as f64;
    if !(1.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!("{s:?} is not a size of at least one byte"));
    }
    Ok(bytes as u64)
}

impl ScenarioArgs {
    /// The scenario for `e` on `t` behind `device` (the remote class's): the base, then
    /// the overrides.
    fn for_entry(
        &self,
        e: &Entry,
        t: TransportClass,
        profile: &Profile,
        device: RemoteDevice,
    ) -> Scenario {
        let mut s = match self.base {
            Base::Derived => Scenario::derived(&e.pipeline, t, profile.clone()),
            Base::Standard => Scenario::standard_for(&e.pipeline, t, profile.clone()),
        };
        if t == TransportClass::Remote {
            s.config.device = device;
        }
        self.apply(&mut s);
        s
    }

    fn apply(&self, s: &mut Scenario) {
        let (g, c) = (&mut s.geometry, &mut s.config);
        g.stream = self.stream.unwrap_or(g.stream);
        g.buffer = self.buffer.unwrap_or(g.buffer);
        g.zc_id_bits = self.zc_id_bits.unwrap_or(g.zc_id_bits);
        c.sndbuf = self.sndbuf.unwrap_or(c.sndbuf);
        c.rcvbuf = self.rcvbuf.unwrap_or(c.rcvbuf);
        c.cwnd = self.cwnd.unwrap_or(c.cwnd);
        c.losses = self.losses.unwrap_or(c.losses);
        c.spurious_rto = self.spurious_rto.unwrap_or(c.spurious_rto);
        c.zc_optmem = self.zc_optmem.unwrap_or(c.zc_optmem);
    }
}

/// A built-in profile name, or a JSON file holding a profile (alone or under "profile").
pub fn load_profile(spec: &str) -> Result<Profile> {
    if let Some(p) = Profile::by_name(spec) {
        return Ok(p);
    }
    let path = Path::new(spec);
    if !path.exists() {
        let names: Vec<String> = Profile::builtin().into_iter().map(|p| p.name).collect();
        bail!(
            "no profile {spec:?}: use a built-in one ({}) or a JSON file from `zcsafe probe --json`",
            names.join(", ")
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {spec}"))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{spec} is not JSON"))?;
    let value = value.get("profile").cloned().unwrap_or(value);
    serde_json::from_value(value).with_context(|| format!("{spec} does not hold a kernel profile"))
}

pub fn transports(spec: &str) -> Vec<TransportClass> {
    match spec {
        "all" => TransportClass::ALL.to_vec(),
        t => t.parse::<TransportClass>().into_iter().collect(),
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let entries = args.select.entries()?;
    let profile = load_profile(&args.profile)?;
    if !args.device.is_nic() && !transports(&args.transport).contains(&TransportClass::Remote) {
        bail!(
            "--device {} is the remote class's device: use it with -t remote (or -t all)",
            args.device
        );
    }
    if !args.device.is_nic() && args.sweep {
        bail!("--sweep walks the NIC's scenarios: --device is not swept yet");
    }
    let opts = CheckOptions {
        max_states: args.scenario.max_states,
        max_memory: args.scenario.max_memory,
        threads: args.scenario.threads,
    };
    // Progress only for a person watching: not into a pipe, a CI log or JSON.
    let mut search = SearchProgress::new(!args.json && !args.quiet);
    let mut clock = Clock::start();
    let mut results = Results::default();
    let mut states = 0usize;
    // Each distinct scenario line, with the policies checked in it.
    let mut scenarios: Vec<(String, Vec<&str>)> = Vec::new();
    let mut progress = args.sweep.then(|| ProgressBar::new("steps"));
    for t in transports(&args.transport) {
        for e in &entries {
            let scenario = args.scenario.for_entry(e, t, &profile, args.device);
            scenario
                .validate()
                .context("the scenario options do not describe a runnable model")?;
            let (finding, elapsed) = if let Some(bar) = &mut progress {
                sweep_finding(e, t, &profile, args.step_states, bar)
            } else {
                let line = describe(&scenario);
                match scenarios.iter_mut().find(|(l, _)| *l == line) {
                    Some((_, names)) if names.contains(&e.name) => {}
                    Some((_, names)) => names.push(e.name),
                    None => scenarios.push((line, vec![e.name])),
                }
                let device = scenario.device().unwrap_or_default();
                let expected = e.expect_behind(device, t, &profile, &scenario.geometry);
                let mut finding = model_finding(e, t, &expected);
                finding.evidence.scenario = Some(scenario.sizes());
                let elapsed = match e.build(&scenario.geometry) {
                    Err(err) => {
                        finding.evidence.detail = format!("cannot build the policy: {err}");
                        None
                    }
                    Ok(policy) => {
                        let cell = format!("{} / {t}", e.name);
                        let report = check_observed(policy, &scenario, &opts, &mut |p| {
                            search.show(&cell, p)
                        })
                        .with_context(|| format!("checking {cell}"))?
                        .named(e.name);
                        search.clear();
                        Some(record(&mut finding, report))
                    }
                };
                (finding, elapsed)
            };
            if let Some(elapsed) = elapsed {
                clock.timing.push(e.name, t.name(), elapsed);
            }
            states += finding
                .evidence
                .counts
                .get("states")
                .and_then(|v| v.as_u64())
                .unwrap_or(0) as usize;
            results.results.push(finding);
        }
    }
    drop(progress);
    let timing = clock.finish();
    if args.json {
        println!("{}", output::json(&results, &timing, args.timings)?);
    } else {
        output::require_evidence(&results)?;
        print_human(&results, &profile, &scenarios, states, args.quiet);
        if args.timings.timings {
            print!("{}", table::timing(&timing));
        }
    }
    args.junit.write(|| {
        zcsafe_policy::junit::write("zcsafe check", &zcsafe_policy::junit::cases(&results))
    })?;
    Ok(ExitCode::from(results.exit_code()))
}

/// A model finding for `e` on `t`, not yet judged (`error` until a report fills it).
fn model_finding(e: &Entry, t: TransportClass, expected: &Expectation) -> Finding {
    Finding {
        policy: e.name.into(),
        transport: t.name().into(),
        backend: "model".into(),
        kernel: None,
        verdict: Verdict::Error,
        expected: expected.verdict,
        expected_why: expected.why.into(),
        predicted: None,
        evidence: Evidence::default(),
    }
}

/// Fills `finding` from a check's report; returns the check's wall clock (for the timing
/// section only, so the output is the same bytes without `--timings`).
fn record(finding: &mut Finding, report: CheckReport) -> Duration {
    finding.verdict = report.verdict;
    finding.evidence.detail = report.detail;
    finding.evidence.trace = report.trace;
    finding.evidence.hazards = Some(report.hazards);
    let c = &mut finding.evidence.counts;
    c.insert("states".into(), report.states.into());
    c.insert("transitions".into(), report.transitions.into());
    c.insert("complete_states".into(), report.complete_states.into());
    if let Some(cov) = report.coverage {
        c.insert("max_memory".into(), cov.max_memory.into());
        c.insert("depth".into(), cov.depth.into());
        c.insert("held_bytes".into(), cov.held_bytes.into());
    }
    report.elapsed
}

/// `--sweep` for one policy and class: the finding of the smallest step that yields a
/// counterexample, else of the largest that finished safe, with every step in
/// `evidence.sweep`; and the time all steps took.
fn sweep_finding(
    e: &Entry,
    t: TransportClass,
    profile: &Profile,
    step_states: usize,
    bar: &mut ProgressBar,
) -> (Finding, Option<Duration>) {
    let opts = CheckOptions {
        max_states: step_states,
        ..Default::default()
    };
    let report = sweep(
        |g| e.build(g).map_err(|err| err.to_string()),
        &e.pipeline,
        t,
        profile,
        &opts,
        |i, total, step| {
            let what = match &step.outcome {
                Ok(r) => format!("{} ({} states)", r.verdict, r.states),
                Err(err) => format!("no verdict: {err}"),
            };
            bar.line(
                &format!(
                    "sweep {} / {t}: step {i}/{total}: {}: {what}",
                    e.name,
                    describe(&step.scenario)
                ),
                i,
                total,
            );
        },
    );
    let chosen = report.counterexample().or(report.largest_safe());
    let steps: Vec<SweepStep> = report.steps.iter().map(sweep_step).collect();
    let mut finding = match chosen {
        Some(step) => {
            let expected = e.expect_for(t, profile, &step.scenario.geometry);
            let mut finding = model_finding(e, t, &expected);
            finding.evidence.scenario = Some(step.scenario.sizes());
            if let Ok(r) = &step.outcome {
                let _ = record(&mut finding, r.clone().named(e.name));
            }
            finding
        }
        None => {
            let expected = e.expect_for(t, profile, &e.pipeline.model_geometry());
            let mut finding = model_finding(e, t, &expected);
            finding.evidence.detail = format!(
                "no sweep step finished: {}",
                steps
                    .first()
                    .and_then(|s| s.error.clone())
                    .unwrap_or_default()
            );
            finding
        }
    };
    if let (None, Some(safe)) = (report.counterexample(), chosen) {
        let last = report.steps.last().expect("a chosen step");
        let stop = match &last.outcome {
            Err(err) => {
                // The family was not walked to its end (the derived scenario): what
                // finished safe covers smaller scenarios only, which earns no verdict.
                finding.verdict = Verdict::Inconclusive;
                format!("; the next step stopped: {err}")
            }
            Ok(_) => String::new(),
        };
        finding.evidence.detail = format!(
            "no counterexample in {} sweep step(s), up to {}{stop}: {}",
            steps.iter().filter(|s| s.verdict.is_some()).count(),
            describe(&safe.scenario),
            finding.evidence.detail
        );
    }
    finding.evidence.sweep = steps;
    let elapsed = report
        .steps
        .iter()
        .filter_map(|s| s.outcome.as_ref().ok())
        .map(|r| r.elapsed)
        .sum();
    (finding, Some(elapsed))
}

fn sweep_step(step: &zcsafe_model::SweepStep) -> SweepStep {
    SweepStep {
        scenario: step.scenario.sizes(),
        verdict: step.verdict(),
        states: step.outcome.as_ref().map(|r| r.states).unwrap_or(0),
        error: step.outcome.as_ref().err().map(ToString::to_string),
    }
}

fn describe(s: &Scenario) -> String {
    describe_sizes(&s.sizes())
}

fn describe_sizes(s: &ScenarioSizes) -> String {
    let (g, c) = (&s.geometry, s);
    let device = match c.device {
        RemoteDevice::Nic => String::new(),
        d => format!(", device {d}"),
    };
    format!(
        "{} stream pages, {}-page buffer, {}-page pipe, sndbuf {}, rcvbuf {}, cwnd {}, {} loss(es), {} spurious RTO(s), {}-bit zerocopy counter{device}",
        g.stream, g.buffer, g.pipe, c.sndbuf, c.rcvbuf, c.cwnd, c.losses, c.spurious_rto, g.zc_id_bits
    )
}

fn print_human(
    results: &Results,
    profile: &Profile,
    scenarios: &[(String, Vec<&str>)],
    states: usize,
    quiet: bool,
) {
    println!(
        "zcsafe check: exhaustive model check, kernel profile {}",
        profile.name
    );
    match scenarios {
        [(line, _)] => println!("scenario: {line}"),
        many => {
            // The scenario most policies share is named by exception, so that one odd
            // pipeline (UDP, a wide ring) does not list the whole catalogue.
            let common = (0..many.len())
                .max_by_key(|&i| (many[i].1.len(), std::cmp::Reverse(i)))
                .unwrap_or(0);
            let shared = many.get(common).is_some_and(|g| g.1.len() > 1);
            for (i, (line, names)) in many.iter().enumerate() {
                if !(shared && i == common) {
                    println!("scenario ({}): {line}", names.join(", "));
                }
            }
            if shared {
                println!("scenario (every other policy): {}", many[common].0);
            }
        }
    }
    for f in &results.results {
        if f.evidence.sweep.is_empty() {
            continue;
        }
        let n = f.evidence.sweep.len();
        let at = f.evidence.scenario.as_ref().map(describe_sizes);
        match f.verdict {
            Verdict::Safe => println!(
                "sweep {} / {}: no counterexample in {n} step(s), up to {}",
                f.policy,
                f.transport,
                at.unwrap_or_default()
            ),
            Verdict::Inconclusive => println!(
                "sweep {} / {}: NO VERDICT: safe up to {}, then step {n} stopped (raise --step-states)",
                f.policy,
                f.transport,
                at.unwrap_or_default()
            ),
            v => println!(
                "sweep {} / {}: smallest counterexample ({v}) at step {n}: {}",
                f.policy,
                f.transport,
                at.unwrap_or_default()
            ),
        }
    }
    println!();
    print!("{}", table::render(results));
    println!("\n{}; {states} states explored", table::tally(results));
    let loud = table::contradictions(results);
    if !loud.is_empty() {
        println!("\n{loud}");
    }
    let gaps = table::gaps(results);
    if !gaps.is_empty() {
        print!("\n{gaps}");
    }
    if quiet {
        return;
    }
    for f in &results.results {
        let Some(trace) = &f.evidence.trace else {
            continue;
        };
        println!("\n── {} / {}: {} ──", f.policy, f.transport, f.verdict);
        print!("{}", render(trace));
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_read_with_binary_units_and_bad_ones_are_refused() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("64 kb"), Ok(64 << 10));
        assert!(parse_size("0").is_err());
        assert!(parse_size("4X").unwrap_err().contains("unknown unit"));
        assert!(parse_size("lots").is_err());
    }
}
