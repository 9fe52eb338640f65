//! The network between sender and receiver: loopback, or two namespaces and a veth pair,
//! optionally with random loss (nftables) or a rate limit (tbf), or one namespace whose
//! TUN device leads to zcsafe's own TCP peer ([`crate::tun`]).

use crate::error::KernelError;
use crate::netns::{find_tool, run_cmd, Netns};
use crate::transport::Transport;
use crate::tun::device::{TunDevice, DEVICE as TUN_DEVICE};
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
    /// A receiver namespace we do not own (`remote`).
    pub foreign_receiver: Option<std::path::PathBuf>,
    /// The address the sender connects to.
    pub host: Ipv4Addr,
    /// The `tun` transport's device, for its peer (declared last: dropped after the
    /// namespace is unmounted, which is harmless either way — the device dies with the fd).
    pub tun: Option<TunDevice>,
}

/// Why a transport cannot be set up on this machine (counted as a skip, not a failure).
pub fn unavailable(transport: &Transport) -> Option<String> {
    if let Transport::Remote = transport {
        return remote_peer().err();
    }
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
        Transport::Tun(_) if !std::path::Path::new("/dev/net/tun").exists() => {
            Some("tun needs /dev/net/tun (the kernel's CONFIG_TUN; `modprobe tun`)".into())
        }
        _ => None,
    }
}

/// The peer of the `remote` transport, from the environment.
fn remote_peer() -> Result<(std::path::PathBuf, Ipv4Addr), String> {
    use crate::transport::{PEER_ADDR_ENV, PEER_NETNS_ENV};
    let need = || {
        format!(
            "remote needs {PEER_NETNS_ENV} (a namespace file) and {PEER_ADDR_ENV} (its IPv4 address): \
             a peer behind a real NIC, as the VM guest sets up"
        )
    };
    let ns = std::env::var_os(PEER_NETNS_ENV).ok_or_else(need)?;
    let addr = std::env::var(PEER_ADDR_ENV).map_err(|_| need())?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("{PEER_ADDR_ENV}={addr} is not an IPv4 address"))?;
    let ns = std::path::PathBuf::from(ns);
    if !ns.exists() {
        return Err(format!("{PEER_NETNS_ENV}={} does not exist", ns.display()));
    }
    Ok((ns, addr))
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
        if let Transport::Remote = transport {
            let (ns, host) = remote_peer().map_err(|why| KernelError::Environment {
                transport: "remote".into(),
                need: "a peer namespace".into(),
                why,
            })?;
            return Ok(Network {
                transport,
                sender: None,
                receiver: None,
                foreign_receiver: Some(ns),
                host,
                tun: None,
            });
        }
        if !transport.needs_namespaces() {
            return Ok(Network {
                transport,
                sender: None,
                receiver: None,
                foreign_receiver: None,
                host: Ipv4Addr::LOCALHOST,
                tun: None,
            });
        }
        if let Transport::Tun(_) = transport {
            return Network::tun(transport);
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
                    return Err(KernelError::Usage(
                        "veth-slow's rate limit must be positive (kbit/s)".into(),
                    ));
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
                    return Err(KernelError::Usage(format!(
                        "veth-lossy's drop rate must be below 100%, not {loss_pct}%"
                    )));
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
        Ok(Network {
            transport,
            sender: Some(s),
            receiver: Some(r),
            foreign_receiver: None,
            host: RECEIVER_ADDR,
            tun: None,
        })
    }

    /// One namespace with the TUN device; the sender connects to the peer's address,
    /// which the point-to-point route sends into the device.
    fn tun(transport: Transport) -> Result<Network, KernelError> {
        use crate::tun::{MTU, PEER_ADDR, SENDER_ADDR};
        let s = Netns::create("tun")?;
        let dev = s.run(TunDevice::open)??;
        let sn = s.name().to_string();
        let (local, peer, mtu) = (
            SENDER_ADDR.to_string(),
            PEER_ADDR.to_string(),
            MTU.to_string(),
        );
        run_cmd(
            &[
                "ip", "-n", &sn, "addr", "add", &local, "peer", &peer, "dev", TUN_DEVICE,
            ],
            None,
        )?;
        run_cmd(
            &[
                "ip", "-n", &sn, "link", "set", TUN_DEVICE, "mtu", &mtu, "up",
            ],
            None,
        )?;
        Ok(Network {
            transport,
            sender: Some(s),
            receiver: None,
            foreign_receiver: None,
            host: PEER_ADDR,
            tun: Some(dev),
        })
    }

    /// Lets a whole UDP chunk through the veth pair as one unfragmented datagram: the
    /// pair's MTU to its maximum (`veth_setup`: `ETH_MAX_MTU`). Without it a datagram over
    /// 1500 bytes is fragmented, `__ip_append_data` does not choose `CHECKSUM_PARTIAL`
    /// (`length + fragheaderlen <= mtu`) and copies the data in `sendmsg`: no zero copy
    /// at all. The TUN device likewise (its [`crate::tun::MTU`] is sized for TCP's MSS).
    /// Nothing to do on loopback (MTU 65536) or a namespace we do not own.
    pub fn carry_datagrams(&self) -> Result<(), KernelError> {
        let devices = match (&self.sender, &self.receiver) {
            (Some(s), Some(r)) => vec![(s, SENDER_DEV), (r, RECEIVER_DEV)],
            (Some(s), None) if self.tun.is_some() => vec![(s, TUN_DEVICE)],
            _ => return Ok(()),
        };
        for (ns, dev) in devices {
            run_cmd(
                &["ip", "-n", ns.name(), "link", "set", dev, "mtu", "65535"],
                None,
            )?;
        }
        Ok(())
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
        match (&self.receiver, &self.foreign_receiver) {
            (Some(ns), _) => ns.run(f),
            (None, Some(path)) => crate::netns::run_in(path, f),
            (None, None) => Ok(f()),
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
