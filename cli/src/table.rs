//! The verdict table: policies down, transports across, every cell the verdict and,
//! where it contradicts, what was expected.

use std::collections::BTreeSet;
use zcsafe_policy::{Finding, Results};

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
            Some(f) => format!("{} (expected {}) !!", f.verdict, f.expected),
        }
    };
    let pw = policies.iter().map(|p| p.len()).max().unwrap_or(6).max(6);
    let cw = policies
        .iter()
        .flat_map(|p| transports.iter().map(move |t| (p, t)))
        .map(|(p, t)| cell(p, t).len())
        .chain(transports.iter().map(|t| t.len()))
        .max()
        .unwrap_or(8)
        + 2;
    let mut out = format!("{:pw$}", "policy");
    for t in &transports {
        out.push_str(&format!("  {t:cw$}"));
    }
    out = out.trim_end().to_string();
    out.push('\n');
    for p in &policies {
        let mut line = format!("{p:pw$}");
        for t in &transports {
            line.push_str(&format!("  {:cw$}", cell(p, t)));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One line per contradiction, loud.
pub fn contradictions(results: &Results) -> String {
    let mut out = String::new();
    for f in results.contradictions() {
        out.push_str(&contradiction(f));
        out.push('\n');
    }
    out
}

fn contradiction(f: &Finding) -> String {
    let mut s = format!(
        "CONTRADICTION {} / {} ({}): verdict {}, expected {} because {}",
        f.policy, f.transport, f.backend, f.verdict, f.expected, f.expected_why
    );
    if let Some(p) = f.predicted {
        s.push_str(&format!("; the model predicts {p}"));
    }
    s
}
