//! Known differences (`--known FILE`): contradictions a project has looked at and
//! accepts, so its CI stays green on them while every new one still fails it.
//!
//! The file is TOML, one `[[known]]` table per difference:
//!
//! ```toml
//! [[known]]
//! kernel = "6.1"            # optional: every kernel when left out
//! policy = "zc-naive"
//! transport = "loopback"
//! verdict = "safe"          # the verdict observed instead of the expected one
//! reason = "6.1 copies small loopback sends; see issue 42"
//! ```
//!
//! An entry matches a finding that contradicts its expectation with exactly that policy,
//! transport and verdict, on that kernel (the catalogue name a matrix cell has, or the
//! `uname -r` of a `run`). A matched finding is a known difference: reported with the
//! reason, not counted as a contradiction. An entry that matches no contradicting finding
//! is *stale* (the difference went away, or the entry has a typo): reported, so the file
//! does not keep excusing something nobody sees any more.

use crate::report::Finding;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One known difference, with the line of the file it comes from; in a report also the
/// kernel of the finding it matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownDifference {
    /// The line of the file its `[[known]]` table starts on.
    pub line: usize,
    /// The kernel name it is limited to (excused: the kernel of the matched finding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// The finding's policy.
    pub policy: String,
    /// The finding's transport.
    pub transport: String,
    /// The verdict observed instead of the expected one.
    pub verdict: Verdict,
    /// Why the difference is accepted, printed beside it.
    pub reason: String,
}

/// An entry as the file spells it. Separate from [`KnownDifference`] so that a field the
/// file must not have (`line`, a typo) is refused with its line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    kernel: Option<String>,
    policy: String,
    transport: String,
    verdict: Verdict,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    known: Vec<toml::Spanned<Entry>>,
}

/// A known-differences file that cannot be used: says which file and line.
#[derive(Debug, thiserror::Error)]
pub enum KnownError {
    /// The file cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, an unknown field, a missing field, or an entry that can never match.
    #[error("{}:{line}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// The entries of a known-differences file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownFile {
    /// Where they come from, for the messages and reports.
    pub path: PathBuf,
    /// In file order.
    pub entries: Vec<KnownDifference>,
}

impl KnownFile {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<KnownFile, KnownError> {
        let text = std::fs::read_to_string(path).map_err(|source| KnownError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        KnownFile::parse(path, &text)
    }

    /// Parses `text`, the contents of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<KnownFile, KnownError> {
        let invalid = |offset: usize, message: String| KnownError::Invalid {
            path: path.to_path_buf(),
            line: line_of(text, offset),
            message,
        };
        let file: File = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            invalid(at, e.message().trim_end().to_string())
        })?;
        let mut entries = Vec::new();
        for spanned in file.known {
            let at = spanned.span().start;
            let e = spanned.into_inner();
            if !e.verdict.judges() {
                return Err(invalid(
                    at,
                    format!(
                        "verdict `{}` is never a contradiction (it does not judge the \
                         policy), so this entry could never match",
                        e.verdict
                    ),
                ));
            }
            if e.reason.trim().is_empty() {
                return Err(invalid(
                    at,
                    "the reason is empty: say why it is accepted".into(),
                ));
            }
            entries.push(KnownDifference {
                line: line_of(text, at),
                kernel: e.kernel,
                policy: e.policy,
                transport: e.transport,
                verdict: e.verdict,
                reason: e.reason,
            });
        }
        Ok(KnownFile {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// Which of `findings` (each with its kernel name) the entries excuse, and which
    /// entries excuse none. The first matching entry excuses a finding.
    pub fn review<'a>(
        &self,
        findings: impl IntoIterator<Item = (Option<&'a str>, &'a Finding)>,
    ) -> Known {
        let mut used = vec![false; self.entries.len()];
        let mut excused = Vec::new();
        for (kernel, f) in findings {
            let Some(i) = self.entries.iter().position(|e| e.matches(kernel, f)) else {
                continue;
            };
            used[i] = true;
            excused.push(KnownDifference {
                kernel: kernel.map(str::to_string),
                ..self.entries[i].clone()
            });
        }
        let stale = self
            .entries
            .iter()
            .zip(used)
            .filter(|(_, used)| !used)
            .map(|(e, _)| e.clone())
            .collect();
        Known {
            file: Some(self.path.clone()),
            excused,
            stale,
        }
    }
}

impl KnownDifference {
    /// Whether this entry describes `f`, a finding on kernel `kernel`: a contradiction
    /// with this policy, transport and verdict, on this kernel if the entry names one.
    pub fn matches(&self, kernel: Option<&str>, f: &Finding) -> bool {
        f.contradicts()
            && self.policy == f.policy
            && self.transport == f.transport
            && self.verdict == f.verdict
            && self.kernel.as_deref().is_none_or(|k| Some(k) == kernel)
    }
}

/// What a known-differences file made of a report: carried in the report's JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    /// The file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Contradicting findings an entry accepts, each with the kernel it was seen on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excused: Vec<KnownDifference>,
    /// Entries that matched no contradicting finding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stale: Vec<KnownDifference>,
}

impl Known {
    /// No file was given.
    pub fn is_empty(&self) -> bool {
        self.file.is_none() && self.excused.is_empty() && self.stale.is_empty()
    }

    /// The known difference that excuses `f` on kernel `kernel`, if any.
    pub fn excuse(&self, kernel: Option<&str>, f: &Finding) -> Option<&KnownDifference> {
        self.excused.iter().find(|e| e.matches(kernel, f))
    }

    /// `FILE:LINE`, for messages about an entry.
    pub fn at(&self, e: &KnownDifference) -> String {
        let file = self.file.as_deref().unwrap_or(Path::new("known"));
        format!("{}:{}", file.display(), e.line)
    }

    /// One line per stale entry.
    pub fn stale_lines(&self) -> Vec<String> {
        self.stale
            .iter()
            .map(|e| {
                format!(
                    "STALE known difference {}: {} / {}{} as {} matched no contradicting finding; \
                     remove it if the difference is gone",
                    self.at(e),
                    e.policy,
                    e.transport,
                    e.kernel
                        .as_deref()
                        .map(|k| format!(" on {k}"))
                        .unwrap_or_default(),
                    e.verdict
                )
            })
            .collect()
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Evidence;

    fn parse(text: &str) -> Result<KnownFile, KnownError> {
        KnownFile::parse(Path::new("known.toml"), text)
    }

    fn finding(policy: &str, verdict: Verdict, expected: Verdict) -> Finding {
        Finding {
            policy: policy.into(),
            transport: "loopback".into(),
            backend: "vm".into(),
            kernel: Some("6.1.0-13-amd64".into()),
            verdict,
            expected,
            expected_why: String::new(),
            predicted: None,
            evidence: Evidence::default(),
        }
    }

    const FILE: &str = r#"# accepted
[[known]]
kernel = "6.1"
policy = "zc-naive"
transport = "loopback"
verdict = "safe"
reason = "6.1 copies small loopback sends"
"#;

    #[test]
    fn errors_name_the_file_and_line() {
        let err = |t: &str| parse(t).unwrap_err().to_string();
        let e = err("[[known]]\npolicy = \"copy\"\ntransport = \"veth\"\nverdict = \"safe\"\nreason = \"r\"\ncolour = \"red\"\n");
        assert!(e.starts_with("known.toml:6: unknown field `colour`"), "{e}");
        let e = err("[[known]]\npolicy = \"copy\"\n\nverdict = \"fine\"\n");
        assert!(e.starts_with("known.toml:4: unknown variant `fine`"), "{e}");
        let e = err("[[known]]\npolicy = \"copy\"\ntransport = \"veth\"\nverdict = \"safe\"\n");
        assert!(e.starts_with("known.toml:1: missing field `reason`"), "{e}");
        let e = err("\n\n[[known]\n");
        assert!(e.starts_with("known.toml:3: "), "{e}");
        let e = err("\n[[known]]\npolicy = \"copy\"\ntransport = \"veth\"\nverdict = \"error\"\nreason = \"r\"\n");
        assert!(
            e.starts_with("known.toml:2: verdict `error` is never"),
            "{e}"
        );
        let e = KnownFile::load(Path::new("/nonexistent/known.toml")).unwrap_err();
        assert!(
            e.to_string().starts_with("/nonexistent/known.toml: "),
            "{e}"
        );
    }

    #[test]
    fn an_entry_excuses_matching_contradictions_and_stale_ones_are_listed() {
        let text = FILE.to_string()
            + "\n[[known]]\npolicy = \"copy\"\ntransport = \"loopback\"\nverdict = \"corrupt\"\nreason = \"fixed since\"\n";
        let file = parse(&text).unwrap();
        assert_eq!(file.entries.len(), 2);
        assert_eq!(file.entries[0].line, 2);
        assert_eq!(file.entries[1].line, 9);
        let naive = finding("zc-naive", Verdict::Safe, Verdict::Corrupt);
        let agreeing = finding("zc-naive", Verdict::Corrupt, Verdict::Corrupt);
        let known = file.review([
            (Some("6.1"), &naive),
            (Some("5.10"), &naive),
            (Some("6.1"), &agreeing),
        ]);
        assert_eq!(
            known.excused.len(),
            1,
            "only on 6.1, only the contradiction"
        );
        assert_eq!(known.excused[0].kernel.as_deref(), Some("6.1"));
        assert!(known.excuse(Some("6.1"), &naive).is_some());
        assert!(known.excuse(Some("5.10"), &naive).is_none());
        assert_eq!(known.stale.len(), 1);
        assert_eq!(known.stale[0].policy, "copy");
        assert_eq!(
            known.stale_lines(),
            [
                "STALE known difference known.toml:9: copy / loopback as corrupt matched no \
              contradicting finding; remove it if the difference is gone"
            ]
        );
        // The report's JSON reads back.
        let json = serde_json::to_string(&known).unwrap();
        assert_eq!(serde_json::from_str::<Known>(&json).unwrap(), known);
    }
}
