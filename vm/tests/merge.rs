//! Per-kernel matrices merge into one report; reports are self-contained and escaped.

use zcsafe_policy::{Evidence, Finding, Verdict};
use zcsafe_vm::matrix::{Cell, KernelRun, Matrix, MATRIX_FORMAT};
use zcsafe_vm::report;

fn cell(kernel: &str, policy: &str, transport: &str, verdict: Verdict, detail: &str) -> Cell {
    Cell {
        finding: Finding {
            policy: policy.into(),
            transport: transport.into(),
            backend: "vm".into(),
            kernel: Some(format!("{kernel}.0-test")),
            verdict,
            expected: Verdict::Corrupt,
            expected_why: "why".into(),
            predicted: None,
            evidence: Evidence {
                detail: detail.into(),
                trace: None,
                counts: Default::default(),
                attempts: Vec::new(),
                ..Default::default()
            },
        },
        kernel_name: kernel.into(),
        kernel_version: "1".into(),
        nic: None,
        netem: None,
        seconds: 1.0,
        rerun: format!(
            "zcsafe matrix --kernels {kernel} --policies {policy} --transports {transport}"
        ),
        console_tail: None,
        output: vec![],
    }
}

fn matrix(kernel: &str, cells: Vec<Cell>, wall: f64) -> Matrix {
    Matrix {
        format: MATRIX_FORMAT,
        results: cells,
        kernels: vec![KernelRun {
            name: kernel.into(),
            suite: "s".into(),
            release: format!("{kernel}.0-test"),
            version: "1".into(),
            boot_seconds: vec![2.0],
            error: None,
        }],
        accel: "tcg".into(),
        wall_seconds: wall,
        known: Default::default(),
    }
}

#[test]
fn merge_joins_kernels_and_later_files_win() {
    let a = matrix(
        "5.10",
        vec![
            cell("5.10", "zc-naive", "veth", Verdict::Corrupt, "a"),
            cell("5.10", "copy", "veth", Verdict::Error, "flaky"),
        ],
        10.0,
    );
    let b = matrix(
        "6.1",
        vec![cell("6.1", "zc-naive", "veth", Verdict::Safe, "b")],
        20.0,
    );
    let a2 = matrix(
        "5.10",
        vec![cell("5.10", "copy", "veth", Verdict::Corrupt, "rerun")],
        5.0,
    );
    let m = report::merge(&[a, b, a2]);
    assert_eq!(m.kernels.len(), 2);
    assert_eq!(m.results.len(), 3);
    let copy = m
        .results
        .iter()
        .find(|c| c.kernel_name == "5.10" && c.finding.policy == "copy")
        .unwrap();
    assert_eq!(copy.finding.evidence.detail, "rerun");
    assert_eq!(m.wall_seconds, 20.0);
    assert_eq!(m.exit_code(), 1, "6.1 zc-naive contradicts its expectation");

    // Round trip through files, as the CI merge job does.
    let t = tempfile::tempdir().unwrap();
    let files = report::write_all(&m, t.path()).unwrap();
    assert_eq!(files.len(), 3);
    let back = report::read(&t.path().join("matrix.json")).unwrap();
    assert_eq!(back, m);
    let md = std::fs::read_to_string(t.path().join("matrix.md")).unwrap();
    assert!(
        md.contains("| zc-naive | corrupt ✓ | **safe ✗** (expected corrupt) |"),
        "{md}"
    );
}

#[test]
fn html_is_self_contained_and_escapes_guest_text() {
    let evil = "</script><script>alert(1)</script>";
    let m = matrix(
        "5.10",
        vec![cell("5.10", "zc-naive", "remote", Verdict::Corrupt, evil)],
        1.0,
    );
    let html = report::html(&m);
    assert!(!html.contains(evil));
    assert_eq!(
        html.matches("</script>").count(),
        2,
        "only our two script elements"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external resources"
    );
    assert!(html.contains("data-i=\"0\""));
}

#[test]
fn reading_a_bad_file_says_which() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("matrix.json");
    std::fs::write(&p, "{").unwrap();
    let e = report::read(&p).unwrap_err().to_string();
    assert!(e.contains("matrix.json"), "{e}");
}

/// What a person looks at is tested by looking at it: the HTML report renders in
/// headless Chromium without console errors, is not blank, and shows its cells.
#[test]
fn matrix_html_renders_in_a_browser() {
    let Some(chromium) = zcsafe_browser_check::for_tests("matrix.html", 1) else {
        return;
    };
    let m = matrix(
        "5.10",
        vec![
            cell(
                "5.10",
                "zc-naive",
                "veth",
                Verdict::Corrupt,
                "30720 corrupt words",
            ),
            cell(
                "5.10",
                "copy",
                "remote",
                Verdict::Safe,
                "all words intact <ok>",
            ),
        ],
        3.0,
    );
    let t = tempfile::tempdir().unwrap();
    report::write_all(&m, t.path()).unwrap();
    let page = chromium
        .check(&t.path().join("matrix.html"), 1200, 800, 0.01)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(page.shows("zc-naive"), "the report lists its policies");
    assert!(page.shows("5.10"), "and its kernels");
}
