//! The `tun` transport: the sender's namespace routes the peer's address to a TUN
//! device, and zcsafe's own user-space TCP peer reads the sender's segments from it —
//! the remote class (the device reads the pages, the peer keeps its own copy) on this
//! host, with the peer's decisions scripted ([`zcsafe_policy::PeerScript`]).
//!
//! - [`device`]: the TUN fd, and where it reads the sender's pages.
//! - [`segment`]: IPv4 + TCP parsing and building, checksums verified and computed.
//! - [`connection`]: the TCP state of the peer: handshake, sequence and ACK numbers,
//!   window, reassembly.
//! - [`script`]: the decisions of a [`zcsafe_policy::PeerScript`].
//! - [`peer`]: the loop that joins them, checking the stream with the receiver's checker.

pub mod connection;
pub mod device;
pub mod peer;
pub mod script;
pub mod segment;
pub mod tap;

use std::net::Ipv4Addr;

/// The sender's address on the TUN device.
pub const SENDER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
/// The peer's address: routed to the device (a point-to-point peer address).
pub const PEER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 2);
/// The port the peer answers on (any SYN to [`PEER_ADDR`] reaches it; one per namespace).
pub const PEER_PORT: u16 = 5001;
/// Device MTU: the MSS is MTU − 20 (IPv4) − 20 (TCP) = 4096, one stream page per full
/// segment, since the peer switches timestamps off (they would take 12 bytes of each).
pub const MTU: u32 = 4096 + 40;

pub use connection::PeerStats;
pub use peer::PeerReport;
