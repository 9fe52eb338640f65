//! The `zcsafe` binary as a user runs it.

use std::process::{Command, Output};

fn zcsafe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zcsafe"))
        .args(args)
        .output()
        .expect("run zcsafe")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_prints_the_verdict_table_and_exits_0() {
    let out = zcsafe(&["check", "--quiet"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No wall clock without --timings: the whole output is the same on every run.
    let stable = stdout(&out);
    insta::with_settings!({
        snapshot_path => "../../fixtures/snapshots/cli",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!("check-table", stable);
    });
}

#[test]
fn check_json_has_one_result_per_policy_and_transport() {
    let out = zcsafe(&["check", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let results = v["results"].as_array().expect("results array");
    // Two transport classes per catalogue policy.
    assert_eq!(results.len(), 2 * zcsafe_policies::builtin().len());
    for r in results {
        for key in [
            "policy",
            "transport",
            "backend",
            "verdict",
            "expected",
            "evidence",
        ] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
        if r["verdict"] == "corrupt" {
            assert!(r["evidence"]["trace"]["steps"]
                .as_array()
                .is_some_and(|s| !s.is_empty()));
        }
    }
}

#[test]
fn a_contradiction_is_loud_and_exits_1() {
    // A one-chunk stream never reuses the buffer, so zc-naive cannot corrupt it: the
    // verdict contradicts the literature's expectation, and zcsafe says so.
    let out = zcsafe(&[
        "check", "-p", "zc-naive", "-t", "local", "--stream", "1", "-q",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("CONTRADICTION zc-naive / local (model)"),
        "{text}"
    );
    assert!(text.contains("safe (expected corrupt) !!"), "{text}");
}

#[test]
fn expectations_follow_the_run_length() {
    // With a 2-bit counter, 5 sends never reach the in-order tracker's wrap bug; 6 (the
    // derived stream) wrap a notification range and strand it; both as expected.
    for (stream, verdict) in [("5", "safe"), ("6", "stuck")] {
        let out = zcsafe(&[
            "check",
            "-p",
            "zc-inorder-tracker",
            "--zc-id-bits",
            "2",
            "--stream",
            stream,
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(0), "stream {stream}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for r in v["results"].as_array().unwrap() {
            assert_eq!(r["verdict"], verdict, "stream {stream}");
            assert_eq!(r["expected"], verdict, "stream {stream}");
            assert_eq!(
                r["evidence"]["scenario"]["geometry"]["stream"],
                stream.parse::<u64>().unwrap()
            );
        }
    }
}

#[test]
fn sweep_names_the_smallest_failing_scenario_in_text_and_json() {
    let out = zcsafe(&[
        "check",
        "-p",
        "zc-inorder-tracker",
        "-t",
        "local",
        "--sweep",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sweep zc-inorder-tracker / local: step 1/4:"),
        "progress: {err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v["results"][0];
    let steps = r["evidence"]["sweep"].as_array().expect("evidence.sweep");
    // 3, 4 chunks: the counter wraps too late; 5: a send after the wrap is released early.
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert_eq!(steps[0]["verdict"], "safe");
    assert_eq!(r["verdict"], "corrupt");
    assert_eq!(r["evidence"]["scenario"]["geometry"]["stream"], 5);
    let text = stdout(&zcsafe(&[
        "check",
        "-q",
        "-p",
        "zc-inorder-tracker",
        "-t",
        "local",
        "--sweep",
    ]));
    assert!(
        text.contains("sweep zc-inorder-tracker / local: smallest counterexample (corrupt) at step 3: 5 stream pages"),
        "{text}"
    );
}

/// A sweep whose next step outgrows `--step-states` never reached the derived scenario:
/// safe smaller steps earn no verdict for it, so the finding is `inconclusive` (exit 4).
#[test]
fn a_sweep_stopped_by_its_state_bound_is_inconclusive() {
    let out = zcsafe(&[
        "check",
        "-p",
        "zc-completion",
        "-t",
        "local",
        "--sweep",
        "--step-states",
        "2000",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v["results"][0];
    assert_eq!(r["verdict"], "inconclusive", "{r}");
    assert_eq!(out.status.code(), Some(4), "{r}");
    let detail = r["evidence"]["detail"].as_str().unwrap();
    assert!(detail.contains("the next step stopped"), "{detail}");
}

#[test]
fn usage_errors_exit_2_with_a_hint() {
    let out = zcsafe(&["check", "--policy", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("zcsafe policies"));
    let out = zcsafe(&["check", "--profile", "/nonexistent.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("built-in"));
    let out = zcsafe(&["check", "--stream", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `--device tun` checks the remote class behind a TUN device: the scenario says so,
/// the trace names the device and its transmissions say the frags were copied there; it
/// is refused for the local class, which has no device.
#[test]
fn check_behind_a_tun_device_says_so_and_is_refused_for_local() {
    let tun = [
        "check",
        "-p",
        "uring-zc-naive",
        "-t",
        "remote",
        "--device",
        "tun",
    ];
    let out = zcsafe(&[&tun[..], &["--json"]].concat());
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v["results"][0];
    assert_eq!(r["verdict"], "corrupt");
    assert_eq!(r["evidence"]["scenario"]["device"], "tun");
    let trace = &r["evidence"]["trace"];
    assert_eq!(trace["device"], "tun");
    let tx = trace["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["event"]["kind"] == "transmit")
        .expect("a transmission");
    assert_eq!(tx["event"]["frags_copied"], true, "{tx}");
    let text = stdout(&zcsafe(&tun));
    assert!(text.contains("zerocopy counter, device tun"), "{text}");
    assert!(text.contains("tun_net_xmit"), "{text}");
    // The NIC, the default, is left out of the JSON as before.
    let out = zcsafe(&["check", "-p", "uring-zc-naive", "-t", "remote", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["results"][0]["evidence"]["trace"].get("device").is_none());
    let out = zcsafe(&["check", "-t", "local", "--device", "tun"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("remote class"));
}

#[test]
fn profiles_change_predictions_not_agreement() {
    let out = zcsafe(&["check", "--profile", "copying-splice", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let find = |p: &str, t: &str| {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["policy"] == p && r["transport"] == t)
            .unwrap()["verdict"]
            .clone()
    };
    assert_eq!(find("vmsplice-double-buffer", "local"), "safe");
    assert_eq!(find("vmsplice-gift-fresh", "local"), "unsupported");
    assert_eq!(find("zc-naive", "local"), "corrupt");
}

#[test]
fn policies_lists_the_catalogue() {
    let out = zcsafe(&["policies"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for name in [
        "copy",
        "siocoutq-drain",
        "uring-zc-notif",
        "sendfile-rotate",
        "udp-zc-naive",
        "udp-zc-completion",
    ] {
        assert!(text.contains(name), "{name}");
    }
    let json = zcsafe(&["policies", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        v.as_array().unwrap().len(),
        zcsafe_policies::builtin().len()
    );
}

#[test]
fn a_closed_stdout_ends_quietly() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_zcsafe"))
        .args(["check"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // like `| head` exiting at once
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141));
}

/// The simulator's network is TCP's: `zcsafe sim` answers `unsupported` for the UDP
/// policies, with the reason, and expects exactly that — no contradiction, no model
/// prediction it cannot reach.
#[test]
fn sim_expects_unsupported_for_udp_policies_and_says_why() {
    let out = zcsafe(&["sim", "-p", "udp-zc-naive,udp-zc-completion", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "two policies, two classes");
    for r in results {
        assert_eq!(r["verdict"], "unsupported", "{r}");
        assert_eq!(r["expected"], "unsupported", "{r}");
        assert!(r["predicted"].is_null(), "{r}");
        assert!(
            r["evidence"]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("zcsafe check")),
            "{r}"
        );
    }
}
