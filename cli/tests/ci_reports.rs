//! Reports for another project's CI (`--junit`), as a user runs them: the file is read
//! back by a real XML parser and its counts and names checked. Loopback needs no root.

use std::path::Path;
use std::process::{Command, Output};

fn zcsafe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zcsafe"))
        .args(args)
        .output()
        .expect("run zcsafe")
}

/// `(tests, failures, skipped)` of the whole report, and each testcase's name.
fn junit(path: &Path) -> ((String, String, String), Vec<String>) {
    let xml = std::fs::read_to_string(path).expect("the --junit file is written");
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let root = doc.root_element();
    let n = |a: &str| root.attribute(a).unwrap_or_default().to_string();
    let names = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| n.attribute("name").unwrap().to_string())
        .collect();
    ((n("tests"), n("failures"), n("skipped")), names)
}

#[test]
fn check_junit_has_a_failure_for_the_contradiction_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("check.xml");
    // A one-chunk stream never reuses the buffer: zc-naive is safe, expected corrupt.
    let out = zcsafe(&[
        "check",
        "-p",
        "copy,zc-naive",
        "-t",
        "local",
        "--stream",
        "1",
        "-q",
        "--junit",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "the exit status is unchanged");
    let (counts, names) = junit(&file);
    assert_eq!(counts, ("2".into(), "1".into(), "0".into()));
    assert_eq!(names, ["model/local/copy", "model/local/zc-naive"]);
}

#[test]
fn run_junit_on_loopback_names_cases_after_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.xml");
    let out = zcsafe(&[
        "run",
        "--policy",
        "copy,siocoutq-drain",
        "--transport",
        "loopback",
        "--repeat",
        "1",
        "--json",
        "--junit",
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let release = release.trim();
    let (counts, names) = junit(&file);
    assert_eq!(counts, ("2".into(), "0".into(), "0".into()));
    assert_eq!(
        names,
        [
            format!("{release}/loopback/copy"),
            format!("{release}/loopback/siocoutq-drain")
        ]
    );
}

#[test]
fn an_unwritable_junit_file_is_an_error_naming_it() {
    let out = zcsafe(&[
        "check",
        "-p",
        "copy",
        "-t",
        "local",
        "-q",
        "--junit",
        "/nonexistent-dir/r.xml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("writing the JUnit report /nonexistent-dir/r.xml"),
        "{err}"
    );
}

#[test]
fn run_known_reports_a_stale_entry_and_refuses_a_bad_file_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("known.toml");
    std::fs::write(
        &file,
        "[[known]]\npolicy = \"copy\"\ntransport = \"loopback\"\nverdict = \"corrupt\"\nreason = \"once\"\n",
    )
    .unwrap();
    let args = |f: &Path| {
        [
            "run",
            "--policy",
            "copy",
            "--transport",
            "loopback",
            "--repeat",
            "1",
            "--json",
            "--known",
        ]
        .map(String::from)
        .into_iter()
        .chain([f.display().to_string()])
        .collect::<Vec<_>>()
    };
    let run = |f: &Path| {
        let a = args(f);
        zcsafe(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = run(&file);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["known"]["stale"][0]["line"], 1, "{v}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("STALE known difference"), "{err}");

    std::fs::write(&file, "[[known]]\npolicy = \"copy\"\nkernal = \"6.1\"\n").unwrap();
    let out = run(&file);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3: unknown field `kernal`", file.display())),
        "{err}"
    );
}

/// `matrix --kernel-image` refuses what is not a kernel before anything is fetched or
/// booted, with exit 2 and what to give instead; `--modules` needs an image.
#[test]
fn matrix_refuses_a_kernel_image_that_is_not_one_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("vmlinuz");
    std::fs::write(&text, "#!/bin/sh\necho not a kernel\n").unwrap();
    let deb = dir.path().join("linux-image.deb");
    std::fs::write(&deb, "junk").unwrap();
    let missing = dir.path().join("nope/bzImage");
    let p = |p: &Path| p.display().to_string();
    let cases: [(Vec<String>, String); 5] = [
        (
            vec!["--kernel-image".into(), p(&missing)],
            format!("--kernel-image: kernel image {}: No such file", p(&missing)),
        ),
        (
            vec!["--kernel-image".into(), p(&text)],
            "not an x86 Linux kernel image".into(),
        ),
        (
            vec!["--kernel-image".into(), p(&deb)],
            "not a Debian package (no `!<arch>` header)".into(),
        ),
        (
            vec!["--kernel-image".into(), p(dir.path())],
            "neither a kernel build tree (no arch/x86/boot/bzImage".into(),
        ),
        (
            vec!["--modules".into(), p(dir.path())],
            "--kernel-image <PATH>".into(),
        ),
    ];
    for (args, want) in cases {
        let mut a = vec!["matrix", "--out"];
        let out_dir = dir.path().join("out");
        let out_s = p(&out_dir);
        a.push(&out_s);
        a.extend(args.iter().map(String::as_str));
        let out = zcsafe(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&want), "{args:?}: want `{want}` in: {err}");
        assert!(!out_dir.exists(), "{args:?}: nothing was run");
    }
}

/// The exit statuses are documented where a CI author looks: `matrix --help`.
#[test]
fn matrix_help_documents_every_exit_status() {
    let out = zcsafe(&["matrix", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for line in [
        "0  every verdict is as expected",
        "1  a verdict contradicts",
        "2  usage error",
        "3  no contradiction, but some cell could not be judged",
        "4  no contradiction, no error",
        "--retries <N>",
        "--kernel-image <PATH>",
    ] {
        assert!(help.contains(line), "`{line}` missing from:\n{help}");
    }
}
