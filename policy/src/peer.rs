//! The decisions of the `tun` transport's scripted TCP peer: which window it advertises,
//! which data segment it loses, how long it holds its ACKs.
//!
//! Here rather than in the kernel backend because the transport carries them
//! ([`HostTransport::Tun`](crate::HostTransport::Tun)) and a trace names its transport:
//! a rerun of a trace must make the same decisions. The type is `Copy` and small on
//! purpose; a seed is only a way to choose the values ([`PeerScript::parse`] turns
//! `seed=N` into concrete ones), so a label or a trace always shows what was decided.

use serde::{Deserialize, Serialize};

/// Window the peer advertises when the script names none: one 64 KiB chunk, which needs
/// window scaling (shift 1) and keeps the rest of the stream in the sender's write queue.
pub const DEFAULT_PEER_WINDOW: u32 = 64 << 10;
/// Largest window the peer advertises: what it buffers out of order is bounded by it.
pub const MAX_PEER_WINDOW: u32 = 4 << 20;
/// How long `hold-acks` holds each ACK without a value: past the kernel's 200 ms minimum
/// retransmission timeout (`TCP_RTO_MIN`), so the first flight is retransmitted.
pub const DEFAULT_HOLD_MS: u32 = 300;

/// What the peer does besides receiving and acknowledging every byte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerScript {
    /// Receive window advertised, bytes; `None`: [`DEFAULT_PEER_WINDOW`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
    /// The first transmission of the k-th data segment (1-based, counted in the order
    /// new sequence space arrives) is lost: the peer discards it as if the wire had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<u32>,
    /// Every ACK is sent this many milliseconds after the data it acknowledges arrived
    /// (the retransmit queue keeps the pages that long).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_acks_ms: Option<u32>,
}

/// A `--peer` script that is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("peer script {script:?}: {why} (use comma-separated window=BYTES, drop=K, hold-acks[=MS], seed=N)")]
pub struct PeerScriptError {
    /// The whole script as given.
    pub script: String,
    /// What is wrong with it.
    pub why: String,
}

impl PeerScript {
    /// The window advertised, bytes.
    pub fn window(&self) -> u32 {
        self.window.unwrap_or(DEFAULT_PEER_WINDOW)
    }

    /// Whether the script changes nothing: the plain peer.
    pub fn is_plain(&self) -> bool {
        *self == PeerScript::default()
    }

    /// Parses `window=BYTES`, `drop=K`, `hold-acks` or `hold-acks=MS`, and `seed=N`
    /// (comma-separated; an empty script is the plain peer). `seed=N` draws what the
    /// other items leave unset — a segment to lose among the first 32 and a window of
    /// 16, 32 or 64 KiB — from N (splitmix64), the same for the same N.
    pub fn parse(script: &str) -> Result<PeerScript, PeerScriptError> {
        let bad = |why: String| PeerScriptError {
            script: script.to_string(),
            why,
        };
        let mut p = PeerScript::default();
        let mut seed = None;
        for item in script.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            let number = |what: &str| -> Result<u64, PeerScriptError> {
                let v = value.ok_or_else(|| bad(format!("{key} needs a value ({what})")))?;
                v.parse::<u64>()
                    .map_err(|_| bad(format!("{key}={v}: {what} must be a whole number")))
            };
            match key {
                "window" => {
                    let w = number("bytes")?;
                    if !(1..=MAX_PEER_WINDOW as u64).contains(&w) {
                        return Err(bad(format!(
                            "window={w}: must be 1..={MAX_PEER_WINDOW} bytes"
                        )));
                    }
                    p.window = Some(w as u32);
                }
                "drop" => {
                    let k = number("a segment number, 1 for the first")?;
                    if !(1..=u32::MAX as u64).contains(&k) {
                        return Err(bad(format!("drop={k}: segments are numbered from 1")));
                    }
                    p.drop = Some(k as u32);
                }
                "hold-acks" => {
                    let ms = match value {
                        None => DEFAULT_HOLD_MS as u64,
                        Some(_) => number("milliseconds")?,
                    };
                    if !(1..=60_000).contains(&ms) {
                        return Err(bad(format!("hold-acks={ms}: must be 1..=60000 ms")));
                    }
                    p.hold_acks_ms = Some(ms as u32);
                }
                "seed" => seed = Some(number("a seed")?),
                other => return Err(bad(format!("unknown item {other:?}"))),
            }
        }
        if let Some(s) = seed {
            let a = splitmix64(s);
            let b = splitmix64(a);
            p.drop.get_or_insert(1 + (a % 32) as u32);
            p.window
                .get_or_insert([16 << 10, 32 << 10, 64 << 10][(b % 3) as usize]);
        }
        Ok(p)
    }

    /// `window=16384,drop=3,hold-acks=300`: what [`PeerScript::parse`] reads back; empty
    /// for the plain peer.
    pub fn script(&self) -> String {
        let mut items = Vec::new();
        if let Some(w) = self.window {
            items.push(format!("window={w}"));
        }
        if let Some(k) = self.drop {
            items.push(format!("drop={k}"));
        }
        if let Some(ms) = self.hold_acks_ms {
            items.push(format!("hold-acks={ms}"));
        }
        items.join(",")
    }
}

/// One step of splitmix64: a well-mixed value from any seed.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_parse_and_print_back() {
        let p = PeerScript::parse("window=16384, drop=3,hold-acks").unwrap();
        assert_eq!(
            p,
            PeerScript {
                window: Some(16384),
                drop: Some(3),
                hold_acks_ms: Some(DEFAULT_HOLD_MS),
            }
        );
        assert_eq!(PeerScript::parse(&p.script()).unwrap(), p);
        assert!(PeerScript::parse("").unwrap().is_plain());
        assert_eq!(PeerScript::default().window(), DEFAULT_PEER_WINDOW);
    }

    #[test]
    fn a_seed_fills_what_is_unset_and_always_the_same() {
        let a = PeerScript::parse("seed=7").unwrap();
        assert_eq!(a, PeerScript::parse("seed=7").unwrap());
        assert!(a.drop.is_some_and(|k| (1..=32).contains(&k)));
        assert!(a.window.is_some());
        let b = PeerScript::parse("seed=7,drop=1").unwrap();
        assert_eq!(b.drop, Some(1), "an explicit item wins over the seed");
    }

    #[test]
    fn bad_scripts_say_what_and_how() {
        for (s, says) in [
            ("drop=0", "numbered from 1"),
            ("window=0", "1..="),
            ("window=lots", "whole number"),
            ("drop", "needs a value"),
            ("delay=3", "unknown item"),
            ("hold-acks=0", "1..=60000"),
        ] {
            let e = PeerScript::parse(s).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("window=BYTES"), "{s}: {e}");
        }
    }
}
