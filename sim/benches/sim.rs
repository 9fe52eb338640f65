//! `cargo bench -p zcsafe-sim` (or `make bench`): simulated scenarios per second, and
//! median time and scenarios to the first counterexample of each unsafe policy.
//! `--json` prints one JSON object instead of the table.

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let t = zcsafe_sim::bench::throughput(100).expect("throughput run");
    let firsts = zcsafe_sim::bench::time_to_first(9, 2_000).expect("time-to-first runs");
    if json {
        let v = serde_json::json!({ "throughput": t, "time_to_first_counterexample": firsts });
        println!("{}", serde_json::to_string_pretty(&v).unwrap());
        return;
    }
    println!(
        "sim throughput: {} scenarios in {:.2} s = {:.0} scenarios/s (safe policies, both transports)",
        t.scenarios, t.seconds, t.per_second
    );
    println!(
        "\ntime to first counterexample (median of {} seed ranges):",
        firsts.first().map_or(0, |f| f.trials)
    );
    println!(
        "{:24} {:7} {:>10} {:>10} {:>6}",
        "policy", "transport", "median ms", "scenarios", "found"
    );
    for f in &firsts {
        println!(
            "{:24} {:7} {:>10.2} {:>10} {:>3}/{}",
            f.policy,
            f.transport.name(),
            f.median_ms,
            f.median_scenarios,
            f.found,
            f.trials
        );
    }
}
