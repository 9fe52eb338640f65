//! `--known FILE`: contradictions the project accepts (the file format and the matching
//! are the library's, [`zcsafe_policy::known`]; this is the flag and the stale warning).

use anyhow::Result;
use std::path::PathBuf;
use zcsafe_policy::{Known, KnownFile};

/// The `--known` flag, shared by `run` and `matrix`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct KnownArgs {
    /// TOML file of accepted differences, one `[[known]]` table each: kernel (optional;
    /// the catalogue name for `matrix`, `uname -r` for `run`), policy, transport,
    /// verdict (the one observed) and reason. A contradicting finding an entry matches is
    /// reported as a known difference with its reason and does not make the exit status
    /// 1; an entry that matches none is reported as stale.
    #[arg(long, value_name = "FILE")]
    pub known: Option<PathBuf>,
}

impl KnownArgs {
    /// The file, read and checked before anything runs (errors name its file and line).
    pub fn load(&self) -> Result<Option<KnownFile>> {
        Ok(self.known.as_deref().map(KnownFile::load).transpose()?)
    }
}

/// Stale entries on stderr, where they are seen beside `--json` output too.
pub fn warn_stale(known: &Known) {
    for line in known.stale_lines() {
        eprintln!("zcsafe: {line}");
    }
}
