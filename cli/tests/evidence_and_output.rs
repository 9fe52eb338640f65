//! Three promises of every command's output, as a user runs the binary:
//!
//! - **no verdict without evidence**: a count that would make a backend run nothing
//!   ends with exit 2 and a message naming it, never with `safe`;
//! - **deterministic output**: the same seed and options print the same bytes, text and
//!   `--json`; the wall clock appears only with `--timings`, in one separate place;
//! - **aligned tables**: every row's columns start at the same character offsets.

use std::path::PathBuf;
use std::process::{Command, Output};

fn zcsafe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zcsafe"))
        .args(args)
        .output()
        .expect("run zcsafe")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            text(&o.stdout),
            text(&o.stderr)
        )
    })
}

/// Exit 2, nothing judged on stdout, and stderr says what to change.
fn refused(args: &[&str], says: &[&str]) {
    let out = zcsafe(args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        !stdout.contains("safe"),
        "{args:?} printed a verdict: {stdout}"
    );
    for s in says {
        assert!(stderr.contains(s), "{args:?}: {s:?} not in {stderr}");
    }
}

#[test]
fn a_count_of_zero_is_refused_before_anything_runs() {
    let why = "must be at least 1";
    refused(&["sim", "-p", "copy", "--seeds", "0"], &["--seeds", why]);
    refused(
        &["sim", "-p", "copy", "--seeds", "0", "--json"],
        &["--seeds", why],
    );
    refused(&["sim", "-p", "copy", "--stream", "0"], &["--stream", why]);
    // From the last seed only one exists: it runs, and the evidence counts it.
    let last = zcsafe(&[
        "sim",
        "-p",
        "copy",
        "-t",
        "local",
        "--first-seed",
        &u64::MAX.to_string(),
        "--json",
    ]);
    assert_eq!(
        json(&last)["results"][0]["evidence"]["counts"]["scenarios"],
        1
    );
    refused(&["run", "-p", "copy", "--repeat", "0"], &["--repeat", why]);
    refused(
        &["bench", "-p", "copy", "--repeat", "0"],
        &["--repeat", why],
    );
    refused(&["bench", "-p", "copy", "--slots", "0"], &["--slots", why]);
    // check's scenario sizes are validated by the model (a zero stream is no scenario).
    refused(
        &["check", "-p", "copy", "--stream", "0"],
        &["runnable model"],
    );
}

#[test]
fn fixtures_that_check_nothing_do_not_pass() {
    // No fixture selected.
    refused(
        &["fixtures", "--check", "--only", "no-such-fixture"],
        &["no fixture", "--only"],
    );
    refused(
        &["fixtures", "--only", "no-such-fixture"],
        &["no fixture", "--only"],
    );
    // Fixtures selected, but none expects anything of the backend asked for.
    refused(
        &[
            "fixtures",
            "--check",
            "--backend",
            "sim",
            "--only",
            "netty-15599",
        ],
        &["expect nothing of backend sim", "--backend model"],
    );
}

#[test]
fn fixtures_whose_every_check_was_skipped_do_not_pass() {
    // A manifest whose one simulator check cannot run here (the simulated kernel never
    // fails a SEND_ZC): skipped, so nothing was checked.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let dir = std::env::temp_dir().join(format!("zcsafe-skipped-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("traces")).unwrap();
    std::fs::copy(
        root.join("traces/netty-15599.json"),
        dir.join("traces/netty-15599.json"),
    )
    .unwrap();
    let manifest = dir.join("fixtures.toml");
    std::fs::write(
        &manifest,
        r#"[[fixture]]
name = "netty-15599"
title = "a failed SEND_ZC still posts a NOTIF"
kind = "bug"
source = "netty/netty#15599"
policy = "netty-sendzc-fail-no-notif"
transport = "local"
trace = "traces/netty-15599.json"
reproduce = "zcsafe fixtures --check"
expected = { model = "corrupt", sim = "corrupt" }
"#,
    )
    .unwrap();
    let m = manifest.to_str().unwrap();
    refused(
        &["fixtures", "--check", "--manifest", m, "--backend", "sim"],
        &["none of the 1 fixture checks ran", "--backend model"],
    );
    // The same manifest on the model does check something, and passes.
    let out = zcsafe(&["fixtures", "--check", "--manifest", m, "--backend", "model"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `args` twice and insists on the same exit status and the same stdout bytes.
fn twice_the_same(args: &[&str]) -> Output {
    let a = zcsafe(args);
    let b = zcsafe(args);
    assert_eq!(a.status.code(), b.status.code(), "{args:?}");
    assert!(
        matches!(a.status.code(), Some(0 | 1)),
        "{args:?}: {}",
        text(&a.stderr)
    );
    assert!(!a.stdout.is_empty(), "{args:?} printed nothing");
    if a.stdout != b.stdout {
        let (x, y) = (text(&a.stdout), text(&b.stdout));
        let line = x
            .lines()
            .zip(y.lines())
            .find(|(l, r)| l != r)
            .map(|(l, r)| format!("first:  {l}\nsecond: {r}"))
            .unwrap_or_else(|| "lengths differ".into());
        panic!("{args:?}: two runs printed different bytes\n{line}");
    }
    a
}

fn trace() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/traces/lwn-double-buffer.json")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_same_seed_and_options_print_the_same_bytes() {
    let policies = "copy,zc-naive,siocoutq-drain";
    let trace = trace();
    for format in [None, Some("--json")] {
        let runs: Vec<Vec<&str>> = vec![
            vec!["check", "-p", policies],
            vec!["sim", "--policy", "zc-naive", "--seed", "7"],
            vec!["sim", "-p", policies, "--seeds", "20", "--first-seed", "3"],
            vec!["replay", &trace, "--on", "model", "-v"],
            vec!["replay", &trace, "--on", "sim", "-v"],
        ];
        for mut args in runs {
            args.extend(format);
            let out = twice_the_same(&args);
            let stdout = text(&out.stdout);
            assert!(!stdout.contains("elapsed"), "{args:?}: {stdout}");
            assert!(!stdout.contains("timing"), "{args:?}: {stdout}");
        }
    }
}

#[test]
fn timings_go_in_one_separate_place_and_only_when_asked() {
    for args in [
        vec!["check", "-p", "copy,zc-naive", "-q"],
        vec!["sim", "-p", "copy,zc-naive", "--seeds", "5"],
    ] {
        let plain = zcsafe(&[args.as_slice(), &["--json"]].concat());
        let timed = zcsafe(&[args.as_slice(), &["--json", "--timings"]].concat());
        let (plain, mut timed) = (json(&plain), json(&timed));
        let timing = timed
            .as_object_mut()
            .unwrap()
            .remove("timing")
            .unwrap_or_else(|| panic!("{args:?} --timings: no top-level timing"));
        // Without its `timing` object, the timed output is the plain one.
        assert_eq!(plain, timed, "{args:?}");
        let findings = timing["findings"].as_array().unwrap();
        assert_eq!(findings.len(), 4, "{args:?}: {timing}");
        for f in findings {
            assert!(f["elapsed_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{f}");
            assert!(f["policy"].is_string() && f["transport"].is_string(), "{f}");
        }
        assert!(timing["total_ms"].as_f64().is_some_and(|ms| ms > 0.0));

        let plain = text(&zcsafe(&args).stdout);
        let timed = text(&zcsafe(&[args.as_slice(), &["--timings"]].concat()).stdout);
        assert!(!plain.contains("timing (wall clock)"), "{plain}");
        let (head, section) = timed
            .split_once("\ntiming (wall clock): ")
            .unwrap_or_else(|| panic!("{args:?} --timings: no timing section in {timed}"));
        assert_eq!(head, plain, "{args:?}: the rest is unchanged");
        assert!(section.contains(" s in all"), "{section}");
        assert_eq!(
            section.lines().count(),
            1 + 1 + 4,
            "title, header, a row per finding: {section}"
        );
    }
}

#[test]
fn a_kernel_run_keeps_its_wall_clock_in_the_timing_object() {
    let args = [
        "run", "-p", "copy", "-t", "loopback", "--repeat", "2", "--json",
    ];
    let plain = json(&zcsafe(&args));
    assert!(plain.get("timing").is_none(), "{plain}");
    let counts = &plain["results"][0]["evidence"]["counts"];
    assert!(counts.get("elapsed_ms").is_none(), "{counts}");
    assert_eq!(counts["repeat"], 2, "{counts}");
    let timed = json(&zcsafe(&[&args[..], &["--timings"]].concat()));
    let f = &timed["timing"]["findings"][0];
    assert_eq!(f["policy"], "copy");
    assert_eq!(f["runs_ms"].as_array().map(Vec::len), Some(2), "{f}");
}

/// The char offsets at which `names` start in the header line.
fn offsets(header: &str, names: &[&str]) -> Vec<usize> {
    names
        .iter()
        .map(|n| {
            let at = header
                .find(n)
                .unwrap_or_else(|| panic!("{n} not in {header:?}"));
            header[..at].chars().count()
        })
        .collect()
}

/// Every row holds a cell starting exactly at each offset (a blank before it, text at it).
fn aligned(rows: &[&str], at: &[usize]) {
    for row in rows {
        let chars: Vec<char> = row.chars().collect();
        for &i in at {
            assert!(
                chars.get(i).is_some_and(|c| *c != ' ') && chars[i - 1] == ' ',
                "column at char {i} does not start there in {row:?}"
            );
        }
    }
}

#[test]
fn policies_table_columns_start_at_the_same_offsets() {
    let out = zcsafe(&["policies"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    let header = lines.next().unwrap();
    let at = offsets(header, &["local", "remote", "what it does"]);
    let rows: Vec<&str> = lines.take_while(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), zcsafe_policies::builtin().len(), "{stdout}");
    aligned(&rows, &at);
}

#[test]
fn check_and_sim_tables_columns_start_at_the_same_offsets() {
    for args in [
        vec!["check", "-q"],
        vec!["sim", "-q", "--seeds", "3"],
        // A contradiction widens its cell: the next column still lines up.
        vec!["check", "-q", "-p", "zc-naive,copy", "--stream", "1"],
    ] {
        let stdout = text(&zcsafe(&args).stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        let h = lines
            .iter()
            .position(|l| l.starts_with("policy "))
            .unwrap_or_else(|| panic!("{args:?}: no table in {stdout}"));
        let at = offsets(lines[h], &["local", "remote"]);
        let rows: Vec<&str> = lines[h + 1..]
            .iter()
            .copied()
            .take_while(|l| !l.is_empty())
            .collect();
        assert!(rows.len() >= 2, "{stdout}");
        aligned(&rows, &at);
    }
}

#[test]
fn a_receiver_that_got_nothing_does_not_say_intact() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_zcsafe"))
        .args(["receive", "--listen", "127.0.0.1:0", "--timeout", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run zcsafe receive");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    // A sender that connects and closes at once: a stream of zero bytes.
    drop(std::net::TcpStream::connect(&addr).unwrap());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}{rest}");
    assert!(!stdout.contains("intact"), "{stdout}");
    assert!(rest.contains("nothing was verified"), "{rest}");
}
