//! Verdicts, the one vocabulary every backend answers in.

use serde::{Deserialize, Serialize};

/// What happened to the stream under a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every byte the receiver read equals the stream, on every explored path / run.
    Safe,
    /// The receiver read bytes the sender wrote after handing the buffer to the kernel.
    Corrupt,
    /// The sender waits for something that can no longer happen.
    Stuck,
    /// The kernel (or kernel profile) lacks a feature the policy needs.
    Unsupported,
    /// The run itself failed (policy bug, environment problem).
    Error,
    /// Nothing went wrong, but the run never exercised the hazard it tests (the buffer
    /// was never rewritten while its previous bytes were still in flight): no evidence
    /// either way. Not a contradiction, and not a success (exit status 4).
    Inconclusive,
}

impl Verdict {
    /// The word every table and the JSON print (serde writes the same).
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Safe => "safe",
            Verdict::Corrupt => "corrupt",
            Verdict::Stuck => "stuck",
            Verdict::Unsupported => "unsupported",
            Verdict::Error => "error",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// Whether the verdict judges the policy: `error` (the run failed) and `inconclusive`
    /// (the hazard never opened) say nothing about it, so they never contradict.
    pub fn judges(self) -> bool {
        !matches!(self, Verdict::Error | Verdict::Inconclusive)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, not `write_str`: `{:<8}` and friends must work on a verdict.
        f.pad(self.name())
    }
}
