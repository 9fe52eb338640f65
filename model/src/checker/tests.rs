//! The fingerprinting checker against the whole-state one it replaced: the same verdict,
//! state and transition counts, and the same counterexample, step for step.

use super::reference::check_whole_states;
use super::{check, CheckOptions, CheckReport, Move};
use crate::config::Scenario;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use zcsafe_policy::{Profile, TransportClass};

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
            let scenario = Scenario::standard(t, profile.clone());
            for e in zcsafe_policies::catalogue() {
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
    let scenario = Scenario::standard(TransportClass::Remote, Profile::classic());
    for e in zcsafe_policies::catalogue() {
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
