//! One step of a trace: who acted, what happened, and what it means for the pages.
//!
//! Every backend writes the same events — the model's `Event`
//! transitions resolved to the segment they moved, the simulator's (which runs the same
//! kernel model over a simulated link), and the kernel backend's calls and receiver
//! checks — so one renderer draws them all.

use super::page::{Actor, Holder, Page, PageHolders};
use crate::op::{Op, UserData};
use crate::outcome::{Outcome, ZcNotification};
use serde::{Deserialize, Serialize};

/// One step of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Microseconds since the run began: simulated time on the simulator, wall clock on
    /// a kernel; `None` on the model, which orders steps but has no clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_us: Option<u64>,
    /// What happened.
    pub event: Event,
    /// Notifications and CQEs that became visible to the application during this step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completions: Vec<Completion>,
    /// Who holds each page after this step (empty when the backend cannot see it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<PageHolders>,
}

impl Step {
    /// A step at no particular time, with nothing else known.
    pub fn new(event: Event) -> Step {
        Step {
            at_us: None,
            event,
            completions: Vec::new(),
            holders: Vec::new(),
        }
    }

    /// Who acted.
    pub fn actor(&self) -> Actor {
        self.event.actor()
    }

    /// Why the step matters, if it is one of the two moments a reuse bug is made of.
    pub fn flag(&self) -> Option<Flag> {
        self.event.flag()
    }
}

/// The two moments of a buffer-reuse bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// The application wrote a page a kernel object still references.
    ReuseWhileHeld,
    /// The receiver read bytes that are not the stream's.
    WrongBytes,
}

/// What happened in one step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    // ── the application ─────────────────────────────────────────────────────────
    /// The policy's operation and the backend's answer.
    Call {
        /// What the policy asked for.
        op: Op,
        /// What came back.
        answer: Answer,
        /// Pages the call wrote (`fill`, `pwrite`) while a kernel object still held
        /// them: the reuse itself (model and simulator; a kernel cannot see it).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        wrote_held: Vec<HeldPage>,
    },
    /// A long kernel run stopped recording the sender's calls; this many followed.
    Unrecorded {
        /// Calls made but not recorded.
        calls: u64,
    },

    // ── the sender's TCP and io_uring ───────────────────────────────────────────
    /// `tcp_write_xmit` sends the head of the write queue: a clone goes to the device
    /// (or the peer), the original stays for retransmission.
    Transmit {
        /// Stream page (model units) or segment number of the skb.
        seq: u32,
        /// What the clone carries.
        payload: Payload,
        /// The device copied the clone's zero-copy frags as it queued it (a TUN device:
        /// `tun_net_xmit` → `skb_orphan_frags_rx`), so these bytes are final; left out
        /// of traces when false, so older traces read unchanged.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        frags_copied: bool,
    },
    /// The retransmission timer fired (`tcp_retransmit_timer` → `tcp_retransmit_skb`):
    /// a new clone reads the page again.
    Retransmit {
        /// The retransmitted segment.
        seq: u32,
        /// What the new clone carries.
        payload: Payload,
        /// As for [`Event::Transmit`]: the device copied the new clone's zero-copy frags.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        frags_copied: bool,
    },
    /// The peer's ACK reached the sender (`tcp_ack` → `tcp_clean_rtx_queue`).
    Ack {
        /// Cumulative acknowledgement: every segment below this is acknowledged.
        ack: u32,
        /// The receive window the peer advertised, in segments.
        window: u32,
    },
    /// The peer's window is closed: `tcp_send_probe0` asks whether it opened.
    ZeroWindowProbe,
    /// io_uring runs a `SEND_ZC` (`io_send_zc`): the pages are queued and the send CQE
    /// (`F_MORE`) posted. Or, with `plain`, a plain `SEND` (`io_send`): one CQE, and with
    /// `MSG_ZEROCOPY` on an `SO_ZEROCOPY` socket the release goes to the error queue.
    UringExec {
        /// The submission's tag.
        user_data: UserData,
        /// A plain `IORING_OP_SEND` ([`Op::UringSend`](crate::Op::UringSend)), not a
        /// `SEND_ZC`; left out of traces when false, so older traces read unchanged.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        plain: bool,
        /// A `SEND_ZC` with a linked timeout queued only what the socket had room for and
        /// waits (poll) for the rest: no CQE yet (`io_send_zc`, `done_io`). Left out of
        /// traces when false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        part: bool,
    },
    /// The linked timeout of a pending `SEND_ZC` fires (`io_link_timeout_fn`) and cancels
    /// it: the timeout's CQE `-ETIME`, the send's `done_io` (or `-ECANCELED`) with
    /// `F_MORE`; the NOTIF still waits for the pages it queued.
    UringLinkTimeout {
        /// The send's tag.
        user_data: UserData,
        /// The timeout's tag.
        timeout: UserData,
        /// Pages (bytes, on a real kernel) the send had queued.
        queued: u32,
    },
    /// io_uring posts the `-ECANCELED` CQE of a linked timeout its send disarmed by
    /// completing (`io_disarm_next`, from task work).
    UringTimeoutDisarmed {
        /// The timeout's tag.
        timeout: UserData,
    },
    /// A `SEND_ZC` fails before it runs (`io_sendrecv_fail`, `-ECANCELED`); its
    /// notification still follows.
    UringFail {
        /// The submission's tag.
        user_data: UserData,
    },
    /// io_uring posts the NOTIF CQE of a failed `SEND_ZC` (`io_send_zc_cleanup`).
    UringNotifFlush {
        /// The submission's tag.
        user_data: UserData,
    },

    // ── the device and the wire ─────────────────────────────────────────────────
    /// The NIC reads the frame (DMA) and completes it, freeing its clone.
    TxComplete {
        /// The completed segment.
        seq: u32,
        /// What the device read.
        payload: Payload,
    },
    /// The network loses a segment.
    Lose {
        /// The lost segment.
        seq: u32,
    },

    // ── the receiving host ──────────────────────────────────────────────────────
    /// A segment reaches the peer's TCP, which queues it (or drops it when out of
    /// order) and ACKs.
    Deliver {
        /// The arriving segment.
        seq: u32,
        /// What it carries.
        payload: Payload,
        /// It was the next in order, so the peer queued it.
        in_order: bool,
        /// Local delivery copied its `MSG_ZEROCOPY` frags first (`skb_orphan_frags_rx`).
        frags_copied: bool,
        /// A UDP datagram (`udp_rcv`): queued without an ACK.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        datagram: bool,
    },
    /// Receive autotuning grows the peer's buffer (`tcp_rcv_space_adjust`, after a read),
    /// and with it the window, which the peer advertises at once (`tcp_cleanup_rbuf`).
    RcvbufGrow {
        /// The window it advertises now, in segments.
        window: u32,
    },
    /// The receiving application reads one stream page and checks it (model, simulator).
    Read {
        /// The stream page it expects.
        seq: u64,
        /// What it actually read: wrong bytes when the content is not `seq`.
        payload: Payload,
        /// It read from the pipe (`pipe_read`), not from the socket.
        from_pipe: bool,
    },
    /// The kernel backend's receiver accepted the connection.
    Accepted {
        /// The reader's pace, as `--reader` names it.
        reader: String,
        /// Pause before the first read and between reads, in milliseconds.
        pause_ms: u64,
        /// Bytes per read.
        slice: u64,
    },
    /// The kernel backend's receiver read and checked a run of bytes.
    Checked {
        /// Stream offset of the first byte read.
        offset: u64,
        /// Bytes read.
        len: u64,
        /// 8-byte words that were not the stream's.
        corrupt_words: u64,
        /// The first wrong word of the stream, if it lies in this read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first: Option<Mismatch>,
    },
    /// The kernel backend's receiver saw the stream end.
    Ended {
        /// How.
        end: StreamEnd,
        /// Bytes received in all.
        bytes: u64,
        /// Reads it took.
        reads: u64,
        /// Corrupt words in all.
        corrupt_words: u64,
    },

    /// A step of a version-1 trace, converted on read: its words as written, and the
    /// mark they spelled (version 1 had no types for what happened).
    Legacy {
        /// Who acted.
        actor: Actor,
        /// What happened, in version 1's words.
        action: String,
        /// Why it matters, in version 1's words.
        note: String,
        /// The mark version 1 wrote as `WRONG` / `WHILE HELD`.
        flag: Option<Flag>,
    },
}

impl Event {
    /// Who acted.
    pub fn actor(&self) -> Actor {
        match self {
            Event::Call { .. } | Event::Unrecorded { .. } => Actor::App,
            Event::Transmit { .. }
            | Event::Retransmit { .. }
            | Event::Ack { .. }
            | Event::ZeroWindowProbe
            | Event::UringExec { .. }
            | Event::UringFail { .. }
            | Event::UringLinkTimeout { .. }
            | Event::UringTimeoutDisarmed { .. }
            | Event::UringNotifFlush { .. } => Actor::Tcp,
            Event::TxComplete { .. } => Actor::Device,
            Event::Lose { .. } => Actor::Wire,
            Event::Deliver { .. } | Event::RcvbufGrow { .. } => Actor::Peer,
            Event::Read { .. }
            | Event::Accepted { .. }
            | Event::Checked { .. }
            | Event::Ended { .. } => Actor::Receiver,
            Event::Legacy { actor, .. } => *actor,
        }
    }

    /// [`Step::flag`].
    pub fn flag(&self) -> Option<Flag> {
        match self {
            Event::Call { wrote_held, .. } if !wrote_held.is_empty() => Some(Flag::ReuseWhileHeld),
            Event::Read { seq, payload, .. } if payload.content != Some(*seq) => {
                Some(Flag::WrongBytes)
            }
            Event::Checked { corrupt_words, .. } if *corrupt_words > 0 => Some(Flag::WrongBytes),
            Event::Legacy { flag, .. } => *flag,
            _ => None,
        }
    }
}

/// What the backend answered a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The call returned this.
    Returned(Outcome),
    /// The call touched memory the application does not own (model, simulator): a
    /// policy bug, in the backend's words.
    Fault(String),
    /// The call never returned within the run's limits (kernel), and why.
    Stuck(String),
    /// The call failed in a way the policy contract has no outcome for (kernel).
    Failed(String),
    /// Nothing answers: `finish`, `abort`.
    None,
}

/// A page that a write reached while the kernel still held it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldPage {
    /// The page written.
    pub page: Page,
    /// Who still held it.
    pub by: Vec<Holder>,
}

/// What a segment carries: a page still shared with the application, or a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The page the skb references; `None` for bytes the kernel copied (or a page nobody
    /// can write any more).
    pub page: Option<Page>,
    /// The stream page whose bytes it holds at this moment (`None`: zeroes).
    pub content: Option<u64>,
}

/// The first word a receiver found wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    /// Stream offset of the wrong word.
    pub offset: u64,
    /// The stream offset its bytes were written for (`None`: not stream bytes).
    pub meant_for: Option<u64>,
}

/// A completion that became visible to the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Completion {
    /// A zero-copy notification reached the socket's error queue.
    Errqueue(ZcNotification),
    /// io_uring posted a NOTIF CQE: the buffer of this submission is released.
    Notif {
        /// The submission's tag.
        user_data: UserData,
    },
}

/// How a received stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamEnd {
    /// The sender shut down its side (EOF).
    Eof,
    /// Connection reset or another read error.
    Failed,
    /// Nothing arrived for the idle timeout.
    Idle,
    /// No connection arrived.
    NoConnection,
}
