//! The tables the CLI prints, all through the one column-aligned printer
//! ([`zcsafe_policy::Table`]): the verdict table (policies down, transports across, every
//! cell the verdict and, where it contradicts, what was expected), the contradictions,
//! and the `--timings` section.

use std::collections::BTreeSet;
use zcsafe_policy::{Align, Results, Table, Timing, Verdict};

/// Renders findings as a policy × transport table (policies in first-seen order).
pub fn render(results: &Results) -> String {
    let mut policies: Vec<&str> = Vec::new();
    for f in &results.results {
        if !policies.contains(&f.policy.as_str()) {
            policies.push(&f.policy);
        }
    }
    let transports: BTreeSet<&str> = results
        .results
        .iter()
        .map(|f| f.transport.as_str())
        .collect();
    let cell = |p: &str, t: &str| -> String {
        match results
            .results
            .iter()
            .find(|f| f.policy == p && f.transport == t)
        {
            None => "-".into(),
            Some(f) if f.agrees() => f.verdict.to_string(),
            // Not a contradiction: no evidence either way (see the exposure table).
            Some(f) if f.verdict == Verdict::Inconclusive => "inconclusive ?".into(),
            Some(f) if results.excuse(f).is_some() => {
                format!("{} (expected {}, known)", f.verdict, f.expected)
            }
            Some(f) => format!("{} (expected {}) !!", f.verdict, f.expected),
        }
    };
    let mut table = Table::new(std::iter::once("policy").chain(transports.iter().copied()));
    for p in &policies {
        table.row(std::iter::once(p.to_string()).chain(transports.iter().map(|t| cell(p, t))));
    }
    table.render()
}

/// `5 verdicts, 3 as expected, 1 contradiction(s), 1 inconclusive`.
pub fn tally(results: &Results) -> String {
    let n = results.results.len();
    let bad = results.contradictions().count();
    let unsure = results.inconclusive().count();
    let known = results.excused().count();
    let mut s = format!(
        "{n} verdicts, {} as expected, {bad} contradiction(s)",
        n - bad - unsure - known
    );
    if known > 0 {
        s.push_str(&format!(", {known} known difference(s)"));
    }
    if unsure > 0 {
        s.push_str(&format!(", {unsure} inconclusive"));
    }
    s
}

/// For kernel findings: how far each run exercised the hazard — the reuses made while
/// the previous bytes were still unread, of all reuses — so that a `safe` shows what it
/// rests on. Empty when no finding measured it (the model and the simulator see every
/// page instead).
pub fn exposure(results: &Results) -> String {
    let mut table = Table::new([
        "policy",
        "transport",
        "verdict",
        "reuses",
        "while unread",
        "max behind",
    ])
    .align(3, Align::Right)
    .align(4, Align::Right)
    .align(5, Align::Right)
    .indent("  ");
    let mut any = false;
    for f in &results.results {
        let Some(x) = f.evidence.counts.get("exposure") else {
            continue;
        };
        let n = |k: &str| x.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        any = true;
        table.row([
            f.policy.clone(),
            f.transport.clone(),
            f.verdict.to_string(),
            (n("reuses") + n("releases")).to_string(),
            (n("reuses_while_unread") + n("releases_while_unread")).to_string(),
            format!("{} B", n("max_unread_bytes")),
        ]);
    }
    match any {
        true => format!(
            "\nexposure (pages rewritten or given back after sending, and how many while their bytes were unread):\n{}",
            table.render()
        ),
        false => String::new(),
    }
}

/// One line per contradiction, loud; then one per known difference (`--known`), with
/// its reason, and one per stale entry of the known file.
pub fn contradictions(results: &Results) -> String {
    let mut out = String::new();
    for f in results.contradictions() {
        out.push_str(&f.contradiction_line());
        out.push('\n');
    }
    for (f, k) in results.excused() {
        out.push_str(&format!(
            "KNOWN DIFFERENCE {} / {}: verdict {}, expected {}; accepted by {}: {}\n",
            f.policy,
            f.transport,
            f.verdict,
            f.expected,
            results.known.at(k),
            k.reason
        ));
    }
    for line in results.known.stale_lines() {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The `safe` findings whose runs never reached a hazard their calls opened, one line
/// each with the setting that would reach it: a `safe` says what it did not cover.
pub fn gaps(results: &Results) -> String {
    let mut out = String::new();
    for f in &results.results {
        let Some(h) = f
            .evidence
            .hazards
            .as_ref()
            .filter(|_| f.verdict == Verdict::Safe)
        else {
            continue;
        };
        let gaps = h.gaps();
        if !gaps.is_empty() {
            out.push_str(&format!(
                "SAFE, BUT NEVER REACHED {} / {}: {}\n",
                f.policy,
                f.transport,
                gaps.join(", ")
            ));
        }
    }
    out
}

/// The `--timings` section of a text report: the wall clock, apart from the verdicts
/// (which the same seed and options reproduce byte for byte; these figures never do).
pub fn timing(timing: &Timing) -> String {
    let mut table = Table::new(["policy", "transport", "ms"])
        .align(2, Align::Right)
        .indent("  ");
    for f in &timing.findings {
        table.row([
            f.policy.clone(),
            f.transport.clone(),
            format!("{:.1}", f.elapsed_ms),
        ]);
    }
    format!(
        "\ntiming (wall clock): {:.2} s in all\n{}",
        timing.total_ms / 1e3,
        table.render()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use zcsafe_policy::{Evidence, Finding, Verdict};

    fn finding(policy: &str, transport: &str, verdict: Verdict, expected: Verdict) -> Finding {
        Finding {
            policy: policy.into(),
            transport: transport.into(),
            backend: "model".into(),
            kernel: None,
            verdict,
            expected,
            expected_why: String::new(),
            predicted: None,
            evidence: Evidence::default(),
        }
    }

    #[test]
    fn every_row_of_the_verdict_table_starts_its_columns_at_the_same_char_offsets() {
        let results = Results::new(vec![
            finding("copy", "local", Verdict::Safe, Verdict::Safe),
            finding("copy", "remote", Verdict::Safe, Verdict::Safe),
            finding("zc-naive", "local", Verdict::Safe, Verdict::Corrupt),
            finding("zc-naive", "remote", Verdict::Corrupt, Verdict::Corrupt),
            finding(
                "vmsplice-gift-fresh…",
                "local",
                Verdict::Stuck,
                Verdict::Stuck,
            ),
        ]);
        let text = render(&results);
        let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
        let header = &lines[0];
        let col = |name: &str| {
            let h: String = header.iter().collect();
            h[..h.find(name).unwrap()].chars().count()
        };
        let (local, remote) = (col("local"), col("remote"));
        for line in &lines[1..] {
            let s: String = line.iter().collect();
            assert_ne!(line[local], ' ', "{s:?}");
            assert_eq!(line[local - 1], ' ', "{s:?}");
            if line.len() > remote {
                assert_ne!(line[remote], ' ', "{s:?}");
                assert_eq!(line[remote - 1], ' ', "{s:?}");
            }
        }
        assert!(text.contains("safe (expected corrupt) !!"), "{text}");
        assert!(text.contains("vmsplice-gift-fresh…  stuck"), "{text}");
    }
}
