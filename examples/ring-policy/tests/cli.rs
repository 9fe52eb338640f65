//! The author's own `zcsafe` binary (`src/main.rs`): every command knows `zc-drain`.

mod common;

use common::{fields, json, zcsafe};
use serde_json::Value;
use zcsafe_policy::Profile;

/// `(transport, verdict, expected)` of every finding (all of them `zc-drain`'s).
fn verdicts(results: &Value) -> Vec<(String, String, String)> {
    fields(results, &["policy", "transport", "verdict", "expected"])
        .into_iter()
        .map(|f| {
            assert_eq!(f[0], "zc-drain");
            (f[1].clone(), f[2].clone(), f[3].clone())
        })
        .collect()
}

#[test]
fn the_outside_policy_is_listed_beside_the_catalogue() {
    let out = zcsafe(&["policies"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("zc-drain"), "{text}");
    assert!(text.contains("zc-completion"), "{text}");
}

#[test]
fn check_judges_it_by_name_and_agrees_with_its_expectation() {
    let out = zcsafe(&["check", "-p", "zc-drain", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = verdicts(&json(&out));
    assert_eq!(got.len(), 2);
    for (t, v, e) in got {
        assert_eq!((v.as_str(), e.as_str()), ("safe", "safe"), "{t}");
    }
}

/// A kernel that stopped copying zero-copy frags on local delivery: the counterexample
/// carries the policy's name, so `replay` finds the policy again.
#[test]
fn its_counterexample_replays_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile {
        name: "no-orphan-copy".into(),
        zerocopy_local_copies: false,
        ..Profile::classic()
    };
    let profile_file = dir.path().join("profile.json");
    std::fs::write(&profile_file, serde_json::to_string(&profile).unwrap()).unwrap();
    let out = zcsafe(&[
        "check",
        "-p",
        "zc-drain",
        "-t",
        "local",
        "--json",
        "--profile",
        profile_file.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results = json(&out);
    assert_eq!(
        verdicts(&results),
        [("local".into(), "corrupt".into(), "corrupt".into())]
    );
    let trace = &results["results"][0]["evidence"]["trace"];
    assert_eq!(trace["policy"], "zc-drain");

    let file = dir.path().join("check.json");
    std::fs::write(&file, &out.stdout).unwrap();
    let file = file.to_str().unwrap();
    // The trace keeps the profile's name only: replaying it as another kernel would
    // judge something else, so zcsafe asks for the file again.
    let refused = zcsafe(&["replay", file, "--on", "model"]);
    assert_eq!(refused.status.code(), Some(2));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("no-orphan-copy") && why.contains("--profile"),
        "{why}"
    );

    let profile_arg = profile_file.to_str().unwrap();
    let replay = zcsafe(&[
        "replay",
        file,
        "--on",
        "model",
        "--profile",
        profile_arg,
        "--json",
    ]);
    let r = json(&replay);
    assert_eq!(replay.status.code(), Some(0), "{r}");
    assert_eq!(r["policy"], "zc-drain");
    assert_eq!(r["same"], true, "{r}");
    assert_eq!(r["same_steps"], true, "{r}");
}

/// The simulator runs the 4-slot ring in its own geometry (the scenario derived from its
/// pipeline), finds the bug, and prints a replay command for this binary, not `zcsafe`.
#[test]
fn sim_runs_the_ring_in_its_own_geometry_and_prints_a_replay_for_this_binary() {
    let out = zcsafe(&[
        "sim",
        "-p",
        "ring-zc-inorder",
        "-t",
        "local",
        "--seeds",
        "3",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    let f = &v["results"][0];
    assert_eq!(f["verdict"], "corrupt", "{f}");
    let cmd = f["evidence"]["counts"]["replay_command"]
        .as_str()
        .unwrap_or_default();
    assert!(
        cmd.starts_with("zcsafe-ring sim --policy ring-zc-inorder"),
        "{cmd}"
    );
    assert!(
        f["evidence"]["hazards"]["reached"]["reuse-before-read"].as_u64() > Some(0),
        "{f}"
    );
}
