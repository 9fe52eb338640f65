//! The timeline a person reads, tested by its content: text snapshots, the structure of
//! the SVG, and clear errors for files that are not traces.

use std::path::Path;
use zcsafe_explain::{load, svg, text, Selection, Timeline};

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn model_trace() -> zcsafe_policy::Trace {
    load(&data("siocoutq-drain-local.json"), &Selection::default()).unwrap()
}

#[test]
fn text_timeline_of_a_model_counterexample() {
    let out = text::render(&model_trace());
    insta::assert_snapshot!("siocoutq-drain-local", out);
}

#[test]
fn every_step_gets_one_sentence_and_reuse_is_flagged() {
    let trace = model_trace();
    let t = Timeline::new(&trace);
    assert_eq!(t.rows.len(), trace.steps.len());
    assert!(t.rows.iter().all(|r| r.sentence.ends_with('.')));
    let out = text::render(&trace);
    assert_eq!(
        out.lines()
            .filter(|l| l.trim_start().starts_with("= "))
            .count(),
        trace.steps.len()
    );
    // The drain answered 0, the page is still in the peer's receive queue, and the
    // sentence says so at the moment of reuse.
    let reuse = t
        .rows
        .iter()
        .find(|r| r.flag == Some(zcsafe_policy::Flag::ReuseWhileHeld))
        .expect("the counterexample rewrites a held page");
    assert!(
        reuse.sentence.contains("peer receive queue"),
        "{}",
        reuse.sentence
    );
    assert!(out.contains("=> corrupt:"));
}

#[test]
fn svg_is_well_formed_with_one_group_per_step() {
    let trace = model_trace();
    let doc = svg::render(&trace);
    let x = roxmltree::Document::parse(&doc).expect("well-formed XML");
    let root = x.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let steps: Vec<_> = x
        .descendants()
        .filter(|n| {
            n.has_tag_name("g") && n.attribute("class").is_some_and(|c| c.starts_with("step"))
        })
        .collect();
    assert_eq!(steps.len(), trace.steps.len());
    let class = |c: &str| {
        steps
            .iter()
            .filter(|n| n.attribute("class") == Some(c))
            .count()
    };
    assert_eq!(class("step wrong"), 1, "exactly the last read is wrong");
    assert!(class("step reuse") >= 1);
    // Every lane header is there.
    let texts: Vec<&str> = x.descendants().filter_map(|n| n.text()).collect();
    for lane in [
        "application",
        "pipe",
        "write queue",
        "wire/device",
        "peer",
        "buf[0]",
    ] {
        assert!(texts.contains(&lane), "header {lane}");
    }
    assert_eq!(doc, svg::render(&trace), "deterministic");
    insta::assert_snapshot!("siocoutq-drain-local-svg", doc);
}

#[test]
fn kernel_recordings_without_holders_still_explain_each_step() {
    let trace = load(&data("kernel-loopback.json"), &Selection::default()).unwrap();
    let t = Timeline::new(&trace);
    assert!(!t.sees_holders && t.pages.is_empty());
    assert!(
        t.rows[0]
            .sentence
            .starts_with("Returned ok: the application wrote new stream bytes"),
        "{}",
        t.rows[0].sentence
    );
    assert!(t.rows[3]
        .sentence
        .contains("0 means the peer ACKed everything"));
    assert!(t.rows[5].sentence.starts_with("The receiver reports"));
    let out = text::render(&trace);
    insta::assert_snapshot!("kernel-loopback", out);
    roxmltree::Document::parse(&svg::render(&trace)).unwrap();
}

#[test]
fn results_files_need_a_selection_when_ambiguous() {
    let one = std::fs::read_to_string(data("siocoutq-drain-local.json")).unwrap();
    let t: serde_json::Value = serde_json::from_str(&one).unwrap();
    let finding = |policy: &str| {
        serde_json::json!({"policy": policy, "transport": "local", "backend": "model",
            "verdict": "corrupt", "expected": "corrupt", "expected_why": "",
            "evidence": {"detail": "", "trace": t}})
    };
    let results = serde_json::json!({"results": [finding("a"), finding("b")]}).to_string();
    let p = Path::new("r.json");
    let e = zcsafe_explain::parse(p, &results, &Selection::default()).unwrap_err();
    assert!(e.to_string().contains("2 traces (a/local, b/local)"), "{e}");
    let sel = Selection {
        policy: Some("b".into()),
        transport: None,
    };
    assert_eq!(
        zcsafe_explain::parse(p, &results, &sel)
            .unwrap()
            .steps
            .len(),
        t["steps"].as_array().unwrap().len()
    );
    let sel = Selection {
        policy: Some("c".into()),
        transport: None,
    };
    let e = zcsafe_explain::parse(p, &results, &sel)
        .unwrap_err()
        .to_string();
    assert!(e.contains("policy c") && e.contains("a/local"), "{e}");
}

#[test]
fn missing_files_are_an_error_not_a_panic() {
    let e = load(Path::new("/nonexistent/t.json"), &Selection::default()).unwrap_err();
    assert!(e
        .to_string()
        .starts_with("/nonexistent/t.json: cannot read"));
}

#[test]
fn version_1_traces_load_converted_with_their_words_and_marks() {
    use zcsafe_explain::words;
    use zcsafe_policy::{Event, Flag, TraceTransport, TRACE_FORMAT_VERSION};
    let old = load(&data("v1/siocoutq-drain-local.json"), &Selection::default()).unwrap();
    let new = model_trace();
    assert_eq!(old.format, TRACE_FORMAT_VERSION, "converted on read");
    assert_eq!(
        (&old.policy, old.transport, old.backend, &old.profile),
        (&new.policy, new.transport, new.backend, &new.profile)
    );
    assert_eq!((old.verdict, &old.summary), (new.verdict, &new.summary));
    assert_eq!(old.steps.len(), new.steps.len(), "the same counterexample");
    for (i, (o, n)) in old.steps.iter().zip(&new.steps).enumerate() {
        assert!(matches!(o.event, Event::Legacy { .. }), "step {i}");
        assert_eq!(o.actor(), n.actor(), "step {i}");
        assert_eq!(o.flag(), n.flag(), "step {i}: the v1 marks survive");
        assert_eq!(o.holders, n.holders, "step {i}: page names convert");
        assert_eq!(
            words::action(&o.event),
            words::action(&n.event),
            "step {i}: version 2's words are version 1's"
        );
    }
    assert!(text::render(&old).contains("=> corrupt:"));
    roxmltree::Document::parse(&svg::render(&old)).unwrap();

    let kernel = load(&data("v1/kernel-loopback.json"), &Selection::default()).unwrap();
    assert_eq!(
        kernel.transport,
        TraceTransport::Host(zcsafe_policy::HostTransport::Loopback)
    );
    assert_eq!(kernel.backend, zcsafe_policy::Backend::Kernel);
    assert_eq!(
        kernel.steps.last().unwrap().flag(),
        Some(Flag::WrongBytes),
        "the receiver's WRONG note is a flag"
    );
}
