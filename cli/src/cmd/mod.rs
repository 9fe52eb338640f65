//! One module per subcommand.

pub mod bench;
pub mod check;
pub mod explain;
pub mod fixtures;
pub mod matrix;
pub mod policies;
pub mod probe;
pub mod receive;
pub mod replay;
pub mod run;
pub mod sanitize;
pub mod send;
pub mod sim;

use anyhow::{bail, Result};
use zcsafe_policies::Entry;

/// `--policy NAME…` or `--all`: the catalogue policies a command judges.
#[derive(clap::Args)]
pub struct Selection {
    /// Policies to judge (repeat or comma-separate; `zcsafe policies` lists them).
    #[arg(long = "policy", short = 'p', value_name = "NAME")]
    policies: Vec<String>,
    /// Every policy (the default when no --policy is given).
    #[arg(long, conflicts_with = "policies")]
    all: bool,
}

impl Selection {
    /// The selected catalogue entries, in catalogue order for `--all`.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        select_policies(&self.policies)
    }
}

/// Resolves `--policy` names (each may be a comma list) or `--all` to catalogue entries.
/// No names means all. A bug reproducer (`zcsafe fixtures` lists them) may be named too
/// when it runs in the standard scenario; one that needs its [`Tuning`] (a narrow
/// counter, a cancelled request) is refused, because no other backend can apply it.
///
/// [`Tuning`]: zcsafe_policies::bugs::Tuning
pub fn select_policies(names: &[String]) -> Result<Vec<Entry>> {
    let names: Vec<&str> = names
        .iter()
        .flat_map(|n| n.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() || names.contains(&"all") {
        return Ok(zcsafe_policies::catalogue());
    }
    names.iter().map(|&n| resolve(n)).collect()
}

/// One `--policy` name: [`zcsafe_policies::find_runnable`], or why not.
fn resolve(n: &str) -> Result<Entry> {
    if let Some(e) = zcsafe_policies::find_runnable(n) {
        return Ok(e);
    }
    match zcsafe_policies::bugs::find(n) {
        Some((bug, _)) => bail!(
            "{n} reproduces {} only with {}, which only the model applies: \
             `zcsafe fixtures --check` runs it",
            bug.id,
            bug.tuning
        ),
        None => bail!(
            "unknown policy {n:?}; `zcsafe policies` lists them: {}",
            zcsafe_policies::catalogue()
                .iter()
                .map(|e| e.name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
