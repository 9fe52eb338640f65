//! Transport classes: where the kernel's last page references live.

use serde::{Deserialize, Serialize};

/// The two ways bytes leave the sending socket, which differ in who holds the pages last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportClass {
    /// Loopback, veth, another namespace on the same host: the skb is handed to the
    /// receiving socket with its page references, which live until the receiving
    /// application reads (except `MSG_ZEROCOPY` frags, copied by `skb_orphan_frags_rx`).
    Local,
    /// A real NIC: the device reads the pages (DMA) before TX completion; the peer gets
    /// its own copy. The sender keeps references in the retransmit queue until ACKed.
    Remote,
}

impl TransportClass {
    pub const ALL: [TransportClass; 2] = [TransportClass::Local, TransportClass::Remote];

    pub fn name(self) -> &'static str {
        match self {
            TransportClass::Local => "local",
            TransportClass::Remote => "remote",
        }
    }

    pub fn from_name(name: &str) -> Option<TransportClass> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl std::fmt::Display for TransportClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
