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
    /// Both classes, in the order reports list them (`-t all`).
    pub const ALL: [TransportClass; 2] = [TransportClass::Local, TransportClass::Remote];

    /// The name reports, fixtures and `-t` use (serde writes the same).
    pub fn name(self) -> &'static str {
        match self {
            TransportClass::Local => "local",
            TransportClass::Remote => "remote",
        }
    }
}

/// A transport class name that is neither `local` nor `remote`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport class `{0}`: local or remote")]
pub struct UnknownTransportClass(pub String);

impl std::str::FromStr for TransportClass {
    type Err = UnknownTransportClass;

    /// The names [`TransportClass::name`] prints (and serde writes).
    fn from_str(name: &str) -> Result<TransportClass, UnknownTransportClass> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| UnknownTransportClass(name.to_string()))
    }
}

impl std::fmt::Display for TransportClass {
    /// Pads like `str` does, so `{:<8}` lines up a table.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_pads_like_a_str_so_tables_line_up() {
        assert_eq!(format!("[{:<8}]", TransportClass::Local), "[local   ]");
        assert_eq!(format!("[{:>7}]", TransportClass::Remote), "[ remote]");
    }
}
