//! The network between sender and receiver: loopback, or two namespaces and a veth pair,
//! optionally with random loss (nftables) or a rate limit (tbf).

use crate::error::KernelError;
use crate::netns::{find_tool, run_cmd, Netns};
use crate::transport::Transport;
use std::net::Ipv4Addr;

/// Sender side address on the veth pair (inside our own namespaces only).
pub const SENDER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Receiver side address on the veth pair.
pub const RECEIVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const SENDER_DEV: &str = "zcs-snd";
const RECEIVER_DEV: &str = "zcs-rcv";

/// A ready network path. Dropping it removes the namespaces (and with them the veth pair,
/// the qdisc and the nftables table).
#[derive(Debug)]
pub struct Network {
    pub transport: Transport,
    /// `None`: the caller's own namespace (loopback).
    pub sender: Option<Netns>,
    pub receiver: Option<Netns>,
    /// The address the sender connects to.
    pub host: Ipv4Addr,
}

/// Why a transport cannot be set up on this machine (counted as a skip, not a failure).
pub fn unavailable(transport: &Transport) -> Option<String> {
    if !transport.needs_namespaces() {
        return None;
    }
    if !crate::sys::is_root() {
        return Some(format!(
            "{} needs root (network namespaces)",
            transport.name()
        ));
    }
    if find_tool("ip").is_none() {
        return Some(format!(
            "{} needs `ip` (Debian package iproute2)",
            transport.name()
        ));
    }
    match transport {
        Transport::VethLossy { .. } if find_tool("nft").is_none() => Some(
            "veth-lossy needs `nft` (Debian package nftables; the kernel has nf_tables)".into(),
        ),
        Transport::VethSlow { .. } if find_tool("tc").is_none() => {
            Some("veth-slow needs `tc` (Debian package iproute2)".into())
        }
        _ => None,
    }
}

impl Network {
    pub fn setup(transport: Transport) -> Result<Network, KernelError> {
        if let Some(why) = unavailable(&transport) {
            return Err(KernelError::Environment {
                transport: transport.name().into(),
                need: "root and tools".into(),
                why,
            });
        }
        if !transport.needs_namespaces() {
            return Ok(Network {
                transport,
                sender: None,
                receiver: None,
                host: Ipv4Addr::LOCALHOST,
            });
        }
        let s = Netns::create("snd")?;
        let r = Netns::create("rcv")?;
        let (sn, rn) = (s.name().to_string(), r.name().to_string());
        run_cmd(
            &[
                "ip",
                "-n",
                &sn,
                "link",
                "add",
                SENDER_DEV,
                "type",
                "veth",
                "peer",
                "name",
                RECEIVER_DEV,
                "netns",
                &rn,
            ],
            None,
        )?;
        let s_cidr = format!("{SENDER_ADDR}/30");
        let r_cidr = format!("{RECEIVER_ADDR}/30");
        run_cmd(
            &["ip", "-n", &sn, "addr", "add", &s_cidr, "dev", SENDER_DEV],
            None,
        )?;
        run_cmd(
            &["ip", "-n", &rn, "addr", "add", &r_cidr, "dev", RECEIVER_DEV],
            None,
        )?;
        run_cmd(&["ip", "-n", &sn, "link", "set", SENDER_DEV, "up"], None)?;
        run_cmd(&["ip", "-n", &rn, "link", "set", RECEIVER_DEV, "up"], None)?;
        match transport {
            Transport::VethSlow { rate_kbit } => {
                if rate_kbit == 0 {
                    return Err(KernelError::Usage("--rate must be positive".into()));
                }
                // tbf on the sender's egress (`tbf_enqueue`); the burst must hold a TSO skb.
                let rate = format!("{rate_kbit}kbit");
                run_cmd(
                    &[
                        "tc", "-n", &sn, "qdisc", "add", "dev", SENDER_DEV, "root", "tbf", "rate",
                        &rate, "burst", "128kb", "latency", "500ms",
                    ],
                    None,
                )?;
            }
            Transport::VethLossy { loss_pct } => {
                if loss_pct >= 100 {
                    return Err(KernelError::Usage("--loss must be below 100".into()));
                }
                // Dropped where the segments arrive, i.e. on the wire: a drop in the
                // sender's own output path is reported back to TCP (NET_XMIT_DROP from
                // `__dev_queue_xmit`) and only delays the segment, which is not loss.
                let script = format!(
                    "table netdev zcsafe {{\n  chain wire {{\n    type filter hook ingress device \"{RECEIVER_DEV}\" priority 0;\n    ip protocol tcp tcp flags & (syn | fin | rst) == 0 numgen random mod 100 < {loss_pct} counter drop\n  }}\n}}\n"
                );
                run_cmd(
                    &["ip", "netns", "exec", &rn, "nft", "-f", "-"],
                    Some(&script),
                )?;
            }
            _ => {}
        }
        // Make sure the path works before anyone measures anything on it.
        Ok(Network {
            transport,
            sender: Some(s),
            receiver: Some(r),
            host: RECEIVER_ADDR,
        })
    }

    pub fn sender_ns(&self) -> Option<&Netns> {
        self.sender.as_ref()
    }

    /// Runs `f` in the sender's namespace (on this thread for loopback).
    pub fn in_sender<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, KernelError> {
        match &self.sender {
            Some(ns) => ns.run(f),
            None => Ok(f()),
        }
    }

    /// Runs `f` in the receiver's namespace.
    pub fn in_receiver<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, KernelError> {
        match &self.receiver {
            Some(ns) => ns.run(f),
            None => Ok(f()),
        }
    }

    /// Packets the lossy transport dropped so far (from the nft counter), if any.
    pub fn dropped_packets(&self) -> Option<u64> {
        let Transport::VethLossy { .. } = self.transport else {
            return None;
        };
        let rn = self.receiver.as_ref()?.name().to_string();
        let out = run_cmd(
            &[
                "ip", "netns", "exec", &rn, "nft", "list", "table", "netdev", "zcsafe",
            ],
            None,
        )
        .ok()?;
        let i = out.find("counter packets ")?;
        out[i + 16..].split_whitespace().next()?.parse().ok()
    }
}
