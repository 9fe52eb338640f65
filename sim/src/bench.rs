//! Numbers for `make bench`: simulated scenarios per second, and how soon the simulator
//! finds each unsafe policy's first counterexample.

use crate::run::{run_entry, SimError, SimOptions};
use serde::Serialize;
use std::time::Instant;
use zcsafe_policy::{Profile, TransportClass, Verdict};

/// Scenarios (seeds) per second over policies that never stop early.
#[derive(Clone, Debug, Serialize)]
pub struct Throughput {
    pub scenarios: u64,
    pub seconds: f64,
    pub per_second: f64,
}

/// Median effort to the first counterexample of one unsafe policy and transport,
/// over several independent seed ranges.
#[derive(Clone, Debug, Serialize)]
pub struct TimeToFirst {
    pub policy: &'static str,
    pub transport: TransportClass,
    pub trials: usize,
    /// Trials that found a counterexample within the seed budget.
    pub found: usize,
    pub median_ms: f64,
    pub median_scenarios: u64,
}

/// The catalogue entries the simulator runs: UDP ones are `unsupported`
/// ([`crate::run::UDP_UNSUPPORTED`]) and would only dilute the numbers.
fn simulated() -> impl Iterator<Item = zcsafe_policies::Entry> {
    zcsafe_policies::catalogue()
        .into_iter()
        .filter(|e| e.pipeline.socket == zcsafe_policy::SocketKind::Tcp)
}

/// Runs every policy expected safe for `seeds` seeds per transport.
pub fn throughput(seeds: u64) -> Result<Throughput, SimError> {
    let profile = Profile::classic();
    let start = Instant::now();
    let mut scenarios = 0;
    for e in simulated() {
        for t in TransportClass::ALL {
            if e.expect(t, &profile).verdict != Verdict::Safe {
                continue;
            }
            let mut o = SimOptions::new(t);
            o.seeds = seeds;
            scenarios += run_entry(&e, &o)?.scenarios;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Throughput {
        scenarios,
        seconds,
        per_second: scenarios as f64 / seconds,
    })
}

/// For every policy expected to corrupt: `trials` runs from seeds `k * 100_000`, each
/// stopping at its first counterexample (at most `budget` seeds).
pub fn time_to_first(trials: usize, budget: u64) -> Result<Vec<TimeToFirst>, SimError> {
    let profile = Profile::classic();
    let mut out = Vec::new();
    for e in simulated() {
        for t in TransportClass::ALL {
            if e.expect(t, &profile).verdict != Verdict::Corrupt {
                continue;
            }
            let mut times = Vec::new();
            let mut counts = Vec::new();
            let mut found = 0;
            for k in 0..trials {
                let mut o = SimOptions::new(t);
                o.seed = k as u64 * 100_000;
                o.seeds = budget;
                let start = Instant::now();
                let r = run_entry(&e, &o)?;
                times.push(start.elapsed());
                counts.push(r.scenarios);
                found += usize::from(r.verdict == Verdict::Corrupt);
            }
            out.push(TimeToFirst {
                policy: e.name,
                transport: t,
                trials,
                found,
                median_ms: median(&mut times).as_secs_f64() * 1e3,
                median_scenarios: median(&mut counts),
            });
        }
    }
    Ok(out)
}

fn median<T: Ord + Copy + Default>(xs: &mut [T]) -> T {
    xs.sort();
    xs.get(xs.len() / 2).copied().unwrap_or_default()
}
