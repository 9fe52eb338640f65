//! The concrete transports of a kernel run and their transport class.

use crate::error::KernelError;
use serde::{Deserialize, Serialize};
use zcsafe_policy::TransportClass;

/// Default random drop rate of `veth-lossy`, percent of data segments.
pub const DEFAULT_LOSS_PCT: u8 = 5;
/// Default rate limit of `veth-slow`, kbit/s.
pub const DEFAULT_RATE_KBIT: u64 = 50_000;

/// Where the bytes go between the sender and the verifying receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// `127.0.0.1` in the caller's namespace (needs no root).
    Loopback,
    /// Two fresh network namespaces joined by a veth pair.
    Veth,
    /// `veth` where a random share of the sender's data segments never arrives
    /// (nftables `numgen random`, needs the `nft` tool).
    VethLossy { loss_pct: u8 },
    /// `veth` with a token-bucket rate limit on the sender's egress (`tc … tbf`).
    VethSlow { rate_kbit: u64 },
    /// A peer behind a real NIC that someone else set up (the VM guest: two virtio NICs,
    /// one moved into a namespace): the sender stays in the caller's namespace, the
    /// receiver enters `ZCSAFE_PEER_NETNS` and listens on `ZCSAFE_PEER_ADDR`.
    Remote,
}

/// Environment of the `remote` transport: the peer's network namespace file.
pub const PEER_NETNS_ENV: &str = "ZCSAFE_PEER_NETNS";
/// Environment of the `remote` transport: the peer's IPv4 address.
pub const PEER_ADDR_ENV: &str = "ZCSAFE_PEER_ADDR";

impl Transport {
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Loopback => "loopback",
            Transport::Veth => "veth",
            Transport::VethLossy { .. } => "veth-lossy",
            Transport::VethSlow { .. } => "veth-slow",
            Transport::Remote => "remote",
        }
    }

    /// Loopback and veth deliver locally: the receiving socket gets the sender's page
    /// references (`veth_xmit` → `veth_forward_skb`, no copy). `remote` crosses a NIC.
    pub fn class(&self) -> TransportClass {
        match self {
            Transport::Remote => TransportClass::Remote,
            _ => TransportClass::Local,
        }
    }

    /// Whether the transport creates namespaces (and so needs root and `ip`).
    pub fn needs_namespaces(&self) -> bool {
        !matches!(self, Transport::Loopback | Transport::Remote)
    }

    /// Parses `loopback`, `veth`, `veth-lossy`, `veth-slow`; loss and rate fill the
    /// parameters of the last two.
    pub fn parse(name: &str, loss_pct: u8, rate_kbit: u64) -> Result<Transport, KernelError> {
        Ok(match name {
            "loopback" | "lo" => Transport::Loopback,
            "veth" => Transport::Veth,
            "veth-lossy" => Transport::VethLossy { loss_pct },
            "veth-slow" => Transport::VethSlow { rate_kbit },
            "remote" => Transport::Remote,
            other => {
                return Err(KernelError::Usage(format!(
                    "unknown transport {other:?}: use loopback, veth, veth-lossy, veth-slow, remote or all"
                )))
            }
        })
    }

    /// Every transport this host can make by itself, in the order reports list them
    /// (`remote` needs a peer set up from outside).
    pub fn all(loss_pct: u8, rate_kbit: u64) -> Vec<Transport> {
        vec![
            Transport::Loopback,
            Transport::Veth,
            Transport::VethLossy { loss_pct },
            Transport::VethSlow { rate_kbit },
        ]
    }

    /// `veth-lossy(5%)`, `veth-slow(50000kbit)`: the name with its parameter.
    pub fn label(&self) -> String {
        match self {
            Transport::VethLossy { loss_pct } => format!("veth-lossy({loss_pct}%)"),
            Transport::VethSlow { rate_kbit } => format!("veth-slow({rate_kbit}kbit)"),
            t => t.name().to_string(),
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_every_transport_is_local() {
        assert_eq!(
            Transport::parse("veth-lossy", 7, 1).unwrap(),
            Transport::VethLossy { loss_pct: 7 }
        );
        assert!(Transport::parse("netem", 1, 1).is_err());
        assert!(Transport::all(5, 100)
            .iter()
            .all(|t| t.class() == TransportClass::Local));
        assert_eq!(
            Transport::VethSlow { rate_kbit: 9 }.label(),
            "veth-slow(9kbit)"
        );
    }
}
