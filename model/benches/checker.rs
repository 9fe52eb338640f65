//! `make bench` (checker part): states explored per second and time to exhaust each
//! policy's standard scenario, median of several runs, plus one larger scenario; then
//! issue 16's pipeline (stream 16, buffer 4, sndbuf 4, rcvbuf 4) on one and two threads.
//!
//! `cargo bench -p zcsafe-model --bench checker [-- --json]`

use std::time::{Duration, Instant};
use zcsafe_model::{check, CheckOptions, Scenario};
use zcsafe_policy::{Profile, TransportClass};

const RUNS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let mut rows = Vec::new();
    let mut total_states = 0usize;
    let mut total_time = Duration::ZERO;
    let scenarios = |t| {
        let standard = Scenario::standard(t, Profile::classic());
        let mut large = standard.clone();
        large.geometry.stream = 8;
        large.config.losses = 2;
        [("standard", standard), ("large", large)]
    };
    for t in TransportClass::ALL {
        for (size, scenario) in scenarios(t) {
            for e in zcsafe_policies::catalogue() {
                let mut times = Vec::new();
                let mut states = 0;
                // One warm-up run, then RUNS measured ones.
                for i in 0..=RUNS {
                    let p = e.build(&scenario.geometry).unwrap();
                    let start = Instant::now();
                    let r = check(p, &scenario, &CheckOptions::default()).unwrap();
                    if i > 0 {
                        times.push(start.elapsed());
                    }
                    states = r.states;
                }
                let spread = (
                    times.iter().min().copied().unwrap(),
                    times.iter().max().copied().unwrap(),
                );
                let m = median(times);
                if size == "standard" {
                    total_states += states;
                    total_time += m;
                }
                rows.push(serde_json::json!({
                    "policy": e.name, "transport": t.name(), "scenario": size, "states": states,
                    "median_ms": m.as_secs_f64() * 1e3,
                    "min_ms": spread.0.as_secs_f64() * 1e3, "max_ms": spread.1.as_secs_f64() * 1e3,
                    "states_per_s": states as f64 / m.as_secs_f64(),
                }));
            }
        }
    }
    // Issue 16's first row: the realistic pipeline, once per thread count (one run
    // each: seconds, not milliseconds).
    let mut pipeline = Vec::new();
    for t in TransportClass::ALL {
        let mut s = Scenario::standard(t, Profile::classic());
        s.geometry.stream = 16;
        s.geometry.buffer = 4;
        (s.config.sndbuf, s.config.rcvbuf) = (4, 4);
        for name in ["zc-completion", "siocoutq-seq"] {
            let e = zcsafe_policies::find(name).unwrap();
            for threads in [1, 2] {
                let opts = CheckOptions {
                    threads,
                    ..CheckOptions::default()
                };
                let start = Instant::now();
                let r = check(e.build(&s.geometry).unwrap(), &s, &opts).unwrap();
                let took = start.elapsed();
                pipeline.push(serde_json::json!({
                    "policy": name, "transport": t.name(), "scenario": "pipeline-16x4",
                    "threads": threads, "states": r.states, "ms": took.as_secs_f64() * 1e3,
                    "states_per_s": r.states as f64 / took.as_secs_f64(),
                }));
            }
        }
    }
    if json {
        rows.extend(pipeline);
        println!("{}", serde_json::to_string_pretty(&rows).unwrap());
        return;
    }
    println!(
        "{:24} {:7} {:9} {:>9} {:>10} {:>17} {:>12}",
        "policy", "class", "scenario", "states", "median ms", "min..max ms", "states/s"
    );
    for r in &rows {
        println!(
            "{:24} {:7} {:9} {:>9} {:>10.2} {:>8.2}..{:<8.2} {:>12.0}",
            r["policy"].as_str().unwrap(),
            r["transport"].as_str().unwrap(),
            r["scenario"].as_str().unwrap(),
            r["states"],
            r["median_ms"].as_f64().unwrap(),
            r["min_ms"].as_f64().unwrap(),
            r["max_ms"].as_f64().unwrap(),
            r["states_per_s"].as_f64().unwrap()
        );
    }
    println!(
        "\nall standard scenarios: {total_states} states exhausted in {:.3} s ({:.0} states/s)",
        total_time.as_secs_f64(),
        total_states as f64 / total_time.as_secs_f64()
    );
    println!(
        "\n{:24} {:7} {:14} {:>7} {:>9} {:>10} {:>12}",
        "policy", "class", "scenario", "threads", "states", "ms", "states/s"
    );
    for r in &pipeline {
        println!(
            "{:24} {:7} {:14} {:>7} {:>9} {:>10.0} {:>12.0}",
            r["policy"].as_str().unwrap(),
            r["transport"].as_str().unwrap(),
            r["scenario"].as_str().unwrap(),
            r["threads"],
            r["states"],
            r["ms"].as_f64().unwrap(),
            r["states_per_s"].as_f64().unwrap()
        );
    }
}
