//! `zcsafe explain`, `replay` and `fixtures` as a user runs them: exit codes, what is
//! printed, and clear errors for files that are not traces.

use std::path::PathBuf;
use std::process::Command;

fn zcsafe(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zcsafe"))
        .args(args)
        .output()
        .expect("zcsafe runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> String {
    root()
        .join("fixtures/traces")
        .join(format!("{name}.json"))
        .display()
        .to_string()
}

#[test]
fn explain_prints_lanes_and_sentences_or_writes_an_svg() {
    let (code, out, _) = zcsafe(&["explain", &fixture("siocoutq-drain-local")]);
    assert_eq!(code, 0);
    assert!(out.contains("app  pipe wq   wire peer"), "{out}");
    assert!(
        out.contains("is still held by the peer receive queue"),
        "{out}"
    );

    let dir = tempfile_dir();
    let svg = dir.join("t.svg");
    let (code, out, _) = zcsafe(&[
        "explain",
        &fixture("siocoutq-drain-local"),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("wrote ") && out.contains("siocoutq-drain"),
        "{out}"
    );
    assert!(
        !out.contains("app  pipe"),
        "the figure replaces the text: {out}"
    );
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("write queue"));
}

#[test]
fn explain_picks_from_check_json_and_refuses_foreign_files() {
    let dir = tempfile_dir();
    let (code, json, _) = zcsafe(&["check", "--policy", "zc-naive,siocoutq-drain", "--json"]);
    assert_eq!(code, 0);
    let results = dir.join("r.json");
    std::fs::write(&results, json).unwrap();
    let r = results.to_str().unwrap();
    let (code, _, err) = zcsafe(&["explain", r]);
    assert_eq!(code, 2);
    assert!(err.contains("pick one with --policy"), "{err}");
    let (code, out, _) = zcsafe(&["explain", r, "-p", "zc-naive", "-t", "remote"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("zc-naive on remote"), "{out}");

    let foreign = dir.join("foreign.json");
    std::fs::write(&foreign, r#"{"name": "not a trace"}"#).unwrap();
    let (code, _, err) = zcsafe(&["explain", foreign.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("foreign.json: not a zcsafe trace"), "{err}");
    assert!(!err.contains("panicked"));

    let future = dir.join("future.json");
    std::fs::write(&future, r#"{"format": 7, "steps": []}"#).unwrap();
    let (code, _, err) = zcsafe(&["explain", future.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("format version 7"), "{err}");
}

#[test]
fn replay_on_the_model_says_same_and_refuses_what_it_cannot_do() {
    let (code, out, _) = zcsafe(&["replay", &fixture("lwn-double-buffer"), "--on", "model"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("steps: identical") && out.contains("=> same outcome"),
        "{out}"
    );
    let (code, _, err) = zcsafe(&["replay", &fixture("rapidgzip-39"), "--on", "kernel"]);
    assert_eq!(code, 2);
    assert!(err.contains("backend kernel not available"), "{err}");
}

#[test]
fn fixtures_lists_and_checks_on_the_model() {
    let (code, out, _) = zcsafe(&["fixtures"]);
    assert_eq!(code, 0);
    for name in ["lwn-double-buffer", "spdk-3600", "rapidgzip-39"] {
        assert!(out.contains(name), "{name}");
    }
    let (code, out, _) = zcsafe(&["fixtures", "--check", "--backend", "model"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("22 fixture checks: 22 passed, 0 failed, 0 skipped"),
        "{out}"
    );
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "zcsafe-explain-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Whether a schedule replay can run here (root); a counted skip of `test` otherwise.
fn can_replay_on_kernel(test: &str) -> bool {
    let root = zcsafe_kernel::is_root();
    if !root {
        zcsafe_kernel::skip::skipped(
            test,
            "a schedule replay over tun needs root (network namespaces)",
        );
    }
    root
}

/// `zcsafe check -p POLICY -t remote --json > f.json` in `dir`: the file's path and its
/// JSON.
fn remote_counterexample(dir: &tempfile::TempDir, policy: &str) -> (String, String) {
    let (code, json, _) = zcsafe(&["check", "-p", policy, "-t", "remote", "--json"]);
    assert_eq!(code, 0);
    let f = dir.path().join("f.json");
    std::fs::write(&f, &json).unwrap();
    (f.display().to_string(), json)
}

/// `zcsafe replay f.json --on kernel` of a remote-class model counterexample as a user
/// runs it (root: a namespace and a TUN device): the step-by-step conformance report,
/// zero divergences and exit 0; the same file with one transmission changed diverges at
/// that step, loudly, with exit 1.
#[test]
fn a_remote_counterexample_is_replayed_step_by_step_on_the_kernel() {
    if !can_replay_on_kernel("replay --on kernel step by step") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (f, json) = remote_counterexample(&dir, "zc-naive");
    let (code, out, err) = zcsafe(&["replay", &f, "--on", "kernel"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("conformance (model step → what the kernel did)"),
        "{out}"
    );
    assert!(out.contains("steps: the kernel followed all"), "{out}");
    assert!(!out.contains("DIVERGED"), "{out}");
    assert!(err.contains("ms wall time"), "{err}");
    let (code, j, _) = zcsafe(&["replay", &f, "--on", "kernel", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["conformance"]["divergences"], 0, "{j}");
    assert_eq!(v["replayed"], "corrupt");

    // One transmission perturbed: its expected segment is another one.
    let mut results: serde_json::Value = serde_json::from_str(&json).unwrap();
    let steps = results["results"][0]["evidence"]["trace"]["steps"]
        .as_array_mut()
        .unwrap();
    let at = steps
        .iter()
        .position(|s| s["event"]["kind"] == "transmit")
        .unwrap();
    steps[at]["event"]["seq"] = (steps[at]["event"]["seq"].as_u64().unwrap() + 1).into();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, results.to_string()).unwrap();
    let (code, out, _) = zcsafe(&["replay", &bad.display().to_string(), "--on", "kernel"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("  {:>3} DIVERGED", at + 1)),
        "the divergence is reported at step {}: {out}",
        at + 1
    );
    assert!(out.contains("THE KERNEL DIVERGED FROM THE MODEL"), "{out}");
}

/// `zcsafe check -p uring-zc-naive -t remote --json > f.json && zcsafe replay f.json --on
/// kernel` (root): the NIC's counterexample needs its late DMA read, so the replay says
/// first, loudly, where a TUN device goes otherwise, replays the TUN device's
/// counterexample instead and ends corrupt with every step conforming (exit 0);
/// `--as-recorded` drives the NIC's own and diverges at that step (exit 1).
#[test]
fn a_nic_counterexample_tun_cannot_follow_is_replaced_and_said_so_first() {
    if !can_replay_on_kernel("replay --on kernel with a substitution") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = remote_counterexample(&dir, "uring-zc-naive");
    let (code, out, err) = zcsafe(&["replay", &f, "--on", "kernel"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("THIS COUNTEREXAMPLE NEEDS A NIC"), "{out}");
    assert!(out.contains("tun_net_xmit → skb_orphan_frags_rx"), "{out}");
    assert!(out.contains("REPLAYING INSTEAD"), "{out}");
    assert!(out.contains("--device tun"), "{out}");
    assert!(
        out.contains("steps: the kernel followed all 13 steps"),
        "{out}"
    );
    assert!(!out.contains("DIVERGED"), "{out}");
    let (code, j, _) = zcsafe(&["replay", &f, "--on", "kernel", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["replayed"], "corrupt", "{j}");
    assert_eq!(v["substitution"]["device"], "tun", "{j}");
    assert_eq!(v["substitution"]["recorded"]["kind"], "tx_complete", "{j}");
    assert_eq!(v["substitution"]["trace"]["device"], "tun", "{j}");
    assert_eq!(v["conformance"]["divergences"], 0, "{j}");
    // Driven as recorded, it diverges where the substitution said it would.
    let step = v["substitution"]["step"].as_u64().unwrap();
    let (code, out, _) = zcsafe(&["replay", &f, "--on", "kernel", "--as-recorded"]);
    assert_eq!(code, 1, "{out}");
    assert!(!out.contains("NEEDS A NIC"), "{out}");
    assert!(out.contains(&format!("  {step:>3} DIVERGED")), "{out}");
}
