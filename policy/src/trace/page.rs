//! Who acts in a trace, and who holds each page.

use crate::op::FileId;
use serde::{Deserialize, Serialize};

/// Who did something: picks the lane a step is drawn in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The sending application (the policy).
    App,
    /// The sender's TCP stack: write queue, transmit, ACK processing, timers, io_uring.
    Tcp,
    /// The network device or the local delivery path.
    Device,
    /// The wire between the hosts.
    Wire,
    /// The receiving host's TCP.
    Peer,
    /// The receiving application, which checks the bytes.
    Receiver,
}

impl Actor {
    /// The lane label the text and SVG timelines print.
    pub fn name(self) -> &'static str {
        match self {
            Actor::App => "app",
            Actor::Tcp => "tcp",
            Actor::Device => "device",
            Actor::Wire => "wire",
            Actor::Peer => "peer",
            Actor::Receiver => "receiver",
        }
    }
}

/// A page a kernel object can reference: of the user buffer, or of a tmpfs file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Page {
    /// Page `n` of the user buffer.
    Buf(u16),
    /// Page `n` of the policy's tmpfs file `file`, in the page cache.
    File(FileId, u16),
}

impl std::fmt::Display for Page {
    /// `buf[3]`, `file1[0]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Page::Buf(p) => write!(f, "buf[{p}]"),
            Page::File(file, p) => write!(f, "file{file}[{p}]"),
        }
    }
}

/// The holders of one page after a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageHolders {
    /// Which page.
    pub page: Page,
    /// Stream offset whose bytes the page holds now (`None`: not stream bytes).
    pub content: Option<u64>,
    /// Every kernel object that may still read the page: a write while this is
    /// non-empty is what corrupts the stream.
    pub holders: Vec<Holder>,
}

/// A kernel object that references a page and may read it later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    /// A pipe buffer (`vmsplice`, `splice`): read when the pipe is spliced on.
    Pipe,
    /// An skb in the socket's write queue, not yet sent.
    WriteQueue,
    /// A sent skb kept until ACKed, which a retransmission reads again.
    Retransmit,
    /// A frame the NIC has yet to DMA (remote transports).
    DeviceRing,
    /// Bytes between the hosts (the model's wire).
    Wire,
    /// Local delivery: the receiving socket holds the sender's pages until read.
    PeerQueue,
    /// An io_uring SQE the kernel has not consumed yet.
    UringSubmission,
}

impl Holder {
    /// How timelines name the holder, in words a reader of the kernel source knows.
    pub fn name(self) -> &'static str {
        match self {
            Holder::Pipe => "pipe",
            Holder::WriteQueue => "write queue",
            Holder::Retransmit => "retransmit queue",
            Holder::DeviceRing => "device ring",
            Holder::Wire => "in flight",
            Holder::PeerQueue => "peer receive queue",
            Holder::UringSubmission => "io_uring submission",
        }
    }

    /// The narrow name of a timeline cell (`wq`, `rtx`).
    pub fn short(self) -> &'static str {
        match self {
            Holder::Pipe => "pipe",
            Holder::WriteQueue => "wq",
            Holder::Retransmit => "rtx",
            Holder::DeviceRing => "ring",
            Holder::Wire => "wire",
            Holder::PeerQueue => "peer",
            Holder::UringSubmission => "sq",
        }
    }
}
