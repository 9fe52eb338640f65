//! The concrete transports of a kernel run on this host, and their transport class.
//!
//! Here rather than in the kernel backend because a trace names the one it ran over
//! ([`TraceTransport::Host`](crate::TraceTransport::Host)) and every reader of traces
//! (explain, replay) must understand it without linking the kernel backend.

use crate::transport::TransportClass;
use serde::{Deserialize, Serialize};

/// Where the bytes go between the sender and the verifying receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostTransport {
    /// `127.0.0.1` in the caller's namespace (needs no root).
    Loopback,
    /// Two fresh network namespaces joined by a veth pair.
    Veth,
    /// `veth` where a random share of the sender's data segments never arrives
    /// (nftables `numgen random`, needs the `nft` tool).
    VethLossy {
        /// Percent of data segments dropped.
        loss_pct: u8,
    },
    /// `veth` with a token-bucket rate limit on the sender's egress (`tc … tbf`).
    VethSlow {
        /// The rate limit, kbit/s.
        rate_kbit: u64,
    },
    /// A peer behind a real NIC that someone else set up (the VM guest: two virtio NICs,
    /// one moved into a namespace): the sender stays in the caller's namespace, the
    /// receiver enters `ZCSAFE_PEER_NETNS` and listens on `ZCSAFE_PEER_ADDR`.
    Remote,
}

/// A transport name that is none of [`HostTransport`]'s.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport {0:?}: use loopback, veth, veth-lossy, veth-slow, remote or all")]
pub struct UnknownHostTransport(pub String);

impl HostTransport {
    /// The name `-t` takes and reports print.
    pub fn name(&self) -> &'static str {
        match self {
            HostTransport::Loopback => "loopback",
            HostTransport::Veth => "veth",
            HostTransport::VethLossy { .. } => "veth-lossy",
            HostTransport::VethSlow { .. } => "veth-slow",
            HostTransport::Remote => "remote",
        }
    }

    /// Loopback and veth deliver locally: the receiving socket gets the sender's page
    /// references (`veth_xmit` → `veth_forward_skb`, no copy). `remote` crosses a NIC.
    pub fn class(&self) -> TransportClass {
        match self {
            HostTransport::Remote => TransportClass::Remote,
            _ => TransportClass::Local,
        }
    }

    /// Whether the transport creates namespaces (and so needs root and `ip`).
    pub fn needs_namespaces(&self) -> bool {
        !matches!(self, HostTransport::Loopback | HostTransport::Remote)
    }

    /// Parses `loopback`, `veth`, `veth-lossy`, `veth-slow`, `remote`; loss and rate fill
    /// the parameters of `veth-lossy` and `veth-slow`.
    pub fn parse(
        name: &str,
        loss_pct: u8,
        rate_kbit: u64,
    ) -> Result<HostTransport, UnknownHostTransport> {
        Ok(match name {
            "loopback" | "lo" => HostTransport::Loopback,
            "veth" => HostTransport::Veth,
            "veth-lossy" => HostTransport::VethLossy { loss_pct },
            "veth-slow" => HostTransport::VethSlow { rate_kbit },
            "remote" => HostTransport::Remote,
            other => return Err(UnknownHostTransport(other.to_string())),
        })
    }

    /// Every transport this host can make by itself, in the order reports list them
    /// (`remote` needs a peer set up from outside).
    pub fn all(loss_pct: u8, rate_kbit: u64) -> Vec<HostTransport> {
        vec![
            HostTransport::Loopback,
            HostTransport::Veth,
            HostTransport::VethLossy { loss_pct },
            HostTransport::VethSlow { rate_kbit },
        ]
    }

    /// `veth-lossy(5%)`, `veth-slow(50000kbit)`: the name with its parameter.
    pub fn label(&self) -> String {
        match self {
            HostTransport::VethLossy { loss_pct } => format!("veth-lossy({loss_pct}%)"),
            HostTransport::VethSlow { rate_kbit } => format!("veth-slow({rate_kbit}kbit)"),
            t => t.name().to_string(),
        }
    }
}

impl std::fmt::Display for HostTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_every_host_transport_is_local() {
        assert_eq!(
            HostTransport::parse("veth-lossy", 7, 1).unwrap(),
            HostTransport::VethLossy { loss_pct: 7 }
        );
        assert!(HostTransport::parse("netem", 1, 1).is_err());
        assert!(HostTransport::all(5, 100)
            .iter()
            .all(|t| t.class() == TransportClass::Local));
        assert_eq!(
            HostTransport::VethSlow { rate_kbit: 9 }.label(),
            "veth-slow(9kbit)"
        );
    }
}
