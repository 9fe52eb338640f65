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

/// What sits behind a remote-class socket: where the device reads the pages, and whether
/// its clone keeps the socket's retransmission waiting. A field of the model's scenario
/// (`zcsafe check -t remote --device tun`) and of the traces it writes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RemoteDevice {
    /// A NIC (the QEMU guests' virtio-net and e1000): the device reads the pages by DMA
    /// some time before TX completion, and its clone keeps the socket as owner until
    /// then, so TCP does not retransmit while it waits (`skb_still_in_host_queue`).
    #[default]
    Nic,
    /// A TUN device (`-t tun`): `tun_net_xmit` copies `MSG_ZEROCOPY` / `SEND_ZC` frags
    /// as soon as the segment is queued on the device (`skb_orphan_frags_rx` →
    /// `skb_copy_ubufs`: the reader may never come), so those bytes are taken at
    /// transmission and the completion reports COPIED; other frags (vmsplice'd pages,
    /// the page cache) are read when the peer reads the fd (`tun_put_user`). It orphans
    /// the clone (`skb_orphan`), so a retransmission need not wait for that read.
    Tun,
}

impl RemoteDevice {
    /// Both devices, in the order `--device` lists them.
    pub const ALL: [RemoteDevice; 2] = [RemoteDevice::Nic, RemoteDevice::Tun];

    /// The name `--device`, reports and traces use (serde writes the same).
    pub fn name(self) -> &'static str {
        match self {
            RemoteDevice::Nic => "nic",
            RemoteDevice::Tun => "tun",
        }
    }

    /// The default device (serde leaves it out of traces, so older ones read unchanged).
    pub fn is_nic(&self) -> bool {
        *self == RemoteDevice::Nic
    }

    /// The segment's zero-copy frags are copied when it is queued on the device.
    pub fn copies_zerocopy_at_transmit(self) -> bool {
        self == RemoteDevice::Tun
    }

    /// A clone on the device's ring holds the socket's retransmission back.
    pub fn holds_retransmission(self) -> bool {
        self == RemoteDevice::Nic
    }
}

/// A device name that is neither `nic` nor `tun`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown device `{0}`: nic or tun")]
pub struct UnknownRemoteDevice(pub String);

impl std::str::FromStr for RemoteDevice {
    type Err = UnknownRemoteDevice;

    fn from_str(name: &str) -> Result<RemoteDevice, UnknownRemoteDevice> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| UnknownRemoteDevice(name.to_string()))
    }
}

impl std::fmt::Display for RemoteDevice {
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

    #[test]
    fn devices_parse_their_names_and_nic_is_the_default() {
        for d in RemoteDevice::ALL {
            assert_eq!(d.name().parse::<RemoteDevice>(), Ok(d));
        }
        assert!("e1000".parse::<RemoteDevice>().is_err());
        assert_eq!(RemoteDevice::default(), RemoteDevice::Nic);
    }
}
