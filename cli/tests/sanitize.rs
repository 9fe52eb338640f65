//! `zcsafe sanitize` as a user runs it: C programs built here, the runtime built by cargo
//! (`cargo build -p zcsafe-sanitizer`, once per test binary), the exit statuses and the
//! results JSON. Loopback needs no root; veth skips with a counted reason without it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use zcsafe_kernel::Transport;

/// The runtime, built into the target directory `zcsafe` was built into.
fn runtime() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = PathBuf::from(env!("CARGO_BIN_EXE_zcsafe"));
            let profile_dir = exe.parent().unwrap().to_path_buf();
            let target = profile_dir.parent().unwrap();
            let mut c = Command::new(env!("CARGO"));
            c.args(["build", "--quiet", "-p", "zcsafe-sanitizer", "--target-dir"])
                .arg(target);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                c.arg("--release");
            }
            let st = c.status().expect("run cargo");
            assert!(st.success(), "cargo build -p zcsafe-sanitizer failed");
            let so = profile_dir.join("libzcsafe_sanitizer.so");
            assert!(so.is_file(), "{} missing", so.display());
            so
        })
        .clone()
}

/// Builds a C program (gcc is required: .ci/run installs it).
fn cc(src: &Path, extra: &[&str]) -> PathBuf {
    let out = std::env::temp_dir().join(format!(
        "zcsafe-cli-{}-{}{}",
        src.file_stem().unwrap().to_string_lossy(),
        std::process::id(),
        extra.join("")
    ));
    let st = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-O2", "-g", "-Wall", "-Werror"])
        .arg("-o")
        .arg(&out)
        .arg(src)
        .args(extra)
        .status()
        .expect("run cc (install gcc)");
    assert!(st.success(), "cc {}", src.display());
    out
}

fn zc_pages() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            cc(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sanitize/zc_pages.c"),
                &[],
            )
        })
        .clone()
}

/// The io_uring example (liburing: .ci/run installs liburing-dev).
fn uring_zc() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            cc(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sanitize/uring_zc.c"),
                &["-luring"],
            )
        })
        .clone()
}

fn sanitize(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zcsafe"))
        .arg("sanitize")
        .args(args)
        .env("ZCSAFE_SANITIZER_LIB", runtime())
        .output()
        .expect("run zcsafe")
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_correct_program_is_safe_with_its_own_output_and_evidence() {
    let p = zc_pages();
    let out = sanitize(&["--", p.to_str().unwrap(), "--mode", "wait"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("mode wait: 64 iterations") && t.contains("0 wrong"),
        "{t}"
    );
    assert!(
        t.contains("verdict: safe") && !t.contains("PREMATURE"),
        "{t}"
    );
    let out = sanitize(&["--json", "--", p.to_str().unwrap(), "--mode", "wait"]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["format"], 2);
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0]["policy"].as_str(), r[0]["verdict"].as_str()),
        (Some("sanitize"), Some("safe"))
    );
    let c = &r[0]["evidence"]["counts"];
    assert_eq!(c["tracked"], 64);
    assert!(c["released"].as_u64() >= Some(60), "{c}");
}

/// A program with a small alternate signal stack (Rust's runtime installs one per
/// thread) still gets every premature write reported: the runtime's handlers run on the
/// faulting thread's own stack, not on the program's alternate one, whose few KiB an
/// AVX-512 signal frame alone nearly fills (this test's `--altstack 4096` crashed the
/// sanitized program with SIGSEGV before).
#[test]
fn a_program_with_a_small_alternate_signal_stack_is_still_sanitized() {
    let p = zc_pages();
    let args = ["--json", "--", p.to_str().unwrap(), "--mode", "early"];
    let out = sanitize(&[&args[..], &["--altstack", "4096"]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v = json(&out);
    let r = v["results"].as_array().unwrap();
    assert_eq!(
        r.len(),
        60,
        "one finding per premature write: {}",
        text(&out)
    );
    assert!(r.iter().all(|f| f["verdict"] == "corrupt"));
}

#[test]
fn a_premature_write_is_reported_at_its_line_and_exits_1() {
    let p = zc_pages();
    let out = sanitize(&["--json", "--", p.to_str().unwrap(), "--mode", "early"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v = json(&out);
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 60, "one finding per premature write");
    for (i, f) in r.iter().enumerate() {
        assert_eq!(f["verdict"], "corrupt");
        assert_eq!(f["expected"], "safe");
        let c = &f["evidence"]["counts"];
        assert_eq!(c["submission"]["zc_id"], i as u64);
        assert_eq!(c["submission"]["call"], "send");
        assert_eq!(c["tracked"], 64);
        assert_eq!(c["function"], "fill", "symbolised: {c}");
        assert!(
            c["source"]
                .as_str()
                .is_some_and(|s| s.contains("zc_pages.c:")),
            "{c}"
        );
    }
    assert!(
        r[3]["evidence"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("send #3 on fd 3 ["),
        "{}",
        r[3]["evidence"]["detail"]
    );
    let human = sanitize(&["--", p.to_str().unwrap(), "--mode", "early"]);
    let t = text(&human);
    assert_eq!(human.status.code(), Some(1));
    assert!(
        t.contains("PREMATURE WRITE 1: send #0 on fd 3") && t.contains("by fill at "),
        "{t}"
    );
    assert!(t.contains("… and 50 more premature writes"), "{t}");

    // The same run for a CI's test view: every premature write is a failing case.
    let dir = std::env::temp_dir().join(format!("zcsafe-sanitize-junit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junit = dir.join("j.xml");
    let out = sanitize(&[
        "--junit",
        junit.to_str().unwrap(),
        "--",
        p.to_str().unwrap(),
        "--mode",
        "early",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 60, "{xml}");
    assert!(
        cases
            .iter()
            .all(|c| c.children().any(|n| n.has_tag_name("failure"))),
        "{xml}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Over zcsafe's receiver on loopback, where local delivery copies MSG_ZEROCOPY data and a
/// fast receiver saw an intact stream in every run measured (3 of 3, docs/src/sanitize.md):
/// the sanitizer flags the bug every run.
#[test]
fn over_the_receiver_on_loopback_the_bug_is_flagged_every_run() {
    let p = zc_pages();
    for run in 0..3 {
        let out = sanitize(&[
            "--json",
            "--reader",
            "fast",
            "--",
            p.to_str().unwrap(),
            "{host}",
            "{port}",
            "--mode",
            "early",
        ]);
        assert_eq!(out.status.code(), Some(1), "run {run}: {}", text(&out));
        let v = json(&out);
        let r = v["results"].as_array().unwrap();
        let (writes, receiver): (Vec<_>, Vec<_>) =
            r.iter().partition(|f| f["policy"] == "sanitize");
        assert_eq!(writes.len(), 60, "run {run}");
        assert_eq!(receiver.len(), 1);
        assert_eq!(receiver[0]["policy"], "external");
        assert_eq!(receiver[0]["transport"], "loopback");
        println!("run {run}: the receiver says {}", receiver[0]["verdict"]);
    }
    let out = sanitize(&[
        "--",
        p.to_str().unwrap(),
        "{host}",
        "{port}",
        "--mode",
        "wait",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("receiver over loopback: INTACT"), "{t}");
}

#[test]
fn over_veth_the_bug_is_flagged_and_the_fix_is_intact() {
    if zcsafe_kernel::skip::skip("sanitize over veth", &Transport::Veth) {
        return;
    }
    let p = zc_pages();
    let out = sanitize(&[
        "-t",
        "veth",
        "--",
        p.to_str().unwrap(),
        "{host}",
        "{port}",
        "--mode",
        "early",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("… and 50 more premature writes"),
        "{}",
        text(&out)
    );
    let out = sanitize(&[
        "-t",
        "veth",
        "--",
        p.to_str().unwrap(),
        "{host}",
        "{port}",
        "--mode",
        "wait",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("receiver over veth: INTACT") && t.contains("verdict: safe"),
        "{t}"
    );
}

/// io_uring SEND_ZC through liburing, whose `io_uring_*` calls are raw `syscall`
/// instructions (the seccomp trap sees them): a refill after the F_MORE CQE and before
/// the NOTIF is flagged at its line on every refill — the program's own receiver holds
/// the stream back, so no NOTIF can come first —, from plain and registered buffers, and
/// with the ring's descriptor registered (`IORING_ENTER_REGISTERED_RING`).
#[test]
fn an_io_uring_reuse_before_the_notif_is_flagged_at_its_line() {
    let p = uring_zc();
    for extra in [None, Some("--fixed"), Some("--registered-ring")] {
        let mut args = vec!["--json", "--", p.to_str().unwrap(), "--mode", "early"];
        args.extend(extra);
        let out = sanitize(&args);
        let what = format!("{extra:?}");
        assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out));
        let v = json(&out);
        let r = v["results"].as_array().unwrap();
        // 16 sends from 4 buffers: every send from the 5th on refills a held buffer
        assert_eq!(r.len(), 12, "{what}: one finding per premature refill");
        for (i, f) in r.iter().enumerate() {
            assert_eq!(f["verdict"], "corrupt");
            let c = &f["evidence"]["counts"];
            assert_eq!(c["submission"]["call"], "uring_send_zc", "{c}");
            assert_eq!(c["submission"]["user_data"], i as u64, "{c}");
            assert_eq!(c["tracked"], 16);
            assert_eq!(c["function"], "fill", "symbolised: {c}");
            assert!(
                c["source"]
                    .as_str()
                    .is_some_and(|s| s.contains("uring_zc.c:")),
                "{c}"
            );
        }
        assert!(
            r[0]["evidence"]["detail"]
                .as_str()
                .unwrap()
                .starts_with("io_uring SEND_ZC user_data 0x0 (request #0 on its ring"),
            "{}",
            r[0]["evidence"]["detail"]
        );
    }
    let t = text(&sanitize(&["--", p.to_str().unwrap(), "--mode", "early"]));
    assert!(
        t.contains("wrong") && !t.contains(" 0 wrong"),
        "the receiver saw the bug too: {t}"
    );
}

/// Waiting for the NOTIF is safe, reaped with `io_uring_wait_cqe` or with
/// `io_uring_peek_cqe` alone, plain or registered buffers, registered ring descriptor. In
/// peek mode the first NOTIFs arrive after the program's last `io_uring_enter` (its
/// receiver holds the stream until then): without the runtime's look at the CQ ring when
/// the refill faults, that refill is falsely reported (measured: 1 report, 3 of 3 runs).
#[test]
fn an_io_uring_sender_that_waits_for_the_notif_is_safe() {
    let p = uring_zc();
    for (mode, extra) in [
        ("wait", None),
        ("peek", None),
        ("wait", Some("--fixed")),
        ("wait", Some("--registered-ring")),
    ] {
        let mut args = vec!["--json", "--", p.to_str().unwrap(), "--mode", mode];
        args.extend(extra);
        let out = sanitize(&args);
        let what = format!("{mode}, {extra:?}");
        assert_eq!(out.status.code(), Some(0), "{what}: {}", text(&out));
        let v = json(&out);
        let r = v["results"].as_array().unwrap();
        assert_eq!(r.len(), 1, "{what}");
        assert_eq!(r[0]["verdict"], "safe", "{what}");
        let c = &r[0]["evidence"]["counts"];
        assert_eq!(
            (c["tracked"].as_u64(), c["released"].as_u64()),
            (Some(16), Some(16)),
            "{what}: {c}"
        );
        assert_eq!(c["premature_writes"], 0, "{what}");
        let t = text(&sanitize(&["--", p.to_str().unwrap(), "--mode", mode]));
        assert!(
            t.contains("16 notifs") && t.contains(" 0 wrong") && !t.contains("PREMATURE"),
            "{what}: {t}"
        );
    }
}

/// An SQPOLL ring, whose SQEs a kernel thread consumes without `io_uring_enter`, is not
/// followed: the buggy program is `inconclusive` with the ring counted, never `safe`.
#[test]
fn an_sqpoll_ring_is_counted_as_not_followed_and_inconclusive() {
    let p = uring_zc();
    let out = sanitize(&[
        "--json",
        "--",
        p.to_str().unwrap(),
        "--mode",
        "early",
        "--sqpoll",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let v = json(&out);
    let f = &v["results"][0];
    assert_eq!(f["verdict"], "inconclusive");
    let c = &f["evidence"]["counts"];
    assert_eq!(
        (
            c["tracked"].as_u64(),
            c["uring_untracked"].as_u64(),
            c["uring_rings"].as_u64()
        ),
        (Some(0), Some(1), Some(0)),
        "{c}"
    );
    assert!(
        f["evidence"]["detail"]
            .as_str()
            .unwrap()
            .contains("1 on io_uring rings it cannot follow"),
        "{f}"
    );
}

#[test]
fn abort_stops_the_program_and_still_exits_1() {
    let p = zc_pages();
    let out = sanitize(&[
        "--abort",
        "--json",
        "--",
        p.to_str().unwrap(),
        "--mode",
        "early",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v = json(&out);
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["evidence"]["counts"]["aborted"], true);
}

#[test]
fn a_program_without_zero_copy_sends_is_inconclusive_not_safe() {
    let out = sanitize(&["--json", "--", "true"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let v = json(&out);
    assert_eq!(v["results"][0]["verdict"], "inconclusive");
    assert_eq!(v["results"][0]["evidence"]["counts"]["tracked"], 0);
}

#[test]
fn a_failing_program_is_an_error_and_a_static_one_is_refused() {
    let out = sanitize(&["--", "sh", "-c", "exit 7"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(t.contains("exited with status 7"), "{t}");

    let dir = std::env::temp_dir().join(format!("zcsafe-static-src-{}.c", std::process::id()));
    std::fs::write(&dir, "int main(void) { return 0; }\n").unwrap();
    let st = cc(&dir, &["-static"]);
    std::fs::remove_file(&dir).unwrap();
    let out = sanitize(&["--", st.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("statically linked") && t.contains("LD_PRELOAD cannot"),
        "{t}"
    );

    let out = sanitize(&["--", "/nonexistent/program"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no such program file"));
}

/// `run --external CMD --sanitize`: the same runtime under `run`'s external mode (a shell
/// command line, so the shell is sanitized too): the premature writes are findings beside
/// the receiver's, and the fixed program passes both.
#[test]
fn run_external_with_sanitize_gives_both_verdicts() {
    let p = zc_pages();
    let run = |mode: &str, json: bool| {
        let cmd = format!("{} {{host}} {{port}} --mode {mode}", p.display());
        let mut c = Command::new(env!("CARGO_BIN_EXE_zcsafe"));
        c.args(["run", "--external", &cmd, "--sanitize"])
            .env("ZCSAFE_SANITIZER_LIB", runtime());
        if json {
            c.arg("--json");
        }
        c.output().expect("run zcsafe")
    };
    let out = run("early", true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v = json(&out);
    let r = v["results"].as_array().unwrap();
    let (writes, receiver): (Vec<_>, Vec<_>) = r.iter().partition(|f| f["policy"] == "sanitize");
    assert_eq!(writes.len(), 60, "every premature write of the planted bug");
    assert!(writes.iter().all(|f| f["verdict"] == "corrupt"));
    assert_eq!(receiver.len(), 1);
    assert_eq!(receiver[0]["policy"], "external");

    let out = run("wait", false);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("zcsafe run --external over loopback: INTACT\n"),
        "{t}"
    );
    assert!(
        t.contains("verdict: safe: no write to bytes the kernel held"),
        "{t}"
    );
}

/// The catalogue's own executor as the sanitized program (`zcsafe send` under
/// `run --external … --sanitize`): every MSG_ZEROCOPY and io_uring SEND_ZC/SENDMSG_ZC
/// policy the catalogue expects to corrupt is flagged on every run, the ones expected safe
/// never (the io-uring crate's calls go through libc's `syscall(2)`, which the runtime
/// interposes); a policy whose API the
/// runtime does not follow (here plain `send`) is `inconclusive` — nothing tracked —, not
/// `safe`. Two runs (seeds) per policy, over loopback and, as root, veth.
#[test]
fn the_catalogues_zerocopy_policies_under_the_sanitizer() {
    let zcsafe = env!("CARGO_BIN_EXE_zcsafe");
    let mut transports = vec!["loopback"];
    if !zcsafe_kernel::skip::skip(
        "the catalogue under the sanitizer over veth",
        &Transport::Veth,
    ) {
        transports.push("veth");
    }
    let cases = [
        ("zc-naive", "corrupt"),
        ("zc-completion", "safe"),
        ("zc-inorder-tracker", "safe"),
        ("copy", "inconclusive"),
        ("uring-zc-naive", "corrupt"),
        ("uring-zc-notif", "safe"),
        ("uring-sendmsg-zc", "safe"),
        ("uring-zc-report-usage", "safe"),
    ];
    for t in &transports {
        for (policy, expected) in cases {
            for seed in [1, 2] {
                let cmd = format!("{zcsafe} send -p {policy} --to {{host}}:{{port}}");
                let out = Command::new(zcsafe)
                    .args([
                        "run",
                        "--external",
                        &cmd,
                        "--sanitize",
                        "--app-ack",
                        "--json",
                    ])
                    .args(["-t", t, "--seed", &seed.to_string()])
                    .env("ZCSAFE_SANITIZER_LIB", runtime())
                    .output()
                    .expect("run zcsafe");
                let what = format!("{policy} over {t}, seed {seed}");
                let v = json(&out);
                let r = v["results"].as_array().unwrap();
                let (writes, receiver): (Vec<_>, Vec<_>) =
                    r.iter().partition(|f| f["policy"] == "sanitize");
                assert!(!writes.is_empty(), "{what}: {}", text(&out));
                assert!(
                    writes.iter().all(|f| f["verdict"] == expected),
                    "{what}: expected every sanitizer finding {expected}: {}",
                    text(&out)
                );
                assert_eq!(receiver.len(), 1, "{what}");
                let exit = match expected {
                    "corrupt" => 1,
                    "safe" => 0,
                    _ => 4,
                };
                assert_eq!(out.status.code(), Some(exit), "{what}: {}", text(&out));
            }
        }
    }
}
