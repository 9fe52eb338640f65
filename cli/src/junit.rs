//! `--junit FILE`: the verdicts as a JUnit XML report, for another project's CI (the
//! writer is the library's, [`zcsafe_policy::junit`]; this is the flag and the file).

use anyhow::{Context, Result};
use std::path::PathBuf;

/// The `--junit` flag, shared by `check`, `run`, `matrix` and `sanitize`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct JunitArgs {
    /// Also write a JUnit XML report to FILE, for a CI's test view: one `<testcase>` per
    /// finding, named KERNEL/TRANSPORT/POLICY, where KERNEL is the catalogue kernel name
    /// for `matrix` (6.1, host), the kernel's `uname -r` for `run` and `sanitize`, and the
    /// backend `model` for `check`; classname zcsafe.BACKEND. For `sanitize`, every
    /// premature write is a case that fails (a program is expected to have none). A contradiction is a `<failure>`
    /// (with the rerun command, where there is one); unsupported, inconclusive and error
    /// are `<skipped message=REASON>` — not a pass, not a test failure (an error still
    /// makes the exit status 3).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

impl JunitArgs {
    /// Writes the report `xml` makes, if `--junit` asked for one.
    pub fn write(&self, xml: impl FnOnce() -> String) -> Result<()> {
        let Some(path) = &self.junit else {
            return Ok(());
        };
        std::fs::write(path, xml())
            .with_context(|| format!("writing the JUnit report {}", path.display()))
    }
}
