//! JUnit XML reports, so another project's CI shows zcsafe's verdicts as tests.
//!
//! One writer for every command (`check`, `run`, `matrix`): each finding is a
//! `<testcase>` named `KERNEL/TRANSPORT/POLICY`, grouped in one `<testsuite>` per
//! `KERNEL`. How a verdict maps onto JUnit's outcomes:
//!
//! - a contradiction is a `<failure>` (message: [`Finding::contradiction_line`]; body: the
//!   evidence and the command that reruns it) — the one outcome that fails the test;
//! - a contradiction a `--known` file accepts is `<skipped message="known difference: …">`
//!   (as pytest reports an expected failure);
//! - `unsupported`, `inconclusive` and `error` are `<skipped message="…">`: none of them
//!   judged the policy, and JUnit consumers (Jenkins, GitLab, GitHub test reporters)
//!   count `skipped` as "not a pass, not a test failure", whereas most count `<error>`
//!   as failed. An `error` still makes the command exit 3, so CI notices it anyway;
//! - a finding that agreed only on a rerun (`--retries`, [`Finding::flaky`]) passes, with
//!   a `<flakyFailure>` per earlier attempt (Maven Surefire's rerun format, which Jenkins
//!   and GitLab show as "flaky"); a contradiction that was rerun carries a
//!   `<rerunFailure>` per rerun;
//! - everything else passes.
//!
//! `classname` is `zcsafe.BACKEND` (`zcsafe.model`, `zcsafe.kernel`, `zcsafe.vm`): it
//! depends on neither results nor kernel release, so a CI's test history stays joined.

use crate::known::KnownDifference;
use crate::report::{Finding, Results};
use crate::verdict::Verdict;
use std::fmt::Write as _;

/// One test case: a finding and what the report knows around it.
#[derive(Clone, Debug)]
pub struct Case<'a> {
    /// The finding the case reports.
    pub finding: &'a Finding,
    /// The name's first part and the suite: a matrix's kernel name, the `uname -r` of a
    /// kernel run, the backend (`model`) otherwise ([`Case::of`]).
    pub kernel: &'a str,
    /// The command that reruns this case, put in a failure's body.
    pub rerun: Option<&'a str>,
    /// Seconds the case took, where the command measures it per case (`time`).
    pub seconds: Option<f64>,
    /// The `--known` entry that accepts this (contradicting) finding.
    pub known: Option<&'a KnownDifference>,
}

impl<'a> Case<'a> {
    /// A case for a finding of `check` or `run`: named after the finding's kernel
    /// (`uname -r`) where it has one, else after its backend.
    pub fn of(finding: &'a Finding) -> Case<'a> {
        Case {
            finding,
            kernel: finding.kernel.as_deref().unwrap_or(&finding.backend),
            rerun: None,
            seconds: None,
            known: None,
        }
    }

    /// `KERNEL/TRANSPORT/POLICY`.
    pub fn name(&self) -> String {
        let f = self.finding;
        format!("{}/{}/{}", self.kernel, f.transport, f.policy)
    }

    /// What JUnit shows for this case.
    pub fn outcome(&self) -> Outcome {
        let f = self.finding;
        if let (true, Some(k)) = (f.contradicts(), self.known) {
            return Outcome::Skipped(format!(
                "known difference: {} (verdict {}, expected {}; line {} of the known file)",
                k.reason, f.verdict, f.expected, k.line
            ));
        }
        if f.contradicts() {
            return Outcome::Failure;
        }
        if f.flaky() {
            return Outcome::Flaky;
        }
        let why = |what: &str| format!("{what}: {}", f.evidence.detail);
        match f.verdict {
            Verdict::Unsupported => Outcome::Skipped(why("unsupported")),
            Verdict::Inconclusive => Outcome::Skipped(why("inconclusive")),
            Verdict::Error => Outcome::Skipped(why("error (could not be judged)")),
            _ => Outcome::Passed,
        }
    }
}

/// A case's JUnit outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// As expected.
    Passed,
    /// As expected, but only after a contradicting attempt was rerun (`--retries`).
    Flaky,
    /// A contradiction.
    Failure,
    /// Not judged, with the message that says why.
    Skipped(String),
}

/// The cases of `results`, each named by [`Case::of`], with its known difference.
pub fn cases(results: &Results) -> Vec<Case<'_>> {
    results
        .results
        .iter()
        .map(|f| Case {
            known: results.excuse(f),
            ..Case::of(f)
        })
        .collect()
}

/// The JUnit XML document of `cases`; `name` names the whole run (`zcsafe check`).
/// Suites come in the order their first case does, cases in the given order.
pub fn write(name: &str, cases: &[Case<'_>]) -> String {
    let mut suites: Vec<(&str, Vec<&Case<'_>>)> = Vec::new();
    for c in cases {
        match suites.iter_mut().find(|(k, _)| *k == c.kernel) {
            Some((_, v)) => v.push(c),
            None => suites.push((c.kernel, vec![c])),
        }
    }
    let all: Vec<&Case<'_>> = cases.iter().collect();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(s, "<testsuites name=\"{}\"{}>", attr(name), counts(&all));
    for (kernel, cases) in &suites {
        let _ = writeln!(
            s,
            "  <testsuite name=\"{}\"{}>",
            attr(kernel),
            counts(cases)
        );
        for c in cases {
            write_case(&mut s, c);
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}

/// ` tests="…" failures="…" errors="0" skipped="…"` and `time` when any case has one.
fn counts(cases: &[&Case<'_>]) -> String {
    let n = |o: fn(&Outcome) -> bool| cases.iter().filter(|c| o(&c.outcome())).count();
    let mut s = format!(
        " tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\"",
        cases.len(),
        n(|o| *o == Outcome::Failure),
        n(|o| matches!(o, Outcome::Skipped(_)))
    );
    if cases.iter().any(|c| c.seconds.is_some()) {
        let total: f64 = cases.iter().filter_map(|c| c.seconds).sum();
        let _ = write!(s, " time=\"{total:.3}\"");
    }
    s
}

fn write_case(s: &mut String, c: &Case<'_>) {
    let f = c.finding;
    let _ = write!(
        s,
        "    <testcase name=\"{}\" classname=\"zcsafe.{}\"",
        attr(&c.name()),
        attr(&f.backend)
    );
    if let Some(t) = c.seconds {
        let _ = write!(s, " time=\"{t:.3}\"");
    }
    // Earlier attempts: each one's verdict, as the rerun elements Surefire writes.
    let attempts = |s: &mut String, element: &str, skip: usize| {
        let n = f.evidence.attempts.len();
        for (i, v) in f
            .evidence
            .attempts
            .iter()
            .enumerate()
            .skip(skip)
            .take(n - 1)
        {
            let _ = writeln!(
                s,
                "      <{element} message=\"attempt {} of {n}: verdict {v}, expected {}\" type=\"contradiction\"/>",
                i + 1,
                f.expected
            );
        }
    };
    match c.outcome() {
        Outcome::Passed => s.push_str("/>\n"),
        Outcome::Flaky => {
            s.push_str(">\n");
            attempts(s, "flakyFailure", 0);
            s.push_str("    </testcase>\n");
        }
        Outcome::Skipped(why) => {
            let _ = writeln!(s, ">\n      <skipped message=\"{}\"/>", attr(&why));
            s.push_str("    </testcase>\n");
        }
        Outcome::Failure => {
            let line = f.contradiction_line();
            let mut body = format!("{line}\n{}", f.evidence.detail);
            if let Some(r) = c.rerun {
                let _ = write!(body, "\nrerun: {r}");
            }
            let _ = writeln!(
                s,
                ">\n      <failure message=\"{}\" type=\"contradiction\">{}</failure>",
                attr(&line),
                text(&body)
            );
            if !f.evidence.attempts.is_empty() {
                attempts(s, "rerunFailure", 1);
            }
            s.push_str("    </testcase>\n");
        }
    }
}

/// Character data: `&`, `<`, `>` escaped, and the characters XML 1.0 cannot hold at all
/// (control characters such as the ESC of a console's colours) replaced by U+FFFD, so a
/// console tail never makes the file unreadable.
fn text(s: &str) -> String {
    escape(s, false)
}

/// An attribute value: as [`text`], plus quotes, and line breaks and tabs as character
/// references (a parser would otherwise normalise them to spaces).
fn attr(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, in_attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if in_attribute => out.push_str("&quot;"),
            '\'' if in_attribute => out.push_str("&apos;"),
            '\n' if in_attribute => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' if in_attribute => out.push_str("&#9;"),
            '\t' | '\n' => out.push(ch),
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// XML 1.0's `Char` production.
fn is_xml_char(c: char) -> bool {
    matches!(c as u32, 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Evidence;

    fn finding(policy: &str, verdict: Verdict, expected: Verdict, detail: &str) -> Finding {
        Finding {
            policy: policy.into(),
            transport: "loopback".into(),
            backend: "kernel".into(),
            kernel: Some("6.1.0-13-amd64".into()),
            verdict,
            expected,
            expected_why: "the peer holds the pages".into(),
            predicted: None,
            evidence: Evidence {
                detail: detail.into(),
                ..Evidence::default()
            },
        }
    }

    #[test]
    fn outcomes_follow_the_exit_status_rules() {
        let outcome = |v, e| Case::of(&finding("p", v, e, "d")).outcome();
        assert_eq!(outcome(Verdict::Safe, Verdict::Safe), Outcome::Passed);
        assert_eq!(outcome(Verdict::Corrupt, Verdict::Corrupt), Outcome::Passed);
        assert_eq!(outcome(Verdict::Safe, Verdict::Corrupt), Outcome::Failure);
        // An unsupported that was expected otherwise is a contradiction, as exit 1 says.
        assert_eq!(
            outcome(Verdict::Unsupported, Verdict::Safe),
            Outcome::Failure
        );
        assert_eq!(
            outcome(Verdict::Unsupported, Verdict::Unsupported),
            Outcome::Skipped("unsupported: d".into())
        );
        assert_eq!(
            outcome(Verdict::Inconclusive, Verdict::Safe),
            Outcome::Skipped("inconclusive: d".into())
        );
        assert!(matches!(
            outcome(Verdict::Error, Verdict::Safe),
            Outcome::Skipped(m) if m.starts_with("error")
        ));
    }

    #[test]
    fn reruns_show_as_flaky_or_rerun_failures() {
        let attempts = |verdicts: &[Verdict], expected| {
            let a: Vec<Finding> = verdicts
                .iter()
                .map(|v| finding("zc-naive", *v, expected, "d"))
                .collect();
            crate::retry::settle(&a).unwrap().1
        };
        let flaky = attempts(&[Verdict::Safe, Verdict::Corrupt], Verdict::Corrupt);
        let again = attempts(&[Verdict::Safe, Verdict::Safe], Verdict::Corrupt);
        assert_eq!(Case::of(&flaky).outcome(), Outcome::Flaky);
        assert_eq!(Case::of(&again).outcome(), Outcome::Failure);
        let xml = write("t", &[Case::of(&flaky), Case::of(&again)]);
        assert!(
            xml.contains("tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\""),
            "{xml}"
        );
        assert!(
            xml.contains("<flakyFailure message=\"attempt 1 of 2: verdict safe, expected corrupt\" type=\"contradiction\"/>"),
            "{xml}"
        );
        assert!(
            xml.contains("<rerunFailure message=\"attempt 2 of 2: verdict safe, expected corrupt\" type=\"contradiction\"/>"),
            "{xml}"
        );
        assert_eq!(xml.matches("Failure message").count(), 2, "{xml}");
    }

    #[test]
    fn names_take_the_kernel_else_the_backend() {
        let mut f = finding("copy", Verdict::Safe, Verdict::Safe, "");
        assert_eq!(Case::of(&f).name(), "6.1.0-13-amd64/loopback/copy");
        f.kernel = None;
        f.backend = "model".into();
        assert_eq!(Case::of(&f).name(), "model/loopback/copy");
    }

    #[test]
    fn escaping_keeps_every_string_well_formed() {
        assert_eq!(attr("a<b>&\"c'\n"), "a&lt;b&gt;&amp;&quot;c&apos;&#10;");
        assert_eq!(text("x\u{1b}[31m\n<y>"), "x\u{FFFD}[31m\n&lt;y&gt;");
        assert_eq!(text("]]>"), "]]&gt;");
    }
}
