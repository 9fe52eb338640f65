//! Reading trace files, and saying clearly what is wrong with the ones that are not.
//!
//! People hand `zcsafe explain` whatever JSON they have: a fixture (a bare trace), the
//! output of `zcsafe check --json` (many findings, some with a counterexample), one
//! finding cut out of it, or a kernel run report (`{"trace": …}`). All of them are
//! accepted; anything else is refused with the file name and the reason, never a panic.
//! A trace of format version 1 is converted on read (`v1`), wherever it sits.

mod v1;

use serde_json::Value;
use std::path::{Path, PathBuf};
use thiserror::Error;
use zcsafe_policy::{Results, Trace, RESULTS_FORMAT_VERSION, TRACE_FORMAT_VERSION};

/// Which trace to pick from a file that holds several (a `Results` JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub policy: Option<String>,
    pub transport: Option<String>,
}

/// Why a file could not be read as a trace.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{path}: cannot read the file: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: not JSON ({error})")]
    NotJson {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error(
        "{path}: not a zcsafe trace: expected a trace (with \"format\" and \"steps\"), a \
         `zcsafe … --json` results object (\"results\"), a finding (\"evidence\") or a run \
         report (\"trace\"); {found}"
    )]
    Foreign { path: PathBuf, found: String },
    #[error(
        "{path}: trace format version {found}, but this zcsafe reads versions 1 to {supported}: \
         regenerate the trace with this zcsafe"
    )]
    Version {
        path: PathBuf,
        found: String,
        supported: u32,
    },
    #[error("{path}: a trace, but malformed: {error}")]
    Malformed {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("{path}: a version-1 trace that does not convert: unknown {what}")]
    Upgrade { path: PathBuf, what: String },
    #[error("{path}: no counterexample matches {wanted}; the file has traces for: {available}")]
    NoMatch {
        path: PathBuf,
        wanted: String,
        available: String,
    },
    /// The caller says how to narrow the selection (the CLI: `--policy`, `--transport`).
    #[error("{path}: {count} traces ({available}), and the selection leaves more than one")]
    Ambiguous {
        path: PathBuf,
        count: usize,
        available: String,
    },
}

/// Reads the trace in `path`, picking one with `sel` if the file holds several.
pub fn load(path: &Path, sel: &Selection) -> Result<Trace, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|error| LoadError::Io {
        path: path.into(),
        error,
    })?;
    parse(path, &text, sel)
}

/// [`load`] for text already in memory; `path` only names it in errors.
pub fn parse(path: &Path, text: &str, sel: &Selection) -> Result<Trace, LoadError> {
    let p = || path.to_path_buf();
    let value: Value =
        serde_json::from_str(text).map_err(|error| LoadError::NotJson { path: p(), error })?;
    let Value::Object(obj) = &value else {
        return Err(LoadError::Foreign {
            path: p(),
            found: format!("found {}", kind(&value)),
        });
    };
    if obj.contains_key("results") {
        if let Some(found) = obj
            .get("format")
            .filter(|f| f.as_u64() > Some(RESULTS_FORMAT_VERSION as u64))
        {
            return Err(LoadError::Version {
                path: p(),
                found: format!("{found} (of the results file)"),
                supported: TRACE_FORMAT_VERSION,
            });
        }
        let mut value = value.clone();
        if let Some(Value::Array(findings)) = value.get_mut("results") {
            for f in findings {
                if let Some(t) = f.pointer_mut("/evidence/trace").filter(|t| !t.is_null()) {
                    *t = current(path, t)?;
                }
            }
        }
        let results: Results = serde_json::from_value(value)
            .map_err(|error| LoadError::Malformed { path: p(), error })?;
        return pick(path, &results, sel);
    }
    if let Some(ev) = obj.get("evidence") {
        if let Some(t) = ev.get("trace") {
            return trace(path, t);
        }
        return Err(LoadError::NoMatch {
            path: p(),
            wanted: "this finding".into(),
            available: "none (a finding without a counterexample: its verdict was safe)".into(),
        });
    }
    if obj.contains_key("steps") || obj.contains_key("format") {
        return trace(path, &value);
    }
    if let Some(t) = obj.get("trace") {
        return trace(path, t);
    }
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.truncate(8);
    Err(LoadError::Foreign {
        path: p(),
        found: format!("found an object with keys {}", keys.join(", ")),
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One trace object: check the version first, so an old or future file gets a version
/// error instead of a confusing "missing field".
fn trace(path: &Path, v: &Value) -> Result<Trace, LoadError> {
    serde_json::from_value(current(path, v)?).map_err(|error| LoadError::Malformed {
        path: path.into(),
        error,
    })
}

/// A trace object in the current format: as it is, or converted from version 1.
fn current(path: &Path, v: &Value) -> Result<Value, LoadError> {
    let malformed = |error| LoadError::Malformed {
        path: path.into(),
        error,
    };
    match v.get("format") {
        Some(Value::Number(n)) if n.as_u64() == Some(TRACE_FORMAT_VERSION as u64) => Ok(v.clone()),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => {
            let old: v1::TraceV1 = serde_json::from_value(v.clone()).map_err(malformed)?;
            let new = old.upgrade().map_err(|what| LoadError::Upgrade {
                path: path.into(),
                what,
            })?;
            serde_json::to_value(new).map_err(malformed)
        }
        Some(other) => Err(LoadError::Version {
            path: path.into(),
            found: other.to_string(),
            supported: TRACE_FORMAT_VERSION,
        }),
        None => Err(LoadError::Version {
            path: path.into(),
            found: "missing (no \"format\" field)".into(),
            supported: TRACE_FORMAT_VERSION,
        }),
    }
}

fn pick(path: &Path, results: &Results, sel: &Selection) -> Result<Trace, LoadError> {
    let with_trace: Vec<_> = results
        .results
        .iter()
        .filter_map(|f| f.evidence.trace.as_ref().map(|t| (f, t)))
        .collect();
    let list = |v: &[(&zcsafe_policy::Finding, &Trace)]| {
        if v.is_empty() {
            "none (every verdict was safe)".to_string()
        } else {
            v.iter()
                .map(|(f, _)| format!("{}/{}", f.policy, f.transport))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let matching: Vec<_> = with_trace
        .iter()
        .copied()
        .filter(|(f, _)| {
            sel.policy.as_deref().is_none_or(|p| p == f.policy)
                && sel.transport.as_deref().is_none_or(|t| t == f.transport)
        })
        .collect();
    match matching.as_slice() {
        [(f, t)] => {
            let mut t = (*t).clone();
            if t.policy.is_empty() {
                t.policy = f.policy.clone();
            }
            Ok(t)
        }
        [] => Err(LoadError::NoMatch {
            path: path.into(),
            wanted: match (&sel.policy, &sel.transport) {
                (None, None) => "anything".into(),
                (p, t) => format!(
                    "policy {} on transport {}",
                    p.as_deref().unwrap_or("any"),
                    t.as_deref().unwrap_or("any")
                ),
            },
            available: list(&with_trace),
        }),
        many => Err(LoadError::Ambiguous {
            path: path.into(),
            count: many.len(),
            available: list(many),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("f.json"), text, &Selection::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn foreign_and_broken_files_name_the_file_and_the_problem() {
        assert!(err("{nope").starts_with("f.json: not JSON"));
        assert!(err("[1,2]").contains("found an array"));
        assert!(err(r#"{"name":"x"}"#).contains("keys name"));
        let e = err(r#"{"format": 99, "steps": []}"#);
        assert!(
            e.contains("format version 99") && e.contains("reads versions 1 to 2"),
            "{e}"
        );
        assert!(err(r#"{"steps": []}"#).contains("missing"));
        assert!(err(r#"{"format": 1, "steps": 3}"#).contains("malformed"));
        assert!(err(r#"{"format": 2, "steps": 3}"#).contains("malformed"));
        assert!(err(r#"{"results": []}"#).contains("every verdict was safe"));
        assert!(err(r#"{"format": 2, "results": []}"#).contains("every verdict was safe"));
        assert!(err(r#"{"format": 9, "results": []}"#).contains("version 9 (of the results file)"));
    }
}
