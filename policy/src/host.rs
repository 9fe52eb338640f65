//! The concrete transports of a kernel run on this host, and their transport class.
//!
//! Here rather than in the kernel backend because a trace names the one it ran over
//! ([`TraceTransport::Host`](crate::TraceTransport::Host)) and every reader of traces
//! (explain, replay) must understand it without linking the kernel backend.

use crate::peer::PeerScript;
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
    /// A TUN device in a fresh namespace, with zcsafe's own user-space TCP peer behind
    /// it: the device reads the pages as a NIC would and the peer keeps its own copy, so
    /// the class is remote; the script decides its window, losses and ACK delays.
    Tun(PeerScript),
}

/// A transport name that is none of [`HostTransport`]'s.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport {0:?}: use loopback, veth, veth-lossy, veth-slow, remote, tun or all")]
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
            HostTransport::Tun(_) => "tun",
        }
    }

    /// Loopback and veth deliver locally: the receiving socket gets the sender's page
    /// references (`veth_xmit` → `veth_forward_skb`, no copy). `remote` crosses a NIC;
    /// `tun` a device that copies the pages out (`tun_net_xmit`, `tun_put_user`).
    pub fn class(&self) -> TransportClass {
        match self {
            HostTransport::Remote | HostTransport::Tun(_) => TransportClass::Remote,
            _ => TransportClass::Local,
        }
    }

    /// The device behind a remote-class transport, as the model names it: the VM
    /// guests' NICs, or the TUN device (`tun_net_xmit` copies zero-copy frags at
    /// transmission).
    pub fn device(&self) -> Option<crate::RemoteDevice> {
        match self {
            HostTransport::Remote => Some(crate::RemoteDevice::Nic),
            HostTransport::Tun(_) => Some(crate::RemoteDevice::Tun),
            _ => None,
        }
    }

    /// Whether the transport creates namespaces (and so needs root and `ip`).
    pub fn needs_namespaces(&self) -> bool {
        !matches!(self, HostTransport::Loopback | HostTransport::Remote)
    }

    /// Parses `loopback`, `veth`, `veth-lossy`, `veth-slow`, `remote`, `tun`; loss and
    /// rate fill the parameters of `veth-lossy` and `veth-slow`; `tun` gets the plain
    /// peer (see [`HostTransport::with_peer`]).
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
            "tun" => HostTransport::Tun(PeerScript::default()),
            other => return Err(UnknownHostTransport(other.to_string())),
        })
    }

    /// `tun` with the peer following `script`; other transports have no peer to script.
    pub fn with_peer(self, script: PeerScript) -> HostTransport {
        match self {
            HostTransport::Tun(_) => HostTransport::Tun(script),
            t => t,
        }
    }

    /// Every transport this host can make by itself, in the order reports list them
    /// (`remote` needs a peer set up from outside; `tun`, the remote class, is asked for
    /// by name).
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
            HostTransport::Tun(p) if !p.is_plain() => format!("tun({})", p.script()),
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

    #[test]
    fn tun_is_remote_and_its_label_shows_the_script() {
        let t = HostTransport::parse("tun", 0, 0).unwrap();
        assert_eq!(t.class(), TransportClass::Remote);
        assert!(t.needs_namespaces());
        assert_eq!(t.label(), "tun");
        let script = PeerScript::parse("drop=3").unwrap();
        assert_eq!(t.with_peer(script).label(), "tun(drop=3)");
        assert_eq!(HostTransport::Veth.with_peer(script), HostTransport::Veth);
        let json = serde_json::to_string(&t.with_peer(script)).unwrap();
        assert_eq!(json, r#"{"tun":{"drop":3}}"#);
        assert_eq!(
            serde_json::from_str::<HostTransport>(&json).unwrap(),
            t.with_peer(script)
        );
    }
}
