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
pub mod sim;

use anyhow::{bail, Result};
use zcsafe_policies::Entry;

/// Resolves `--policy` names (each may be a comma list) or `--all` to catalogue entries.
/// No names means all.
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
    names
        .iter()
        .map(|n| match zcsafe_policies::find(n) {
            Some(e) => Ok(e),
            None => bail!(
                "unknown policy {n:?}; `zcsafe policies` lists them: {}",
                zcsafe_policies::catalogue()
                    .iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
        .collect()
}
