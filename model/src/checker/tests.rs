//! The fingerprinting checker against the whole-state one it replaced: the same verdict,
//! state and transition counts, and the same counterexample, step for step.

use super::reference::check_whole_states;
use super::{check, CheckOptions, CheckReport, Move};
use crate::config::Scenario;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use zcsafe_policy::{Profile, TransportClass, Verdict};

/// Everything a report says except how long it took.
fn judged(r: &CheckReport) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("a report serializes");
    v.as_object_mut().expect("an object").remove("elapsed");
    v
}

/// A report without its time, or the error of the check.
type Judged = Result<serde_json::Value, String>;

/// Checks `entry` in `scenario` with both engines; `None` if the policy does not fit.
fn both(
    entry: &zcsafe_policies::Entry,
    scenario: &Scenario,
    opts: &CheckOptions,
) -> Option<(Judged, Judged)> {
    let build = || entry.build(&scenario.geometry).ok();
    let run = |r: Result<CheckReport, _>| r.map(|r| judged(&r)).map_err(|e| format!("{e}"));
    let new = run(check(build()?, scenario, opts));
    let old = run(check_whole_states(build()?, scenario, opts));
    Some((new, old))
}

#[test]
fn every_catalogue_cell_is_judged_as_by_the_whole_state_checker() {
    let mut cells = 0;
    for profile in Profile::builtin() {
        for t in TransportClass::ALL {
            for e in zcsafe_policies::catalogue() {
                let scenario = Scenario::standard_for(&e.pipeline, t, profile.clone());
                let (new, old) =
                    both(&e, &scenario, &CheckOptions::default()).expect("standard fits");
                assert_eq!(new, old, "{} / {t} / {}", e.name, profile.name);
                cells += 1;
            }
        }
    }
    assert!(cells >= 28, "only {cells} cells compared");
}

#[test]
fn the_state_limit_stops_both_checkers_alike() {
    for e in zcsafe_policies::catalogue() {
        let scenario =
            Scenario::standard_for(&e.pipeline, TransportClass::Remote, Profile::classic());
        for max_states in [1, 50, 400] {
            let opts = CheckOptions {
                max_states,
                ..CheckOptions::default()
            };
            let (new, old) = both(&e, &scenario, &opts).expect("standard fits");
            assert_eq!(new, old, "{} with at most {max_states} states", e.name);
        }
    }
}

/// Small scenarios (seconds for the whole catalogue) with every size and fault knob drawn.
fn small_scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::sample::select(TransportClass::ALL.to_vec()),
        (1u64..=6, 1u64..=3, 1u64..=2),
        (1u64..=3, 1u64..=3, 1u64..=3),
        (0u8..=2, 0u8..=1, 1u8..=2, any::<bool>()),
    )
        .prop_map(
            |(t, (stream, buffer, pipe), (sndbuf, cwnd, rcvbuf), (losses, rto, optmem, pr))| {
                let mut s = Scenario::standard(t, Profile::classic());
                s.geometry.stream = stream;
                s.geometry.buffer = buffer;
                s.geometry.pipe = pipe;
                let c = &mut s.config;
                (c.sndbuf, c.cwnd, c.rcvbuf) = (sndbuf, cwnd, rcvbuf);
                (c.losses, c.spurious_rto, c.zc_optmem, c.pipe_reader) = (losses, rto, optmem, pr);
                s
            },
        )
}

#[test]
fn drawn_scenarios_are_judged_as_by_the_whole_state_checker() {
    let config = Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    };
    // Seeded: a failure names a scenario that repeats on every run.
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let opts = CheckOptions {
        max_states: 200_000,
        ..CheckOptions::default()
    };
    let result = runner.run(&small_scenario(), |scenario| {
        for e in zcsafe_policies::catalogue() {
            if let Some((new, old)) = both(&e, &scenario, &opts) {
                prop_assert_eq!(new, old, "{} in {:?}", e.name, scenario);
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn a_state_costs_six_bytes_of_parent_links() {
    // The memory claim of docs/design.md §11: a u32 parent and a two-byte move.
    assert_eq!(std::mem::size_of::<Move>(), 2);
}

/// A scenario whose BFS levels hold thousands of states: many runs per level, so the
/// workers really share them out.
fn wide_scenario(t: TransportClass) -> Scenario {
    let mut s = Scenario::standard(t, Profile::classic());
    s.geometry.stream = 8;
    s.geometry.buffer = 4;
    (s.config.sndbuf, s.config.rcvbuf) = (4, 4);
    s
}

#[test]
fn the_report_is_the_same_whatever_the_thread_count() {
    for t in TransportClass::ALL {
        let scenario = wide_scenario(t);
        for name in ["zc-completion", "siocoutq-seq", "zc-naive"] {
            let e = zcsafe_policies::find(name).expect("a catalogue policy");
            let run = |threads| {
                let opts = CheckOptions {
                    threads,
                    ..CheckOptions::default()
                };
                let p = e.build(&scenario.geometry).expect("fits");
                judged(&check(p, &scenario, &opts).expect("within limits"))
            };
            let one = run(1);
            if one["verdict"] == "safe" {
                assert!(
                    one["states"].as_u64() > Some(5_000),
                    "{name}/{t}: too small to split"
                );
            }
            for threads in [2, 3, 8] {
                assert_eq!(run(threads), one, "{name} / {t} on {threads} threads");
            }
            let p = e.build(&scenario.geometry).expect("fits");
            let reference = check_whole_states(p, &scenario, &CheckOptions::default());
            assert_eq!(
                judged(&reference.expect("within limits")),
                one,
                "{name} / {t}"
            );
        }
    }
}

#[test]
fn a_memory_bound_stops_with_no_verdict_and_says_what_it_covered() {
    let scenario = wide_scenario(TransportClass::Remote);
    let e = zcsafe_policies::find("zc-completion").expect("a catalogue policy");
    let run = |max_memory, threads| {
        let opts = CheckOptions {
            max_memory,
            threads,
            ..CheckOptions::default()
        };
        check(e.build(&scenario.geometry).expect("fits"), &scenario, &opts).expect("runs")
    };
    let full = run(None, 1);
    assert_eq!(full.verdict, Verdict::Safe);
    assert!(full.coverage.is_none());
    let bound = 2 << 20;
    let cut = run(Some(bound), 1);
    assert_eq!(
        cut.verdict,
        Verdict::Inconclusive,
        "never safe without exhausting"
    );
    let cov = cut.coverage.expect("coverage of a bounded run");
    assert_eq!(cov.max_memory, bound);
    assert!(cov.held_bytes > bound, "it stopped because it held more");
    assert!(cut.states < full.states && cov.depth > 1, "{cov:?}");
    assert!(cut.trace.is_none());
    assert!(cut.detail.contains("no verdict"), "{}", cut.detail);
    // The bound stops at the same state on any number of threads.
    assert_eq!(judged(&run(Some(bound), 2)), judged(&cut));
    // A bound the search never reaches changes nothing.
    assert_eq!(judged(&run(Some(1 << 40), 2)), judged(&full));
}
