//! `zcsafe sim`: the policies over a simulated network (turmoil), seed by seed, with the
//! same kernel rules as `check`. A finding prints its seed and the command that replays it.

use super::check::{load_profile, transports};
use crate::output::{self, Clock, TimingArgs};
use crate::table;
use anyhow::{Context, Result};
use std::process::ExitCode;
use zcsafe_explain::text::render;
use zcsafe_model::{check, CheckOptions, Scenario};
use zcsafe_policy::{Evidence, Finding, Results, Verdict};
use zcsafe_sim::{run_entry, Faults, SimError, SimOptions};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    select: super::Selection,
    /// Seeds to run per policy and transport, from --first-seed (at least 1: a verdict
    /// needs a run behind it).
    #[arg(long, default_value_t = 200, conflicts_with = "seed",
          value_parser = crate::output::at_least_one::<u64>)]
    seeds: u64,
    /// Run exactly this seed (what a finding's replay command says).
    #[arg(long)]
    seed: Option<u64>,
    /// First seed of a --seeds run.
    #[arg(long, default_value_t = 0, conflicts_with = "seed")]
    first_seed: u64,
    /// Network and receiver faults, e.g.
    /// `latency=5ms,jitter=2ms,loss=0.05,reorder=0.1,partition=20ms..40ms,hold=50ms..60ms,slow-reader=3ms,device=2ms,rto=30ms`.
    /// Without it each seed draws its own faults.
    #[arg(long, value_name = "SPEC")]
    faults: Option<String>,
    /// A failure scenario file (TOML: `lose = K` for both backends, `[sim] faults = SPEC`,
    /// `[peer] window`/`hold_acks_ms`): the same file `zcsafe run -t tun --scenario`
    /// tries on the real kernel.
    #[arg(long, value_name = "FILE", conflicts_with = "faults")]
    scenario: Option<std::path::PathBuf>,
    /// Transport class: local, remote or all.
    #[arg(long, short = 't', default_value = "all", value_parser = ["local", "remote", "all"])]
    transport: String,
    /// Kernel profile: a built-in name or a JSON file from `zcsafe probe --json`.
    #[arg(long, default_value = "classic", value_name = "NAME|FILE")]
    profile: String,
    /// Stream length in pages (at least 1; rounded down to whole chunks).
    #[arg(long, default_value_t = 16, value_name = "PAGES",
          value_parser = crate::output::at_least_one::<u64>)]
    stream: u64,
    /// Print one JSON object with a `results` array instead of the table.
    #[arg(long)]
    json: bool,
    /// Leave out the timelines of findings.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    timings: TimingArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let entries = args.select.entries()?;
    let profile = load_profile(&args.profile)?;
    let from_file = args
        .scenario
        .as_deref()
        .map(zcsafe_policy::FailureScenario::load)
        .transpose()?
        .map(|s| s.sim_faults());
    let faults = args
        .faults
        .or(from_file)
        .as_deref()
        .map(Faults::parse)
        .transpose()
        .context("--faults")?;
    let mut clock = Clock::start();
    let mut results = Results::default();
    let mut replays = Vec::new();
    for t in transports(&args.transport) {
        let mut opts = SimOptions::new(t);
        opts.profile = profile.clone();
        opts.stream = args.stream;
        opts.faults = faults.clone();
        (opts.seed, opts.seeds) = match args.seed {
            Some(s) => (s, 1),
            None => (args.first_seed, args.seeds),
        };
        for e in &entries {
            // The policy's own pipeline sizes both the simulated world and the model's.
            let model = Scenario::derived(&e.pipeline, t, profile.clone());
            let opts = SimOptions {
                pipeline: e.pipeline,
                ..opts.clone()
            };
            let geometry = opts.scenario(opts.seed).model.geometry;
            // The simulated network is TCP's: a UDP policy is unsupported here, which is
            // known before it runs (the model judges it, `zcsafe check`; the host kernel
            // runs it, `zcsafe run`), so that is this backend's expectation and the model's
            // verdict is no prediction of what it can reach.
            let tcp = e.pipeline.socket == zcsafe_policy::SocketKind::Tcp;
            let expected = match tcp {
                true => e.expect_for(t, &profile, &geometry),
                false => zcsafe_policy::Expectation::unsupported(zcsafe_sim::run::UDP_UNSUPPORTED),
            };
            let mut model = model.clone();
            model.on_socket(e.pipeline.socket);
            let predicted = e
                .build(&model.geometry)
                .ok()
                .filter(|_| tcp)
                .and_then(|p| check(p, &model, &CheckOptions::default()).ok())
                .map(|r| r.verdict);
            let mut finding = Finding {
                policy: e.name.into(),
                transport: t.name().into(),
                backend: "sim".into(),
                kernel: None,
                verdict: Verdict::Error,
                expected: expected.verdict,
                expected_why: expected.why.into(),
                predicted,
                evidence: Evidence::default(),
            };
            match run_entry(e, &opts) {
                // Nothing to run is the user's to fix (exit 2), not a finding to judge.
                Err(err @ SimError::NoSeeds { .. }) => return Err(err.into()),
                Err(err) => finding.evidence.detail = format!("cannot simulate: {err}"),
                Ok(report) => {
                    finding.verdict = report.verdict;
                    finding.evidence.detail = report.detail.clone();
                    finding.evidence.hazards = Some(report.hazards.clone());
                    let c = &mut finding.evidence.counts;
                    c.insert("scenarios".into(), report.scenarios.into());
                    c.insert("first_seed".into(), opts.seed.into());
                    if let Some(seed) = report.seed {
                        c.insert("seed".into(), seed.into());
                    }
                    if let Some(f) = &report.faults {
                        c.insert("faults".into(), f.clone().into());
                    }
                    if let Some(cmd) = &report.replay_command {
                        c.insert("replay_command".into(), cmd.clone().into());
                        replays.push((e.name, t, report.seed.unwrap_or(0), cmd.clone()));
                    }
                    clock.timing.push(e.name, t.name(), report.elapsed);
                    // Simulated time: decided by the seed, so it is evidence, not timing.
                    c.insert(
                        "sim_time_ms".into(),
                        (report.sim_time.as_secs_f64() * 1e3).into(),
                    );
                    finding.evidence.trace = report.trace;
                }
            }
            results.results.push(finding);
        }
    }
    let timing = clock.finish();
    if args.json {
        println!("{}", output::json(&results, &timing, args.timings)?);
        return Ok(ExitCode::from(results.exit_code()));
    }
    output::require_evidence(&results)?;
    let seeds = match args.seed {
        Some(s) => format!("seed {s}"),
        // Half-open as Rust writes ranges; the last seed there is is u64::MAX.
        None => match args.first_seed.checked_add(args.seeds) {
            Some(end) => format!("seeds {}..{end}", args.first_seed),
            None => format!("seeds {}..={}", args.first_seed, u64::MAX),
        },
    };
    let faults = faults.map_or("drawn from each seed".into(), |f| f.to_string());
    println!(
        "zcsafe sim: turmoil simulation, kernel profile {}, {seeds}, faults {faults}\n",
        profile.name
    );
    print!("{}", table::render(&results));
    let loud = table::contradictions(&results);
    if !loud.is_empty() {
        println!("\n{loud}");
    }
    let gaps = table::gaps(&results);
    if !gaps.is_empty() {
        print!("\n{gaps}");
    }
    for (policy, t, seed, cmd) in &replays {
        println!("\n{policy} / {t}: seed {seed}; replay: {cmd}");
        if args.quiet {
            continue;
        }
        let trace = results
            .results
            .iter()
            .find(|f| f.policy == *policy && f.transport == t.name())
            .and_then(|f| f.evidence.trace.as_ref());
        if let Some(trace) = trace {
            print!("{}", render(trace));
        }
    }
    if args.timings.timings {
        print!("{}", table::timing(&timing));
    }
    Ok(ExitCode::from(results.exit_code()))
}
