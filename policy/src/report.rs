//! The result rows every backend reports in: one JSON shape for `check`, `sim`, `run`
//! and `matrix`, so tools can merge and compare them.

use crate::known::Known;
use crate::trace::Trace;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};

/// One verdict: a policy on a transport, judged by a backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The catalogue name of the policy judged (or `external` for a sender program).
    pub policy: String,
    /// `local`/`remote` for the model and simulator; `loopback`, `veth`, … on kernels.
    pub transport: String,
    /// `model`, `sim`, `kernel`, `vm`.
    pub backend: String,
    /// `uname -r` of the kernel that ran it (kernel backends only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// What the backend observed; compared with `expected` and `predicted`.
    pub verdict: Verdict,
    /// What the literature and the kernel source lead us to expect.
    pub expected: Verdict,
    /// The reason for `expected`, printed beside a contradiction so a reader can tell
    /// whether the expectation or the backend is wrong.
    pub expected_why: String,
    /// The model's prediction for the same transport class and kernel profile, when a
    /// non-model backend reports (so observation and prediction sit side by side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted: Option<Verdict>,
    /// What the verdict rests on: no verdict without a run behind it.
    pub evidence: Evidence,
}

impl Finding {
    /// The verdict matches the expectation (and the prediction, where there is one).
    pub fn agrees(&self) -> bool {
        self.verdict == self.expected && self.predicted.is_none_or(|p| p == self.verdict)
    }

    /// A verdict that judged the policy, and differs from the expectation or prediction.
    pub fn contradicts(&self) -> bool {
        self.verdict.judges() && !self.agrees()
    }

    /// The verdict agrees, but only after a contradicting attempt was rerun
    /// (`--retries`): flaky, not a regression.
    pub fn flaky(&self) -> bool {
        self.evidence.attempts.len() > 1 && self.agrees()
    }

    /// The one line that says a finding contradicts, and why it was expected otherwise:
    /// the text reports print it and JUnit reports use it as the failure's message, so a
    /// CI log and a terminal say the same words.
    pub fn contradiction_line(&self) -> String {
        let mut s = format!(
            "CONTRADICTION {} / {} ({}): verdict {}, expected {} because {}",
            self.policy,
            self.transport,
            self.backend,
            self.verdict,
            self.expected,
            self.expected_why
        );
        if let Some(p) = self.predicted {
            s.push_str(&format!("; the model predicts {p}"));
        }
        s
    }
}

/// What backs a verdict.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// One sentence.
    pub detail: String,
    /// Counterexample or recorded run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace>,
    /// Backend-specific numbers (states explored, bytes, corrupt words, seed, …).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub counts: serde_json::Map<String, serde_json::Value>,
    /// `--retries`: the verdict of every attempt, in order, when a first attempt that
    /// contradicted was rerun (see [`crate::retry`]); empty when the first attempt stood.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Verdict>,
    /// The model scenario the verdict was reached in (`check`: derived from the policy's
    /// pipeline unless overridden), so a reader knows what "safe" covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<ScenarioSizes>,
    /// `check --sweep`: every scenario walked, smallest first; the finding's verdict is
    /// the last step's (a counterexample, or `safe` up to the largest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sweep: Vec<SweepStep>,
    /// Which hazards the runs behind the verdict reached and which they never reached
    /// ([`crate::hazard`]): the same vocabulary for the model, the simulator and the
    /// kernel. Absent where a backend does not report them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hazards: Option<crate::Hazards>,
}

/// The sizes of a model scenario, as results report them and model traces keep them
/// (pages).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioSizes {
    /// Chunk, buffer, pipe, stream and counter width.
    pub geometry: crate::Geometry,
    /// Send buffer, in pages.
    pub sndbuf: u64,
    /// Congestion window, in segments.
    pub cwnd: u64,
    /// The peer's receive buffer, in pages.
    pub rcvbuf: u64,
    /// Segments the network may drop.
    pub losses: u8,
    /// Retransmission timeouts that may fire although nothing was lost.
    pub spurious_rto: u8,
    /// The remote class's device (left out for the default NIC).
    #[serde(default, skip_serializing_if = "crate::RemoteDevice::is_nic")]
    pub device: crate::RemoteDevice,
    /// Notification ranges the socket's optmem holds before `MSG_ZEROCOPY` sends fail
    /// with `ENOBUFS` (absent before it was recorded: the standard scenario's 2).
    #[serde(default = "standard_zc_optmem")]
    pub zc_optmem: u8,
}

fn standard_zc_optmem() -> u8 {
    2
}

/// One scenario of a sweep and what its check found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepStep {
    /// The scenario checked.
    pub scenario: ScenarioSizes,
    /// Its verdict; absent when the check could not finish (`error` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// States explored (0 when the check could not finish).
    pub states: usize,
    /// Why the check of this step did not finish (its state bound, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Bumped whenever the result JSON changes incompatibly. 1: no `format` field, version-1
/// traces; 2: typed (version-2) traces. Fields added since without a bump (readers of 2
/// ignore them): `evidence.scenario`, `evidence.sweep`, `evidence.hazards`.
pub const RESULTS_FORMAT_VERSION: u32 = 2;

/// The top-level JSON object of every command's `--json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[must_use = "a report says what was judged: print it or hand it on"]
pub struct Results {
    /// [`RESULTS_FORMAT_VERSION`] of the writer; a file without the field is version 1.
    #[serde(default = "first_version")]
    pub format: u32,
    /// One finding per policy and transport, in the order the command judged them.
    pub results: Vec<Finding>,
    /// What a `--known` file excused and which of its entries are stale.
    #[serde(default, skip_serializing_if = "Known::is_empty")]
    pub known: Known,
}

fn first_version() -> u32 {
    1
}

impl Default for Results {
    fn default() -> Results {
        Results::new(Vec::new())
    }
}

impl Results {
    /// Findings in the current format.
    pub fn new(results: Vec<Finding>) -> Results {
        Results {
            format: RESULTS_FORMAT_VERSION,
            results,
            known: Known::default(),
        }
    }

    /// Findings that differ from the expectation or the prediction, `error`s included
    /// (printed loudly); `inconclusive` ones are listed by [`Results::inconclusive`], known
    /// differences by [`Results::excused`].
    pub fn contradictions(&self) -> impl Iterator<Item = &Finding> {
        self.results.iter().filter(|f| {
            !f.agrees() && f.verdict != Verdict::Inconclusive && self.excuse(f).is_none()
        })
    }

    /// Contradicting findings a `--known` file accepts, each with its entry.
    pub fn excused(&self) -> impl Iterator<Item = (&Finding, &crate::KnownDifference)> {
        self.results
            .iter()
            .filter_map(|f| self.excuse(f).map(|e| (f, e)))
    }

    /// Applies a known-differences file, matching each finding on its `uname -r`.
    pub fn apply_known(&mut self, file: &crate::KnownFile) {
        self.known = file.review(self.results.iter().map(|f| (f.kernel.as_deref(), f)));
    }

    /// The known difference that accepts `f` (matched on the finding's `uname -r`).
    pub fn excuse(&self, f: &Finding) -> Option<&crate::KnownDifference> {
        self.known.excuse(f.kernel.as_deref(), f)
    }

    /// Findings whose run never exercised the hazard.
    pub fn inconclusive(&self) -> impl Iterator<Item = &Finding> {
        self.results
            .iter()
            .filter(|f| f.verdict == Verdict::Inconclusive)
    }

    /// The command's exit status, the same for every command:
    ///
    /// - **1** a verdict contradicts its expectation or the model's prediction (and no
    ///   `--known` entry accepts it);
    /// - else **3** some finding could not be judged (`error`: the infrastructure or the
    ///   environment failed, so it says nothing about the policy and is no contradiction);
    /// - else **4** some run never exercised the hazard (`inconclusive`);
    /// - else **0** every verdict is as expected.
    ///
    /// (2 is the CLI's: a usage error, or nothing at all was judged.)
    #[must_use = "a contradiction found but not reported as the exit status is lost"]
    pub fn exit_code(&self) -> u8 {
        exit_status(self.outcomes())
    }

    /// What [`Results::exit_code`] is decided by.
    pub fn outcomes(&self) -> Outcomes {
        Outcomes {
            contradicted: self
                .results
                .iter()
                .any(|f| f.contradicts() && self.excuse(f).is_none()),
            unjudged: self.results.iter().any(|f| f.verdict == Verdict::Error),
            inconclusive: self.inconclusive().next().is_some(),
        }
    }
}

/// What a report found, for [`exit_status`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// A verdict contradicts its expectation or prediction.
    pub contradicted: bool,
    /// A finding could not be judged (`error`).
    pub unjudged: bool,
    /// A run never exercised the hazard (`inconclusive`).
    pub inconclusive: bool,
}

/// The order of the statuses above, for reports that decide "contradicted" their own way
/// (the bench: an expected-safe policy that corrupted): a contradiction outranks a
/// finding that could not be judged, which outranks one without evidence either way.
#[must_use]
pub fn exit_status(o: Outcomes) -> u8 {
    if o.contradicted {
        1
    } else if o.unjudged {
        3
    } else if o.inconclusive {
        4
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_carry_their_format_and_older_files_read_as_version_1() {
        let json = serde_json::to_string(&Results::default()).unwrap();
        assert_eq!(json, r#"{"format":2,"results":[]}"#);
        let old: Results = serde_json::from_str(r#"{"results":[]}"#).unwrap();
        assert_eq!(old.format, 1);
        assert_eq!(old.results, Results::default().results);
    }

    #[test]
    fn a_known_difference_is_no_contradiction() {
        let f = Finding {
            policy: "zc-naive".into(),
            transport: "loopback".into(),
            backend: "kernel".into(),
            kernel: Some("6.1.0-13-amd64".into()),
            verdict: Verdict::Safe,
            expected: Verdict::Corrupt,
            expected_why: String::new(),
            predicted: None,
            evidence: Evidence::default(),
        };
        let mut r = Results::new(vec![f]);
        assert_eq!(r.exit_code(), 1);
        let file = crate::KnownFile::parse(
            std::path::Path::new("k.toml"),
            "[[known]]\npolicy = \"zc-naive\"\ntransport = \"loopback\"\nverdict = \"safe\"\nreason = \"r\"\n",
        )
        .unwrap();
        r.apply_known(&file);
        assert_eq!(r.exit_code(), 0);
        assert_eq!(r.contradictions().count(), 0);
        assert_eq!(r.excused().count(), 1);
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains(r#""excused":[{"line":1,"kernel":"6.1.0-13-amd64""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Results>(&json).unwrap(), r);
    }
}
