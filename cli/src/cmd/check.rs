//! `zcsafe check`: every selected policy × transport class, judged by an exhaustive
//! check of the kernel model, with the shortest counterexample under each unsafe verdict.

use crate::junit::JunitArgs;
use crate::output::{self, Clock, TimingArgs};
use crate::progress::SearchProgress;
use crate::table;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::ExitCode;
use zcsafe_explain::text::render;
use zcsafe_model::{check_observed, CheckOptions, Scenario};
use zcsafe_policy::{Evidence, Finding, Profile, Results, TransportClass, Verdict};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    select: super::Selection,
    /// Transport class: local (loopback, veth: the peer socket keeps the pages),
    /// remote (a real NIC: the device reads them), or all.
    #[arg(long, short = 't', default_value = "all", value_parser = ["local", "remote", "all"])]
    transport: String,
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
}

/// Overrides of the standard scenario (sizes in pages).
#[derive(clap::Args)]
pub struct ScenarioArgs {
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
    /// Segments the network may drop.
    #[arg(long)]
    losses: Option<u8>,
    /// Retransmission timeouts that may fire although nothing was lost.
    #[arg(long)]
    spurious_rto: Option<u8>,
    /// Width of the MSG_ZEROCOPY counter (32 on real kernels; small to reach wrap).
    #[arg(long, value_name = "BITS")]
    zc_id_bits: Option<u8>,
    /// Give up beyond this many states.
    #[arg(long, default_value_t = 20_000_000)]
    max_states: usize,
    /// Stop a cell once its search holds more than SIZE (`512M`, `4G`, bytes without a
    /// unit): that cell is `inconclusive` (exit status 4) with the states and depth it
    /// covered, never `safe`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_memory: Option<u64>,
    /// Threads that expand each BFS level (default: every available core). The output is
    /// the same bytes whatever the number.
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
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
    fn apply(&self, s: &mut Scenario) {
        let (g, c) = (&mut s.geometry, &mut s.config);
        g.stream = self.stream.unwrap_or(g.stream);
        g.buffer = self.buffer.unwrap_or(g.buffer);
        g.zc_id_bits = self.zc_id_bits.unwrap_or(g.zc_id_bits);
        c.sndbuf = self.sndbuf.unwrap_or(c.sndbuf);
        c.rcvbuf = self.rcvbuf.unwrap_or(c.rcvbuf);
        c.losses = self.losses.unwrap_or(c.losses);
        c.spurious_rto = self.spurious_rto.unwrap_or(c.spurious_rto);
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
    let opts = CheckOptions {
        max_states: args.scenario.max_states,
        max_memory: args.scenario.max_memory,
        threads: args.scenario.threads,
    };
    // Progress only for a person watching: not into a pipe, a CI log or JSON.
    let mut progress = SearchProgress::new(!args.json && !args.quiet);
    let mut clock = Clock::start();
    let mut results = Results::default();
    let mut states = 0usize;
    let mut scenario_line = String::new();
    for t in transports(&args.transport) {
        let mut scenario = Scenario::standard(t, profile.clone());
        args.scenario.apply(&mut scenario);
        scenario
            .validate()
            .context("the scenario options do not describe a runnable model")?;
        scenario_line = describe(&scenario);
        for e in &entries {
            let expected = e.expect_for(t, &profile, &scenario.geometry);
            let mut finding = Finding {
                policy: e.name.into(),
                transport: t.name().into(),
                backend: "model".into(),
                kernel: None,
                verdict: Verdict::Error,
                expected: expected.verdict,
                expected_why: expected.why.into(),
                predicted: None,
                evidence: Evidence::default(),
            };
            match e.build(&scenario.geometry) {
                Err(err) => finding.evidence.detail = format!("cannot build the policy: {err}"),
                Ok(policy) => {
                    let cell = format!("{} / {t}", e.name);
                    let report =
                        check_observed(policy, &scenario, &opts, &mut |p| progress.show(&cell, p))
                            .with_context(|| format!("checking {cell}"))?
                            .named(e.name);
                    progress.clear();
                    states += report.states;
                    finding.verdict = report.verdict;
                    finding.evidence.detail = report.detail;
                    finding.evidence.trace = report.trace;
                    let c = &mut finding.evidence.counts;
                    c.insert("states".into(), report.states.into());
                    c.insert("transitions".into(), report.transitions.into());
                    c.insert("complete_states".into(), report.complete_states.into());
                    if let Some(cov) = report.coverage {
                        c.insert("max_memory".into(), cov.max_memory.into());
                        c.insert("depth".into(), cov.depth.into());
                        c.insert("held_bytes".into(), cov.held_bytes.into());
                    }
                    clock.timing.push(e.name, t.name(), report.elapsed);
                }
            }
            results.results.push(finding);
        }
    }
    let timing = clock.finish();
    if args.json {
        println!("{}", output::json(&results, &timing, args.timings)?);
    } else {
        output::require_evidence(&results)?;
        print_human(&results, &profile, &scenario_line, states, args.quiet);
        if args.timings.timings {
            print!("{}", table::timing(&timing));
        }
    }
    args.junit.write(|| {
        zcsafe_policy::junit::write("zcsafe check", &zcsafe_policy::junit::cases(&results))
    })?;
    Ok(ExitCode::from(results.exit_code()))
}

fn describe(s: &Scenario) -> String {
    let (g, c) = (&s.geometry, &s.config);
    format!(
        "{} stream pages, {}-page buffer, {}-page pipe, sndbuf {}, rcvbuf {}, cwnd {}, {} loss(es), {} spurious RTO(s), {}-bit zerocopy counter",
        g.stream, g.buffer, g.pipe, c.sndbuf, c.rcvbuf, c.cwnd, c.losses, c.spurious_rto, g.zc_id_bits
    )
}

fn print_human(results: &Results, profile: &Profile, scenario: &str, states: usize, quiet: bool) {
    println!(
        "zcsafe check: exhaustive model check, kernel profile {}",
        profile.name
    );
    println!("scenario: {scenario}\n");
    print!("{}", table::render(results));
    println!("\n{}; {states} states explored", table::tally(results));
    let loud = table::contradictions(results);
    if !loud.is_empty() {
        println!("\n{loud}");
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
