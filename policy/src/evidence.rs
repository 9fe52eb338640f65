//! No verdict without evidence: a `safe` that no completed run backs is refused.
//!
//! `safe` is a claim about every explored path, seed or repetition. A backend that ran
//! none of them (zero seeds, zero repetitions, zero measured rounds, every run skipped)
//! has shown nothing, and printing `safe` would turn "not tested" into "tested and
//! fine". Backends refuse empty work themselves; this is the last check, shared by every
//! command, before a verdict is printed.

use crate::report::{Finding, Results};
use crate::verdict::Verdict;

/// The evidence counts that say how much a backend completed: explored model states
/// (`check`), simulated seeds (`sim`), kernel repetitions (`run`), measured rounds
/// (`bench`). A finding that has one of them at zero completed nothing.
pub const RUN_COUNTS: [&str; 4] = ["states", "scenarios", "repeat", "rounds"];

/// Why results cannot be printed as verdicts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoEvidence {
    /// No finding at all: an exit status 0 would claim every verdict is as expected.
    #[error("nothing was judged: the selection of policies and transports is empty")]
    Empty,
    /// A `safe` verdict whose run count is zero: "not tested" dressed as "fine".
    #[error(
        "{policy} / {transport} ({backend}) would be `safe` with {count} = 0: it completed no \
         run, so it has shown nothing; ask for at least one run"
    )]
    ZeroRuns {
        /// The finding's policy, so the message says which row it refused.
        policy: String,
        /// The finding's transport.
        transport: String,
        /// The backend that completed nothing (it names the count the user can raise).
        backend: String,
        /// The evidence count that is zero, one of [`RUN_COUNTS`].
        count: &'static str,
    },
}

impl Finding {
    /// The run count this finding's evidence states as zero, if any.
    pub fn zero_run_count(&self) -> Option<&'static str> {
        RUN_COUNTS
            .into_iter()
            .find(|k| self.evidence.counts.get(*k).and_then(|v| v.as_u64()) == Some(0))
    }
}

impl Results {
    /// Fails when there is no finding at all, or a `safe` finding whose evidence shows
    /// zero completed runs. Every command calls it before printing a verdict.
    pub fn require_evidence(&self) -> Result<(), NoEvidence> {
        if self.results.is_empty() {
            return Err(NoEvidence::Empty);
        }
        for f in &self.results {
            if f.verdict != Verdict::Safe {
                continue;
            }
            if let Some(count) = f.zero_run_count() {
                return Err(NoEvidence::ZeroRuns {
                    policy: f.policy.clone(),
                    transport: f.transport.clone(),
                    backend: f.backend.clone(),
                    count,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Evidence;

    fn finding(verdict: Verdict, key: &str, n: u64) -> Finding {
        let mut evidence = Evidence::default();
        evidence.counts.insert(key.into(), n.into());
        Finding {
            policy: "copy".into(),
            transport: "local".into(),
            backend: "sim".into(),
            kernel: None,
            verdict,
            expected: Verdict::Safe,
            expected_why: String::new(),
            predicted: None,
            evidence,
        }
    }

    #[test]
    fn a_safe_verdict_from_zero_runs_is_refused() {
        for key in RUN_COUNTS {
            let r = Results::new(vec![finding(Verdict::Safe, key, 0)]);
            let err = r.require_evidence().unwrap_err();
            assert!(err.to_string().contains(&format!("{key} = 0")), "{err}");
            let r = Results::new(vec![finding(Verdict::Safe, key, 1)]);
            assert_eq!(r.require_evidence(), Ok(()));
        }
        // A corrupt verdict is its own evidence (the corruption was seen).
        let r = Results::new(vec![finding(Verdict::Corrupt, "scenarios", 0)]);
        assert_eq!(r.require_evidence(), Ok(()));
        assert_eq!(
            Results::default().require_evidence(),
            Err(NoEvidence::Empty)
        );
    }
}
