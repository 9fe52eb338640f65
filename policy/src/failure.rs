//! One failure scenario for two backends: the simulator's faults and the `tun`
//! transport's scripted peer, from the same file — so a failure found in `zcsafe sim`
//! can be tried on the real kernel (`zcsafe run -t tun --scenario FILE`) as it is.
//!
//! ```toml
//! # The 3rd data segment carrying new sequence space is lost once, in both.
//! lose = 3
//! [sim]
//! faults = "latency=1ms,rto=8ms"   # what only the simulator has (a --faults spec)
//! [peer]
//! hold_acks_ms = 300               # what only the tun peer has
//! window = 16384
//! ```
//!
//! What both backends share is named once at the top: `lose = K` is the sim's `drop=K`
//! fault (the K-th segment carrying new sequence space never arrives, so the model's
//! `Lose` fires and the sender retransmits it) and the peer's `drop=K` (it discards the
//! first transmission of that segment from the TUN fd). Counted the same way in both: in
//! the order new sequence space arrives, retransmissions never lost.

use crate::peer::{PeerScript, MAX_PEER_WINDOW};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A failure scenario file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureScenario {
    /// The K-th data segment carrying new sequence space (1-based) is lost once.
    #[serde(default)]
    pub lose: Option<u32>,
    /// What only the simulator does.
    #[serde(default)]
    pub sim: SimFaults,
    /// What only the `tun` peer does.
    #[serde(default)]
    pub peer: PeerOnly,
}

/// The simulator's own faults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimFaults {
    /// A `zcsafe sim --faults` spec (latency, jitter, reorder, …), without `drop`.
    #[serde(default)]
    pub faults: Option<String>,
}

/// The `tun` peer's own decisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerOnly {
    /// Receive window advertised, bytes.
    #[serde(default)]
    pub window: Option<u32>,
    /// Every ACK this many milliseconds after the data that made it due.
    #[serde(default)]
    pub hold_acks_ms: Option<u32>,
}

/// A scenario file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FailureScenarioError {
    /// The file cannot be read.
    #[error("{path}: cannot read: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not TOML of this shape.
    #[error("{path}: {error}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// Where and why, as the TOML reader says.
        error: toml::de::Error,
    },
    /// A value out of range.
    #[error("{path}: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which value, and its range.
        why: String,
    },
}

impl FailureScenario {
    /// Reads a scenario file.
    pub fn load(path: &Path) -> Result<FailureScenario, FailureScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|error| FailureScenarioError::Io {
            path: path.into(),
            error,
        })?;
        FailureScenario::parse(path, &text)
    }

    /// Parses the text of `path` and checks its values.
    pub fn parse(path: &Path, text: &str) -> Result<FailureScenario, FailureScenarioError> {
        let s: FailureScenario =
            toml::from_str(text).map_err(|error| FailureScenarioError::Toml {
                path: path.into(),
                error,
            })?;
        let bad = |why: String| FailureScenarioError::Invalid {
            path: path.into(),
            why,
        };
        if s.lose == Some(0) {
            return Err(bad("lose = 0: segments are numbered from 1".into()));
        }
        if let Some(w) = s.peer.window.filter(|w| !(1..=MAX_PEER_WINDOW).contains(w)) {
            return Err(bad(format!(
                "peer.window = {w}: must be 1..={MAX_PEER_WINDOW} bytes"
            )));
        }
        if let Some(ms) = s.peer.hold_acks_ms.filter(|ms| !(1..=60_000).contains(ms)) {
            return Err(bad(format!("peer.hold_acks_ms = {ms}: must be 1..=60000")));
        }
        if let Some(f) = &s.sim.faults {
            if f.split(',').any(|i| i.trim().starts_with("drop=")) {
                return Err(bad(
                    "sim.faults names drop=: say `lose = K` at the top, for both backends".into(),
                ));
            }
        }
        Ok(s)
    }

    /// The `tun` peer's script.
    pub fn peer_script(&self) -> PeerScript {
        PeerScript {
            window: self.peer.window,
            drop: self.lose,
            hold_acks_ms: self.peer.hold_acks_ms,
        }
    }

    /// The simulator's `--faults` spec: its own faults and the shared loss.
    pub fn sim_faults(&self) -> String {
        let mut items: Vec<String> = self.sim.faults.iter().cloned().collect();
        if let Some(k) = self.lose {
            items.push(format!("drop={k}"));
        }
        items.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_gives_the_sims_faults_and_the_peers_script() {
        let s = FailureScenario::parse(
            Path::new("s.toml"),
            "lose = 3\n[sim]\nfaults = \"latency=1ms\"\n[peer]\nhold_acks_ms = 300\n",
        )
        .unwrap();
        assert_eq!(s.sim_faults(), "latency=1ms,drop=3");
        assert_eq!(s.peer_script().script(), "drop=3,hold-acks=300");
        assert_eq!(
            PeerScript::parse(&s.peer_script().script()).unwrap(),
            s.peer_script()
        );
        let e = |t: &str| {
            FailureScenario::parse(Path::new("s.toml"), t)
                .unwrap_err()
                .to_string()
        };
        assert!(e("lose = 0").contains("numbered from 1"));
        assert!(e("[sim]\nfaults = \"drop=2\"").contains("lose = K"));
        assert!(e("loose = 3").contains("unknown field"));
    }
}
