//! `--retries N`: a contradicting finding is rerun before it counts.
//!
//! A verdict that contradicts its expectation on a kernel under TCG may be a regression,
//! or a timing accident (a completion that arrived late, a receiver scheduled out). CI
//! users of kernel matrices ask for a rerun before something is called a regression, and
//! to see which cells needed one. The rules, shared by every command that retries:
//!
//! - only a finding that [contradicts](Finding::contradicts) is rerun ([`RetryBudget`]),
//!   at most N more times, and only that finding's run;
//! - the first attempt that [agrees](Finding::agrees) stands: the cell *agreed after
//!   retry* ([`Finding::flaky`]) — reported, not failing;
//! - if none agrees the first attempt stands: a contradiction every time is a
//!   contradiction. (A rerun that errs or is inconclusive says nothing either way, so it
//!   cannot clear the first attempt.)
//!
//! Either way the finding records every attempt's verdict in
//! [`Evidence::attempts`](crate::Evidence::attempts) and the number of reruns in
//! `evidence.counts.retries`.

use crate::report::Finding;
use crate::verdict::Verdict;

/// How many more times a contradicting finding may be run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryBudget {
    /// Reruns allowed after the first attempt (`--retries N`).
    pub retries: u32,
}

impl RetryBudget {
    /// Whether the attempt that just gave `latest`, after `reruns` reruns so far, is run
    /// once more: it contradicts and the budget is not spent.
    pub fn rerun(self, latest: &Finding, reruns: u32) -> bool {
        latest.contradicts() && reruns < self.retries
    }
}

/// The attempts of one finding, in the order they ran, settled into the one that counts:
/// its index in `attempts` and the finding annotated with every attempt's verdict (module
/// docs). `None` for no attempts.
pub fn settle(attempts: &[Finding]) -> Option<(usize, Finding)> {
    let first = attempts.first()?;
    // Only a contradiction is retried: whatever ran after a first attempt that did not
    // contradict is no retry of it.
    if attempts.len() == 1 || !first.contradicts() {
        return Some((0, first.clone()));
    }
    let stands = attempts.iter().position(Finding::agrees).unwrap_or(0);
    let mut f = attempts[stands].clone();
    let verdicts: Vec<Verdict> = attempts.iter().map(|a| a.verdict).collect();
    let reruns = attempts.len() - 1;
    let seen = verdicts
        .iter()
        .map(|v| v.name())
        .collect::<Vec<_>>()
        .join(", ");
    let note = if stands > 0 {
        format!(
            "agreed after {stands} retr{} (flaky): the attempts saw {seen}",
            if stands == 1 { "y" } else { "ies" }
        )
    } else {
        format!(
            "contradicted on every attempt ({} of them, {reruns} rerun(s)): they saw {seen}",
            attempts.len()
        )
    };
    f.evidence.detail = format!("{}; {note}", f.evidence.detail);
    f.evidence
        .counts
        .insert("retries".into(), serde_json::Value::from(reruns));
    f.evidence.attempts = verdicts;
    Some((stands, f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Evidence;

    fn attempt(verdict: Verdict) -> Finding {
        Finding {
            policy: "zc-naive".into(),
            transport: "veth".into(),
            backend: "vm".into(),
            kernel: Some("5.10.0-32-cloud-amd64".into()),
            verdict,
            expected: Verdict::Corrupt,
            expected_why: "it rewrites the buffer before the completion".into(),
            predicted: None,
            evidence: Evidence {
                detail: format!("saw {verdict}"),
                ..Evidence::default()
            },
        }
    }

    fn settled(verdicts: &[Verdict]) -> (usize, Finding) {
        let a: Vec<Finding> = verdicts.iter().map(|v| attempt(*v)).collect();
        settle(&a).unwrap()
    }

    #[test]
    fn only_a_contradiction_is_rerun_and_only_within_the_budget() {
        let b = RetryBudget { retries: 2 };
        assert!(b.rerun(&attempt(Verdict::Safe), 0));
        assert!(b.rerun(&attempt(Verdict::Safe), 1));
        assert!(!b.rerun(&attempt(Verdict::Safe), 2), "budget spent");
        assert!(!b.rerun(&attempt(Verdict::Corrupt), 0), "agrees");
        assert!(
            !b.rerun(&attempt(Verdict::Error), 0),
            "error judges nothing"
        );
        assert!(!b.rerun(&attempt(Verdict::Inconclusive), 0));
        assert!(!RetryBudget::default().rerun(&attempt(Verdict::Safe), 0));
    }

    #[test]
    fn a_single_attempt_stands_unchanged() {
        let (i, f) = settled(&[Verdict::Safe]);
        assert_eq!(i, 0);
        assert_eq!(f, attempt(Verdict::Safe));
        assert!(!f.flaky() && f.contradicts());
        assert!(settle(&[]).is_none());
        // Attempts after one that did not contradict were no retries of it.
        let (i, f) = settled(&[Verdict::Corrupt, Verdict::Safe]);
        assert_eq!((i, f), (0, attempt(Verdict::Corrupt)));
    }

    #[test]
    fn a_cell_that_agrees_on_a_retry_is_flaky_not_a_contradiction() {
        let (i, f) = settled(&[Verdict::Safe, Verdict::Safe, Verdict::Corrupt]);
        assert_eq!(i, 2);
        assert_eq!(f.verdict, Verdict::Corrupt);
        assert!(f.flaky() && !f.contradicts());
        assert_eq!(
            f.evidence.attempts,
            [Verdict::Safe, Verdict::Safe, Verdict::Corrupt]
        );
        assert_eq!(f.evidence.counts["retries"], 2);
        assert_eq!(
            f.evidence.detail,
            "saw corrupt; agreed after 2 retries (flaky): the attempts saw safe, safe, corrupt"
        );
    }

    #[test]
    fn a_cell_that_contradicts_every_time_stays_a_contradiction() {
        let (i, f) = settled(&[Verdict::Safe, Verdict::Safe]);
        assert_eq!(i, 0);
        assert!(f.contradicts() && !f.flaky());
        assert_eq!(f.evidence.counts["retries"], 1);
        assert!(f.evidence.detail.ends_with(
            "contradicted on every attempt (2 of them, 1 rerun(s)): they saw safe, safe"
        ));
        // A rerun that could not judge does not clear the first attempt.
        let (i, f) = settled(&[Verdict::Safe, Verdict::Error, Verdict::Inconclusive]);
        assert_eq!((i, f.verdict), (0, Verdict::Safe));
        assert!(f.contradicts());
    }

    #[test]
    fn attempts_round_trip_through_json_and_old_findings_have_none() {
        let (_, f) = settled(&[Verdict::Stuck, Verdict::Corrupt]);
        let back: Finding = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        let json = serde_json::to_string(&attempt(Verdict::Safe)).unwrap();
        assert!(!json.contains("attempts"), "{json}");
    }
}
