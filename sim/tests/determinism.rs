//! A run is a pure function of its seed: the same seed gives the byte-identical trace.

use zcsafe_policy::{TransportClass, Verdict};
use zcsafe_sim::{simulate, Faults, SimOptions};

fn trace_json(policy: &str, t: TransportClass, seed: u64, faults: Option<&str>) -> String {
    let e = zcsafe_policies::find(policy).unwrap();
    let mut o = SimOptions::new(t);
    o.faults = faults.map(|f| Faults::parse(f).unwrap());
    let s = o.scenario(seed);
    let r = simulate(e.name, e.build(&s.model.geometry).unwrap(), &s, seed).unwrap();
    assert_eq!(r.trace.backend, zcsafe_policy::Backend::Sim);
    serde_json::to_string(&r.trace).unwrap()
}

#[test]
fn same_seed_same_trace() {
    for (policy, t, faults) in [
        ("zc-completion", TransportClass::Remote, None),
        ("siocoutq-drain", TransportClass::Local, None),
        (
            "app-ack",
            TransportClass::Remote,
            Some("latency=2ms,jitter=5ms,loss=0.2,reorder=0.3,partition=5ms..15ms,hold=20ms..30ms,slow-reader=2ms,device=3ms"),
        ),
    ] {
        for seed in [0, 1, 99] {
            let a = trace_json(policy, t, seed, faults);
            let b = trace_json(policy, t, seed, faults);
            assert_eq!(a, b, "{policy} {t} seed {seed} is not deterministic");
        }
    }
}

#[test]
fn different_seeds_explore_different_runs() {
    let runs: std::collections::BTreeSet<String> = (0..8)
        .map(|s| trace_json("copy", TransportClass::Remote, s, None))
        .collect();
    assert!(runs.len() > 4, "seeds should vary faults and orders");
}

#[test]
fn harsh_faults_still_finish_a_safe_policy() {
    let e = zcsafe_policies::find("copy").unwrap();
    let mut o = SimOptions::new(TransportClass::Remote);
    o.faults = Some(
        Faults::parse(
            "latency=3ms,jitter=10ms,loss=0.3,reorder=0.3,partition=10ms..60ms,slow-reader=5ms",
        )
        .unwrap(),
    );
    o.seeds = 10;
    let r = zcsafe_sim::run_entry(&e, &o).unwrap();
    assert_eq!(r.verdict, Verdict::Safe, "{}", r.detail);
}
