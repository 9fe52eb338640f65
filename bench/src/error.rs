//! The bench's one error: it could not run at all (bad options, no network namespace).
//!
//! Why a module: options (size parsing) and the rounds (setup) both return it.

/// Why the bench could not run at all.
#[derive(Debug)]
pub struct BenchError(pub String);

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}
