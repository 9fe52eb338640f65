//! The concrete transports of a kernel run: the type lives in the policy crate
//! ([`zcsafe_policy::HostTransport`]), because traces name it; the defaults of its
//! parameters are the kernel backend's.

use crate::error::KernelError;
pub use zcsafe_policy::HostTransport as Transport;
use zcsafe_policy::UnknownHostTransport;

/// Default random drop rate of `veth-lossy`, percent of data segments.
pub const DEFAULT_LOSS_PCT: u8 = 5;
/// Default rate limit of `veth-slow`, kbit/s.
pub const DEFAULT_RATE_KBIT: u64 = 50_000;

impl From<UnknownHostTransport> for KernelError {
    fn from(e: UnknownHostTransport) -> KernelError {
        KernelError::Usage(e.to_string())
    }
}

/// Environment of the `remote` transport: the peer's network namespace file.
pub const PEER_NETNS_ENV: &str = "ZCSAFE_PEER_NETNS";
/// Environment of the `remote` transport: the peer's IPv4 address.
pub const PEER_ADDR_ENV: &str = "ZCSAFE_PEER_ADDR";
