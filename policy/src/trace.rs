//! Traces: one serialisable record of a run, shared by every backend.
//!
//! A model counterexample, a simulation failure and a recorded kernel run are all a
//! [`Trace`]: the steps in order, each saying which actor did what and, where the backend
//! can know it, who holds each buffer page afterwards. `zcsafe explain` renders them.

use crate::geometry::Geometry;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};

/// Bumped whenever the serialised shape changes incompatibly.
pub const TRACE_FORMAT_VERSION: u32 = 1;

/// A run, step by step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// [`TRACE_FORMAT_VERSION`] of the writer.
    pub format: u32,
    /// The catalogue name of the policy that ran, so `replay` can build it again.
    pub policy: String,
    /// Transport class (`local`, `remote`) or concrete transport (`loopback`, `veth`, …).
    pub transport: String,
    /// `model`, `sim`, `kernel`, …
    pub backend: String,
    /// Kernel profile name the run assumed or measured.
    pub profile: String,
    /// The sizes the policy was built for; a replay must use the same ones.
    pub geometry: Geometry,
    /// In the order they happened; the last one shows the verdict.
    pub steps: Vec<Step>,
    /// What the run ended in, so a replay can say whether it ends the same way.
    pub verdict: Verdict,
    /// One sentence: what went wrong (or right) at the end.
    pub summary: String,
}

/// One step of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Who acted, which picks the lane the step is drawn in.
    pub actor: Actor,
    /// What happened, e.g. `vmsplice buf[0..2) → 2`.
    pub action: String,
    /// Why it matters, in plain words (may be empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// Who holds each page after this step (empty when the backend cannot see it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<PageHolders>,
}

/// Who did something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The sending application (the policy).
    App,
    /// The sender's TCP stack: write queue, transmit, ACK processing, timers.
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

/// The holders of one page after a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageHolders {
    /// `buf[3]` for user page 3, `file1[0]` for page 0 of file 1.
    pub page: String,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_round_trips_through_json() {
        let t = Trace {
            format: TRACE_FORMAT_VERSION,
            policy: "copy".into(),
            transport: "local".into(),
            backend: "model".into(),
            profile: "classic".into(),
            geometry: Geometry {
                page: 1,
                chunk: 1,
                buffer: 1,
                pipe: 1,
                stream: 2,
                zc_id_bits: 2,
            },
            steps: vec![Step {
                actor: Actor::App,
                action: "send buf[0..1)".into(),
                note: String::new(),
                holders: vec![PageHolders {
                    page: "buf[0]".into(),
                    content: Some(0),
                    holders: vec![Holder::WriteQueue],
                }],
            }],
            verdict: Verdict::Safe,
            summary: "all bytes arrived".into(),
        };
        let json = serde_json::to_string(&t).unwrap();
        let back: Trace = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
    }
}
