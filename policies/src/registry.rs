//! Policies from outside the catalogue, registered once by a binary that embeds zcsafe.
//!
//! A library author's own sender policy lives in their crate, not here. Their five-line
//! binary (`zcsafe_cli::main_with`) registers its entries before any command runs, and from
//! then on every backend — the model checker, the simulator, the kernel executor, the VM
//! matrix (which carries that same binary into its guests), replay and fixtures — finds
//! them by name through [`catalogue`](crate::catalogue) and [`find`](crate::find), exactly as
//! it finds the built-in ones. Registration happens once per process, so a name means the
//! same policy for the whole run.

use crate::Entry;
use std::sync::OnceLock;
use thiserror::Error;

static REGISTERED: OnceLock<Vec<Entry>> = OnceLock::new();
static PROGRAM: OnceLock<String> = OnceLock::new();

/// Names the binary that embeds zcsafe (its file name, from `argv[0]`), once per process:
/// the commands reports print for rerunning a finding start with it, so that an author's
/// own binary prints commands that know the author's policies.
pub fn set_program(name: &str) {
    let _ = PROGRAM.set(name.to_string());
}

/// The binary to name in printed commands: `zcsafe` unless [`set_program`] said otherwise.
pub fn program() -> &'static str {
    PROGRAM.get().map_or("zcsafe", String::as_str)
}

/// Why a set of outside policies cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegisterError {
    /// Names go into reports, JUnit case names and command lines.
    #[error("policy name {0:?} must be non-empty kebab-case (a-z, 0-9, '-')")]
    BadName(&'static str),
    /// A name must mean one policy.
    #[error("policy name {0:?} is already taken (a built-in policy or another registered one); rename yours")]
    Taken(&'static str),
    /// The set is fixed for the process's lifetime.
    #[error("outside policies were already registered in this process")]
    AlreadyRegistered,
}

/// Registers outside policies next to the built-in ones, once per process.
pub fn register(entries: Vec<Entry>) -> Result<(), RegisterError> {
    let mut names: Vec<&'static str> = crate::builtin().iter().map(|e| e.name).collect();
    for e in &entries {
        let kebab = !e.name.is_empty()
            && e.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !kebab {
            return Err(RegisterError::BadName(e.name));
        }
        if names.contains(&e.name) {
            return Err(RegisterError::Taken(e.name));
        }
        names.push(e.name);
    }
    REGISTERED
        .set(entries)
        .map_err(|_| RegisterError::AlreadyRegistered)
}

/// The registered outside policies, in registration order (none unless a binary registered
/// some).
pub fn registered() -> &'static [Entry] {
    REGISTERED.get().map(Vec::as_slice).unwrap_or(&[])
}
