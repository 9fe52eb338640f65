//! proptest over whole scenarios: a policy expected safe never corrupts; a policy
//! expected unsafe yields a counterexample within a bounded number of cases, shrunk to
//! a small world and written to `fixtures/sim/` (trace JSON + timeline snapshot).
//!
//! Cases: 24 per safe policy and transport by default, 512 with `ZCSAFE_LONG=1`
//! (`PROPTEST_CASES` overrides both). The generator is seeded, so runs repeat exactly.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use std::path::PathBuf;
use zcsafe_policy::{Profile, TransportClass, Verdict};
use zcsafe_sim::strategy::{sim_case, SimCase};

/// Cases within which a policy expected unsafe must be caught.
const FIND_WITHIN: u32 = 256;

fn cases() -> u32 {
    if let Some(n) = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if std::env::var_os("ZCSAFE_LONG").is_some() {
        512
    } else {
        24
    }
}

fn runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 400,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

fn describe(case: &SimCase) -> String {
    format!(
        "seed {} scenario {}",
        case.seed,
        serde_json::to_string(&case.scenario).unwrap()
    )
}

fn never_corrupts(entry: zcsafe_policies::Entry) -> impl Fn(SimCase) -> Result<(), TestCaseError> {
    move |case: SimCase| {
        let run = case
            .run(&entry)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let Some(run) = run else {
            return Err(TestCaseError::reject(
                "policy not buildable for these sizes",
            ));
        };
        prop_assert_ne!(run.verdict, Verdict::Corrupt, "{}", run.trace.summary);
        Ok(())
    }
}

#[test]
fn policies_expected_safe_never_corrupt() {
    let profile = Profile::classic();
    for entry in zcsafe_policies::catalogue() {
        for t in TransportClass::ALL {
            if entry.expect(t, &profile).verdict != Verdict::Safe {
                continue;
            }
            let result = runner(cases()).run(&sim_case(t, profile.clone()), never_corrupts(entry));
            if let Err(TestError::Fail(why, case)) = result {
                panic!("{} {t} corrupts: {why}\n{}", entry.name, describe(&case));
            }
        }
    }
}

#[test]
fn policies_expected_unsafe_shrink_to_a_small_counterexample() {
    let profile = Profile::classic();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/sim");
    std::fs::create_dir_all(&dir).unwrap();
    // The simulator runs no UDP world (agreement.rs: `udp_entries_are_unsupported_with_the_reason`).
    let tcp = zcsafe_policies::catalogue()
        .into_iter()
        .filter(|e| e.pipeline.socket == zcsafe_policy::SocketKind::Tcp);
    for entry in tcp {
        for t in TransportClass::ALL {
            if entry.expect(t, &profile).verdict != Verdict::Corrupt {
                continue;
            }
            let result =
                runner(FIND_WITHIN).run(&sim_case(t, profile.clone()), never_corrupts(entry));
            let minimal = match result {
                Err(TestError::Fail(_, case)) => case,
                other => panic!(
                    "{} {t}: no counterexample within {FIND_WITHIN} cases ({other:?})",
                    entry.name
                ),
            };
            let run = minimal.run(&entry).unwrap().unwrap();
            assert_eq!(run.verdict, Verdict::Corrupt, "the shrunk case replays");
            let name = format!("{}-{t}", entry.name);
            let json = serde_json::to_string_pretty(&run.trace).unwrap();
            std::fs::write(dir.join(format!("{name}.json")), json + "\n").unwrap();
            insta::with_settings!({
                snapshot_path => "../../fixtures/sim/snapshots",
                prepend_module_to_snapshot => false,
                description => describe(&minimal),
                omit_expression => true,
            }, {
                insta::assert_snapshot!(name.clone(), zcsafe_explain::text::render(&run.trace));
            });
            assert!(
                run.trace.steps.len() <= 60,
                "{name}: the shrunk trace should be short, has {} steps",
                run.trace.steps.len()
            );
        }
    }
}
