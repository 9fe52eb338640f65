//! Reading findings out of what a cell's command printed, and what a cell is expected to
//! show: the catalogue's expectation for cells no guest answered, aligned with the
//! guests' own (profile-aware) expectation where one did.

use super::external::EXTERNAL;
use super::transport::GuestTransport;
use super::Cell;
use zcsafe_policy::{Finding, Results, Verdict};

/// The findings in a command's output: `{"results":[…]}` objects or bare findings, each
/// on one line or pretty-printed over several; other output is skipped.
pub fn parse_findings(lines: &[String]) -> Vec<Finding> {
    let text = lines.join("\n");
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(off) = text[pos..].find('{') {
        let start = pos + off;
        let mut it =
            serde_json::Deserializer::from_str(&text[start..]).into_iter::<serde_json::Value>();
        match it.next() {
            Some(Ok(v)) => {
                pos = start + it.byte_offset();
                if let Ok(r) = serde_json::from_value::<Results>(v.clone()) {
                    out.extend(r.results);
                } else if let Ok(f) = serde_json::from_value::<Finding>(v) {
                    out.push(f);
                }
            }
            _ => pos = start + 1,
        }
    }
    out
}

/// The catalogue's expectation for `policy` on `transport` (classic profile): what an
/// `error` cell shows, since no guest answered with its own.
pub(super) fn expectation(policy: &str, transport: GuestTransport) -> (Verdict, String) {
    match zcsafe_policies::find_runnable(policy) {
        Some(e) => {
            let x = e.expect(transport.class(), &zcsafe_policy::Profile::classic());
            (x.verdict, x.why.to_string())
        }
        None if policy == EXTERNAL => (
            Verdict::Safe,
            "an external sender must deliver the stream intact".into(),
        ),
        None => (
            Verdict::Safe,
            "transport self-test: an untouched buffer always arrives intact".into(),
        ),
    }
}

/// Error cells know only the catalogue's expectation for the classic profile; where a
/// guest answered for the same policy and transport, its (profile-aware) expectation is
/// the one the row shows, so a row never mixes two expectations.
pub(super) fn align_error_expectations(cells: &mut [Cell]) {
    let answered: Vec<(String, String, Verdict, String)> = cells
        .iter()
        .filter(|c| c.finding.verdict != Verdict::Error)
        .map(|c| {
            (
                c.finding.policy.clone(),
                c.finding.transport.clone(),
                c.finding.expected,
                c.finding.expected_why.clone(),
            )
        })
        .collect();
    for c in cells
        .iter_mut()
        .filter(|c| c.finding.verdict == Verdict::Error)
    {
        if let Some((_, _, e, why)) = answered
            .iter()
            .find(|(p, t, _, _)| *p == c.finding.policy && *t == c.finding.transport)
        {
            c.finding.expected = *e;
            c.finding.expected_why = why.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::cell::error_cell;
    use crate::matrix::host::host_kernel_run;
    use crate::matrix::Options;

    #[test]
    fn findings_are_read_from_results_and_bare_lines() {
        let f = r#"{"policy":"copy","transport":"veth","backend":"kernel","verdict":"safe","expected":"safe","expected_why":"x","evidence":{"detail":"ok"}}"#;
        let lines = vec![
            "noise".to_string(),
            format!("{{\"results\":[{f}]}}"),
            f.to_string(),
            "{not json".to_string(),
        ];
        let got = parse_findings(&lines);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].policy, "copy");
        // Pretty-printed over several lines, after some noise.
        let pretty = serde_json::to_string_pretty(&Results::new(vec![got[0].clone()])).unwrap();
        let mut lines: Vec<String> = vec!["progress {".into()];
        lines.extend(pretty.lines().map(str::to_string));
        assert_eq!(parse_findings(&lines).len(), 1);
    }

    #[test]
    fn error_cells_take_the_expectation_of_answered_cells() {
        let o = Options::new("/x".into());
        let k = host_kernel_run();
        let mut answered = error_cell(
            &o,
            &k,
            "zc-inorder-tracker",
            GuestTransport::Veth,
            "ok".into(),
            None,
        );
        answered.finding.verdict = Verdict::Safe;
        answered.finding.expected = Verdict::Safe;
        answered.finding.expected_why = "probed".into();
        let failed = error_cell(
            &o,
            &k,
            "zc-inorder-tracker",
            GuestTransport::Veth,
            "died".into(),
            None,
        );
        let other = error_cell(
            &o,
            &k,
            "zc-inorder-tracker",
            GuestTransport::Remote,
            "died".into(),
            None,
        );
        let before = other.finding.expected;
        let mut cells = vec![answered, failed, other];
        align_error_expectations(&mut cells);
        assert_eq!(cells[1].finding.expected, Verdict::Safe);
        assert_eq!(cells[1].finding.expected_why, "probed");
        assert_eq!(cells[2].finding.expected, before);
    }
}
