//! Wall-clock figures, kept apart from the verdicts.
//!
//! A [`Results`] object holds only what the seed and the options decide, so two runs with
//! the same seed and options print the same bytes and a CI can compare them with `cmp`.
//! How long things took is a property of the machine, not of the policy: it goes in one
//! separate top-level `timing` object, printed only when asked for (`--timings`):
//!
//! ```json
//! { "results": [ … ],
//!   "timing": { "total_ms": 812.4,
//!               "findings": [ { "policy": "copy", "transport": "local", "elapsed_ms": 3.1 } ] } }
//! ```
//!
//! Readers of the `results` shape ignore `timing` (unknown fields are allowed), so the
//! object is an addition, not a new format.

use crate::report::Results;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long one finding took to judge.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FindingTiming {
    /// The finding's policy, so a timing joins its finding in `results`.
    pub policy: String,
    /// The finding's transport (same role).
    pub transport: String,
    /// Wall-clock milliseconds the backend spent on this finding.
    pub elapsed_ms: f64,
    /// Each repetition's wall-clock milliseconds, where a backend repeats (kernel runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs_ms: Vec<f64>,
}

/// Every wall-clock figure of one command.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// The whole command, milliseconds.
    pub total_ms: f64,
    /// One entry per finding, in the order of `results`.
    #[serde(default)]
    pub findings: Vec<FindingTiming>,
}

/// Milliseconds of a duration, as the JSON states them.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Timing {
    /// Records that judging `policy` over `transport` took `elapsed`.
    pub fn push(&mut self, policy: &str, transport: &str, elapsed: Duration) {
        self.findings.push(FindingTiming {
            policy: policy.into(),
            transport: transport.into(),
            elapsed_ms: ms(elapsed),
            runs_ms: Vec::new(),
        });
    }
}

/// `results` and, when given, `timing` as one pretty-printed JSON object: what every
/// command's `--json` prints (`timing` only with `--timings`).
pub fn to_json(results: &Results, timing: Option<&Timing>) -> serde_json::Result<String> {
    #[derive(Serialize)]
    struct Out<'a> {
        #[serde(flatten)]
        results: &'a Results,
        #[serde(skip_serializing_if = "Option::is_none")]
        timing: Option<&'a Timing>,
    }
    serde_json::to_string_pretty(&Out { results, timing })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_is_a_separate_top_level_object_that_readers_of_results_ignore() {
        let results = Results::default();
        let mut timing = Timing {
            total_ms: 2.0,
            ..Timing::default()
        };
        timing.push("copy", "local", Duration::from_millis(1));
        let with = to_json(&results, Some(&timing)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&with).unwrap();
        assert_eq!(v["timing"]["findings"][0]["elapsed_ms"], 1.0);
        assert_eq!(v["timing"]["total_ms"], 2.0);
        let back: Results = serde_json::from_str(&with).unwrap();
        assert_eq!(back, results);
        let without = to_json(&results, None).unwrap();
        assert_eq!(without, serde_json::to_string_pretty(&results).unwrap());
        assert!(!without.contains("timing"));
    }
}
