//! Faults reach the run: turmoil's latency, hold and partition move the receiver's
//! first segment, loss forces retransmissions, a slow reader spaces reads; and a
//! finding's seed replays to the same trace.

use zcsafe_policy::{Event, Step, Trace, TransportClass, Verdict};
use zcsafe_sim::{run_entry, simulate, Faults, SimOptions};

fn trace(policy: &str, t: TransportClass, faults: &str, seed: u64) -> Trace {
    let e = zcsafe_policies::find(policy).unwrap();
    let mut o = SimOptions::new(t);
    o.faults = Some(Faults::parse(faults).unwrap());
    let s = o.scenario(seed);
    simulate(e.name, e.build(&s.model.geometry).unwrap(), &s, seed)
        .unwrap()
        .trace
}

/// Simulated milliseconds of a step.
fn ms(s: &Step) -> u64 {
    s.at_us.expect("simulated steps carry their time") / 1000
}

/// Simulated milliseconds of the first step whose event `what` matches.
fn first_ms(t: &Trace, what: impl Fn(&Event) -> bool) -> u64 {
    ms(t.steps
        .iter()
        .find(|s| what(&s.event))
        .unwrap_or_else(|| panic!("no such step in {:?}", t.steps)))
}

fn delivery(e: &Event) -> bool {
    matches!(e, Event::Deliver { .. })
}

fn retransmission(e: &Event) -> bool {
    matches!(e, Event::Retransmit { .. })
}

#[test]
fn latency_delays_the_first_arrival() {
    let t = trace("copy", TransportClass::Remote, "latency=7ms", 1);
    assert_eq!(t.verdict, Verdict::Safe);
    assert!(first_ms(&t, |e| matches!(e, Event::Deliver { seq: 0, .. })) >= 7);
}

#[test]
fn hold_and_partition_keep_segments_off_the_link() {
    let held = trace(
        "copy",
        TransportClass::Remote,
        "latency=1ms,hold=0ms..40ms",
        1,
    );
    assert_eq!(held.verdict, Verdict::Safe);
    assert!(first_ms(&held, delivery) >= 40);
    let cut = trace(
        "copy",
        TransportClass::Local,
        "latency=1ms,partition=0ms..30ms",
        1,
    );
    assert_eq!(cut.verdict, Verdict::Safe);
    assert!(first_ms(&cut, delivery) >= 30);
    assert!(cut.steps.iter().any(|s| retransmission(&s.event)));
}

#[test]
fn loss_is_repaired_by_retransmission() {
    let t = trace("copy", TransportClass::Remote, "latency=1ms,loss=0.3", 3);
    assert_eq!(t.verdict, Verdict::Safe);
    assert!(t
        .steps
        .iter()
        .any(|s| matches!(s.event, Event::Lose { .. })));
    assert!(t.steps.iter().any(|s| retransmission(&s.event)));
}

#[test]
fn slow_reader_spaces_reads() {
    let t = trace(
        "copy",
        TransportClass::Local,
        "latency=0ms,slow-reader=10ms",
        0,
    );
    assert_eq!(t.verdict, Verdict::Safe);
    let reads: Vec<u64> = t
        .steps
        .iter()
        .filter(|s| matches!(s.event, Event::Read { .. }))
        .map(ms)
        .collect();
    assert!(reads.windows(2).all(|w| w[1] >= w[0] + 10), "{reads:?}");
}

#[test]
fn a_finding_replays_from_its_seed() {
    let e = zcsafe_policies::find("siocoutq-drain").unwrap();
    let mut o = SimOptions::new(TransportClass::Local);
    o.seed = 40;
    o.seeds = 100;
    let r = run_entry(&e, &o).unwrap();
    assert_eq!(r.verdict, Verdict::Corrupt);
    let seed = r.seed.unwrap();
    assert_eq!(
        r.replay_command.as_deref(),
        Some(
            format!("zcsafe sim --policy siocoutq-drain --transport local --seed {seed}").as_str()
        )
    );
    let s = o.scenario(seed);
    let again = simulate(e.name, e.build(&s.model.geometry).unwrap(), &s, seed).unwrap();
    assert_eq!(Some(again.trace), r.trace);
}

/// `drop=K` loses exactly the K-th segment carrying new sequence space, once: the model's
/// `Lose` of that segment, and its retransmission delivered — the rule the `tun` peer's
/// `drop=K` follows, so one scenario file means the same loss on both backends.
#[test]
fn drop_loses_the_kth_new_segment_once() {
    let t = trace("copy", TransportClass::Remote, "latency=1ms,drop=3", 1);
    assert_eq!(t.verdict, Verdict::Safe);
    let lost: Vec<u32> = t
        .steps
        .iter()
        .filter_map(|s| match s.event {
            Event::Lose { seq } => Some(seq),
            _ => None,
        })
        .collect();
    assert_eq!(lost, vec![2], "the third segment (seq 2), once");
    assert!(t.steps.iter().any(|s| retransmission(&s.event)));
    let plain = trace("copy", TransportClass::Remote, "latency=1ms", 1);
    assert!(!plain
        .steps
        .iter()
        .any(|s| matches!(s.event, Event::Lose { .. })));
}
