//! Errors of the kernel backend. A run that reaches a verdict is not an error: these are
//! for runs that could not be set up (no root, no `ip`, bad options).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum KernelError {
    #[error("invalid geometry: {0}")]
    Geometry(#[from] zcsafe_policy::GeometryError),
    #[error("{what} failed: {source}")]
    Sys {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("transport {transport} needs {need}: {why}")]
    Environment {
        transport: String,
        need: String,
        why: String,
    },
    #[error("invalid option: {0}")]
    Usage(String),
    #[error("timed out after {secs:.1} s waiting for {what}")]
    Timeout { what: String, secs: f64 },
}

impl KernelError {
    /// The last OS error, labelled with the call that failed.
    pub(crate) fn last(what: impl Into<String>) -> Self {
        KernelError::Sys {
            what: what.into(),
            source: std::io::Error::last_os_error(),
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        KernelError::Sys {
            what: what.into(),
            source,
        }
    }
}
