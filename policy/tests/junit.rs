//! JUnit reports read back by a real XML parser: the counts a CI shows, the names, and
//! strings that would break a naive writer.

use zcsafe_policy::junit::{self, Case};
use zcsafe_policy::{Evidence, Finding, Results, Verdict};

fn finding(policy: &str, transport: &str, verdict: Verdict, expected: Verdict) -> Finding {
    Finding {
        policy: policy.into(),
        transport: transport.into(),
        backend: "model".into(),
        kernel: None,
        verdict,
        expected,
        expected_why: "the <peer> holds \"the\" pages & more".into(),
        predicted: None,
        evidence: Evidence {
            detail: "console: \u{1b}[31mpanic\u{1b}[0m\n  at ]]> here".into(),
            ..Evidence::default()
        },
    }
}

/// `(name, failure message, skipped message)` of each testcase.
type Row = (String, Option<String>, Option<String>);

fn rows(doc: &roxmltree::Document<'_>) -> Vec<Row> {
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|c| {
            let child = |tag: &str| {
                c.children()
                    .find(|n| n.has_tag_name(tag))
                    .map(|n| n.attribute("message").unwrap_or_default().to_string())
            };
            (
                c.attribute("name").unwrap().to_string(),
                child("failure"),
                child("skipped"),
            )
        })
        .collect()
}

#[test]
fn a_report_reads_back_with_its_counts_names_and_messages() {
    let results = Results::new(vec![
        finding("copy", "local", Verdict::Safe, Verdict::Safe),
        finding("zc-naive", "local", Verdict::Safe, Verdict::Corrupt),
        finding(
            "uring-zc-notif",
            "local",
            Verdict::Unsupported,
            Verdict::Unsupported,
        ),
        finding(
            "siocoutq-drain",
            "remote",
            Verdict::Inconclusive,
            Verdict::Corrupt,
        ),
        finding("copy", "remote", Verdict::Error, Verdict::Safe),
    ]);
    let mut cases = junit::cases(&results);
    cases[1].rerun = Some("zcsafe check -p zc-naive -t local");
    let xml = junit::write("zcsafe check", &cases);
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));

    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let attr = |n: roxmltree::Node<'_, '_>, a: &str| n.attribute(a).unwrap().to_string();
    assert_eq!(
        ["tests", "failures", "errors", "skipped"].map(|a| attr(root, a)),
        ["5", "1", "0", "3"]
    );
    let suites: Vec<_> = root.children().filter(|n| n.is_element()).collect();
    assert_eq!(suites.len(), 1, "one kernel (the model): one suite");
    assert_eq!(attr(suites[0], "name"), "model");
    assert_eq!(attr(suites[0], "tests"), "5");

    let rows = rows(&doc);
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "model/local/copy",
            "model/local/zc-naive",
            "model/local/uring-zc-notif",
            "model/remote/siocoutq-drain",
            "model/remote/copy"
        ]
    );
    assert_eq!((&rows[0].1, &rows[0].2), (&None, &None), "a pass");
    let failure = rows[1].1.as_deref().unwrap();
    assert_eq!(failure, results.results[1].contradiction_line());
    assert!(failure.contains("the <peer> holds \"the\" pages & more"));
    let inconclusive = rows[3].2.as_deref().unwrap();
    assert!(inconclusive.starts_with("inconclusive: console: \u{FFFD}[31mpanic"));
    assert!(
        inconclusive.contains("\n  at ]]> here"),
        "newlines survive: {inconclusive:?}"
    );
    assert!(rows[4].2.as_deref().unwrap().starts_with("error"));

    let body = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .and_then(|n| n.text())
        .unwrap();
    assert!(
        body.ends_with("rerun: zcsafe check -p zc-naive -t local"),
        "{body}"
    );
    for c in doc.descendants().filter(|n| n.has_tag_name("testcase")) {
        assert_eq!(c.attribute("classname"), Some("zcsafe.model"));
    }
}

#[test]
fn kernels_make_one_suite_each_in_first_seen_order() {
    let mut a = finding("copy", "loopback", Verdict::Safe, Verdict::Safe);
    a.kernel = Some("6.1.0-13-amd64".into());
    let mut b = a.clone();
    b.kernel = Some("5.10.0-32-amd64".into());
    let results = Results::new(vec![a.clone(), b, a]);
    let xml = junit::write("zcsafe run", &junit::cases(&results));
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suites: Vec<(&str, &str)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .map(|n| (n.attribute("name").unwrap(), n.attribute("tests").unwrap()))
        .collect();
    assert_eq!(suites, [("6.1.0-13-amd64", "2"), ("5.10.0-32-amd64", "1")]);
    let case = Case::of(&results.results[1]);
    assert_eq!(case.name(), "5.10.0-32-amd64/loopback/copy");
}
