//! `zcsafe bench`: the cost of each reuse policy against plain `send()` on this kernel —
//! throughput, sender CPU per GiB and the ratio to `copy` measured in the same rounds,
//! across chunk sizes and transports.

use anyhow::{bail, Context, Result};
use std::process::ExitCode;
use std::time::Duration;
use zcsafe_bench::{parse_size, parse_sizes, render, BenchOptions, DEFAULT_POLICIES};
use zcsafe_kernel::Transport;
use zcsafe_policy::{Profile, TransportClass, Verdict};

mod guests;

#[derive(clap::Args)]
pub struct Args {
    /// Policies to measure beside `copy` (repeat or comma-separate). Default: every safe
    /// reference policy and its unsafe twin.
    #[arg(long = "policy", short = 'p', value_name = "NAME")]
    policies: Vec<String>,
    /// Only `copy` and the policies expected safe on a local path.
    #[arg(long, conflicts_with = "policies")]
    safe: bool,
    /// loopback, veth, veth-slow, veth-lossy (comma-separated). All but loopback need root.
    #[arg(long, short = 't', default_value = "loopback")]
    transport: String,
    /// Chunk sizes (bytes per send), comma-separated: 4K,16K,64K,256K,1M.
    #[arg(long, default_value = "4K,16K,64K,256K,1M", value_name = "SIZES")]
    chunk: String,
    /// Measured rounds per transport and chunk size (each runs every policy once; at
    /// least 1).
    #[arg(long, default_value_t = 5, value_name = "N",
          value_parser = crate::output::at_least_one::<u32>)]
    repeat: u32,
    /// Rounds run first and discarded; they also size the measured streams.
    #[arg(long, default_value_t = 1, value_name = "N")]
    warmup: u32,
    /// Buffer slots (chunks in flight) of the pipelined policies (at least 1).
    #[arg(long, default_value_t = 32, value_name = "N",
          value_parser = crate::output::at_least_one::<u64>)]
    slots: u64,
    /// More slots for small chunks, so that at least this much can be in flight: `sndbuf`
    /// (the kernel's TCP send-buffer ceiling, `tcp_wmem[2]`: what the unsafe twins may keep
    /// queued), a size such as 1M, or 0 (off).
    #[arg(long, default_value = "sndbuf", value_name = "SIZE")]
    min_inflight: String,
    /// Fixed stream length per run (e.g. 64M); default: sized from the warm-up round.
    #[arg(long, value_name = "SIZE")]
    bytes: Option<String>,
    /// Target duration of one measured stream, in milliseconds (without --bytes).
    #[arg(long, default_value_t = 250, value_name = "MS")]
    target_ms: u64,
    /// veth-slow's rate limit in kbit/s.
    #[arg(long, default_value_t = zcsafe_kernel::transport::DEFAULT_RATE_KBIT, value_name = "KBIT")]
    rate: u64,
    /// veth-lossy's drop rate in percent.
    #[arg(long, default_value_t = zcsafe_kernel::transport::DEFAULT_LOSS_PCT, value_name = "PCT")]
    loss: u8,
    /// Print one JSON object (`results`, as `check` does) instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON object to this file (with the table on stdout: one run, all
    /// three outputs).
    #[arg(long, value_name = "FILE")]
    json_file: Option<std::path::PathBuf>,
    /// Also draw throughput and CPU per GiB against chunk size into this SVG file.
    #[arg(long, value_name = "FILE")]
    svg: Option<std::path::PathBuf>,
    /// Progress lines on stderr.
    #[arg(long, short = 'v')]
    verbose: bool,
    /// Run the bench inside QEMU guests of these Debian kernels instead of on this host
    /// (names or version prefixes as for `zcsafe matrix --kernels`; `host` adds this
    /// host's run), one VM per transport; `remote` is two NICs wired back to back. Guests
    /// run under TCG emulation: compare ratios, not GiB/s.
    #[arg(long, value_name = "LIST")]
    kernels: Option<String>,
    /// NIC model of the guests' `remote` transport: virtio or e1000.
    #[arg(long, default_value = "virtio", requires = "kernels")]
    nic: String,
    /// Seconds one guest may spend on one transport's bench before it is stopped.
    #[arg(long, default_value_t = 1500, value_name = "S", requires = "kernels")]
    cell_timeout: u64,
    /// The statically linked zcsafe installed in the guests (see `zcsafe matrix --help`).
    #[arg(long, value_name = "PATH", requires = "kernels")]
    guest_binary: Option<std::path::PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut opts = BenchOptions::default();
    if args.safe {
        let profile = Profile::classic();
        opts.policies = zcsafe_policies::catalogue()
            .into_iter()
            .filter(|e| {
                e.expect(TransportClass::Local, &profile).verdict == Verdict::Safe
                    && (e.name == "copy" || DEFAULT_POLICIES.contains(&e.name))
            })
            .collect();
    } else if !args.policies.is_empty() {
        opts.policies = super::select_policies(&args.policies)?;
    }
    opts.transports = args
        .transport
        .split(',')
        .map(|n| Transport::parse(n.trim(), args.loss, args.rate))
        .collect::<Result<_, _>>()?;
    super::run::check_link_options(&opts.transports)?;
    if opts
        .transports
        .iter()
        .any(|t| matches!(t, Transport::Tun(_)))
    {
        // Its peer reads, checks and ACKs one segment at a time in user space: a cost
        // measurement over it would measure the peer. (`run -t tun` judges the remote class.)
        bail!("invalid option: bench does not measure over tun yet; use `zcsafe run -t tun` for its verdicts");
    }
    opts.chunks = parse_sizes(&args.chunk)?;
    if opts.chunks.is_empty() {
        bail!("--chunk needs at least one size");
    }
    opts.repeat = args.repeat;
    opts.warmup = args.warmup;
    opts.slots = args.slots;
    opts.min_inflight = match args.min_inflight.as_str() {
        "0" => 0,
        "sndbuf" => zcsafe_bench::sndbuf_ceiling(),
        m => parse_size(m)
            .with_context(|| format!("--min-inflight {m:?}: expected `sndbuf`, 0 or a size"))?,
    };
    opts.bytes = args.bytes.as_deref().map(parse_size).transpose()?;
    opts.target_run = Duration::from_millis(args.target_ms.max(1));
    opts.verbose = args.verbose;
    let report = match &args.kernels {
        Some(list) => guests::bench(&args, list, &opts)?,
        None => zcsafe_bench::run(&opts),
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zcsafe: bench: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    // No verdict without evidence, as for every other command (a guest's report too).
    crate::output::require_evidence(&zcsafe_policy::Results::new(
        report.results.iter().map(|r| r.finding.clone()).collect(),
    ))?;
    if let Some(path) = &args.svg {
        std::fs::write(path, render::svg(&report))?;
    }
    if let Some(path) = &args.json_file {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render::table(&report));
    }
    Ok(ExitCode::from(report.exit_code()))
}
