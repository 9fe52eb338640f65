//! `zc-completion`: `send(MSG_ZEROCOPY)`, and reuse a buffer slot only after an errqueue
//! notification covers every send made from it.
//!
//! The scheme of `Documentation/networking/msg_zerocopy.rst` and the kselftest
//! `msg_zerocopy.c`, done with the details that bite:
//! - notifications carry ranges `[lo, hi]` that the kernel coalesces
//!   (`skb_zerocopy_notify_extend`) and that may arrive out of order (retransmissions);
//! - the counter is 32 bits and wraps; ranges wrap with it ([`ZcLedger::release`]);
//! - `SO_EE_CODE_ZEROCOPY_COPIED` still releases the pages;
//! - `ENOBUFS` (optmem exhausted, `sock_omalloc` in `msg_zerocopy_alloc`): wait for a
//!   notification if any send is outstanding, otherwise none will ever come — send the
//!   rest with a plain copying `send()` instead of waiting.
//!
//! Slots are pipelined: with `S` slots, `S` chunks can be in flight. The bugs shipped
//! with this scheme are one `Knobs` setting each away from it (`zc-inorder-tracker`,
//! `bugs::grpc_30320`, `bugs::spdk_3600`, `bugs::spdk_3610`, `bugs::qemu_multifd_header`).

use crate::ledger::ZcLedger;
use crate::steps::{feature_failed, unexpected, Cursor, Progress, SendAll};
use crate::{BuildError, Catalogued, Feature};
use zcsafe_policy::{
    Abort, Errno, Expectation, Geometry, Op, Outcome, Policy, Profile, Region, TransportClass,
    ZcNotification,
};

/// Where the reproducers of shipped bugs (and `zc-inorder-tracker`) differ from the
/// documented scheme: each one turns one knob, and everything else is this file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Knobs {
    pub release: ReleaseRule,
    pub on_nobufs: OnNoBufs,
    pub close: Close,
    pub labels: Labels,
    pub pieces: Pieces,
}

impl Knobs {
    /// The scheme of `msg_zerocopy.rst`, done right.
    pub const DOCUMENTED: Knobs = Knobs {
        release: ReleaseRule::Covered,
        on_nobufs: OnNoBufs::WaitIfOutstanding,
        close: Close::AfterLastSend,
        labels: Labels::Kernel,
        pieces: Pieces::Whole,
    };
}

/// How a notification releases outstanding sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ReleaseRule {
    /// Release exactly the counters in `[lo, hi]`, wrap-aware.
    Covered,
    /// Release every counter `≤ hi`, as if completions came in order and never wrapped.
    UpToHi,
}

/// What the sender does when `send(MSG_ZEROCOPY)` fails with `ENOBUFS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum OnNoBufs {
    /// Wait for a notification if a send is outstanding; otherwise none will ever come,
    /// so send the rest with a plain copying `send()`.
    WaitIfOutstanding,
    /// Always wait for a notification (grpc#30320).
    AlwaysWait,
}

/// When the sender is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Close {
    /// Once the last chunk is queued: its pages are the application's to drop.
    AfterLastSend,
    /// Once every send's notification has come (a socket close that waits for its
    /// requests, spdk's `_sock_flush`).
    AfterLastNotification,
}

/// How the sender numbers its sends; the label must be the kernel's counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Labels {
    /// The kernel's own numbering: `sk_zckey`, wrapping at `2^zc_id_bits`.
    Kernel,
    /// An application counter `idx` that skips 0 on wrap-around, labelling each send
    /// `idx - 1` (spdk#3600): the labels skip the kernel's last value.
    IndexSkipsZero,
}

/// How the stream's chunks are grouped into the application's requests, and with which
/// flag and bookkeeping each chunk goes out. Every chunk is still one `send()` loop of one
/// chunk-sized region; what differs is where the region lives, whether the loop passes
/// `MSG_ZEROCOPY`, and whether the sender waits for that send's notification before it
/// writes the region again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Pieces {
    /// Every chunk is a request of its own, in the ring's next slot, sent with
    /// `MSG_ZEROCOPY` and tracked: the documented scheme.
    Whole,
    /// Requests of two chunks over the ring (spdk#3610): the head goes with
    /// `MSG_ZEROCOPY`, the tail falls under the zero-copy size threshold and goes with a
    /// plain copying `send()`. `head_tracked: false` is the shipped bug: the request's
    /// zero-copy flag is that of its last `sendmsg`, so a request whose tail was copied
    /// completes at once and nobody waits for the head's notification. A stream of an
    /// odd number of chunks ends with a request of one (zero-copy, tracked) chunk.
    SplitTailCopied { head_tracked: bool },
    /// QEMU multifd packets: a header chunk, always in slot 0 (the channel's one packet
    /// buffer, rewritten for every packet), then a page chunk over the other slots. The
    /// pages are sent with `MSG_ZEROCOPY` and tracked; the header per [`HeaderSend`]. A
    /// stream of an odd number of chunks ends with a header-only packet (multifd's sync
    /// packet has no pages).
    HeaderAndPages { header: HeaderSend },
}

/// How a multifd sender sends the packet header ([`Pieces::HeaderAndPages`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum HeaderSend {
    /// In the same zero-copy write as the pages, and rewritten for the next packet
    /// without waiting for its notification (the 2022 `zero-copy-send` series as first
    /// merged).
    ZerocopyUntracked,
    /// With a plain copying write before the pages (the fix): the kernel has its own
    /// copy once the call returns.
    Copied,
}

/// One chunk's send: where its bytes live and how they go out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Piece {
    slot: u16,
    zerocopy: bool,
    /// The sender records the send's counter against the slot and waits for its
    /// notification before writing the slot again.
    tracked: bool,
}

impl Pieces {
    /// The smallest buffer, in slots, the grouping works with.
    fn min_slots(self) -> u64 {
        match self {
            Pieces::Whole | Pieces::SplitTailCopied { .. } => 1,
            Pieces::HeaderAndPages { .. } => 2,
        }
    }

    /// How chunk `chunk` of the stream is sent with `slots` buffer slots.
    fn piece(self, chunk: u64, slots: u64) -> Piece {
        let ring = (chunk % slots) as u16;
        let is_head = chunk % 2 == 0;
        match self {
            Pieces::Whole => Piece {
                slot: ring,
                zerocopy: true,
                tracked: true,
            },
            Pieces::SplitTailCopied { head_tracked } => Piece {
                slot: ring,
                zerocopy: is_head,
                tracked: !is_head || head_tracked,
            },
            Pieces::HeaderAndPages { header } if is_head => Piece {
                slot: 0,
                zerocopy: header == HeaderSend::ZerocopyUntracked,
                tracked: false,
            },
            Pieces::HeaderAndPages { .. } => Piece {
                slot: 1 + ((chunk / 2) % (slots - 1)) as u16,
                zerocopy: true,
                tracked: true,
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ZcCompletion {
    g: Geometry,
    knobs: Knobs,
    at: Cursor,
    ledger: ZcLedger,
    phase: Phase,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    Enable,
    /// Read notifications until nothing pins the current slot.
    Reclaim,
    Fill,
    Send(SendAll),
    /// `ENOBUFS`: wait for one notification, then send the rest.
    AwaitAny(SendAll),
    /// Every chunk is queued; read notifications until none is outstanding.
    Flush,
    Done,
    Failed(Abort),
}

impl ZcCompletion {
    pub(crate) fn with(g: &Geometry, knobs: Knobs) -> Self {
        ZcCompletion {
            g: *g,
            knobs,
            at: Cursor::default(),
            ledger: ZcLedger::default(),
            phase: Phase::Enable,
        }
    }

    /// [`with`](Self::with), for knobs whose grouping needs more than one slot
    /// ([`Pieces::HeaderAndPages`] keeps slot 0 for the header).
    pub(crate) fn build(
        name: &'static str,
        g: &Geometry,
        knobs: Knobs,
    ) -> Result<Self, BuildError> {
        let need = knobs.pieces.min_slots();
        if g.slots() < need {
            return Err(BuildError::Needs {
                policy: name,
                need: format!("a buffer of at least {need} chunks (got {})", g.slots()),
            });
        }
        Ok(Self::with(g, knobs))
    }

    /// How the current chunk goes out.
    fn piece(&self) -> Piece {
        self.knobs.pieces.piece(self.at.chunk, self.g.slots())
    }

    /// The buffer region of the current chunk.
    fn region(&self) -> Region {
        let slot = u64::from(self.piece().slot);
        Region::new(slot * self.g.chunk, self.g.chunk)
    }

    fn release(&mut self, n: &ZcNotification) {
        match self.knobs.release {
            ReleaseRule::Covered => self.ledger.release(&self.g, n),
            ReleaseRule::UpToHi => self.ledger.release_where(|id| id <= n.hi),
        }
    }

    fn record_send(&mut self) {
        let piece = self.piece();
        if !piece.tracked {
            // The kernel still takes a counter for this send; the sender just never
            // waits for it (its notification releases nothing the sender looks at).
            self.ledger.skip_send(&self.g);
            return;
        }
        let slot = piece.slot;
        match self.knobs.labels {
            Labels::Kernel => self.ledger.record_send(&self.g, slot),
            Labels::IndexSkipsZero => self.ledger.record_send_skipping_last(&self.g, slot),
        };
    }

    fn begin_chunk(&self) -> Phase {
        if self.ledger.pins(self.piece().slot) {
            Phase::Reclaim
        } else {
            Phase::Fill
        }
    }

    fn sending(&mut self, mut send: SendAll, outcome: &Outcome, op: &Op) -> Phase {
        let calls = send.calls;
        let progress = send.handle(outcome);
        if send.zerocopy && send.calls > calls {
            self.record_send();
        }
        match (progress, self.knobs.on_nobufs) {
            (Progress::Pending, _) => Phase::Send(send),
            (Progress::Complete, _) => self.next_chunk(),
            (Progress::Failed(Errno::NoBufs), OnNoBufs::AlwaysWait) => Phase::AwaitAny(send),
            (Progress::Failed(Errno::NoBufs), _) if !self.ledger.is_empty() => {
                Phase::AwaitAny(send)
            }
            // Nothing outstanding: no notification will ever free optmem for us.
            (Progress::Failed(Errno::NoBufs), _) => Phase::Send(SendAll::new(send.left, false)),
            (Progress::Failed(_) | Progress::Unexpected, _) => {
                Phase::Failed(unexpected(op, outcome))
            }
        }
    }

    fn next_chunk(&mut self) -> Phase {
        if self.at.advance(&self.g) {
            self.begin_chunk()
        } else {
            self.closing()
        }
    }

    fn closing(&self) -> Phase {
        match self.knobs.close {
            Close::AfterLastNotification if !self.ledger.is_empty() => Phase::Flush,
            _ => Phase::Done,
        }
    }
}

impl Catalogued for ZcCompletion {
    const NAME: &'static str = "zc-completion";
    const SUMMARY: &'static str =
        "MSG_ZEROCOPY; reuse only after an errqueue notification covers the send";
    const ORIGIN: &'static str =
        "Documentation/networking/msg_zerocopy.rst; kselftest msg_zerocopy.c";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];
    const TWIN: Option<&'static str> = Some(crate::zc_naive::ZcNaive::NAME);

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self::with(g, Knobs::DOCUMENTED))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe(
            "the notification comes only when the last skb referencing the pages is freed",
        )
    }
}

impl Policy for ZcCompletion {
    fn poll_op(&self) -> Op {
        match &self.phase {
            Phase::Enable => Op::EnableZerocopy,
            Phase::Reclaim | Phase::AwaitAny(_) | Phase::Flush => Op::ReadErrqueue { block: true },
            Phase::Fill => Op::Fill {
                buf: self.region(),
                stream: self.at.offset(&self.g),
            },
            Phase::Send(s) => s.op(),
            Phase::Done => Op::Finish,
            Phase::Failed(a) => Op::Abort(a.clone()),
        }
    }

    fn handle(&mut self, outcome: Outcome) {
        let op = self.poll_op();
        self.phase = match (std::mem::replace(&mut self.phase, Phase::Done), &outcome) {
            (Phase::Enable, Outcome::Ok) => Phase::Fill,
            (Phase::Enable, Outcome::Err(e)) => Phase::Failed(feature_failed("SO_ZEROCOPY", *e)),
            (Phase::Reclaim, Outcome::Zc(n)) => {
                if let Some(n) = n {
                    self.release(n);
                }
                self.begin_chunk()
            }
            (Phase::AwaitAny(send), Outcome::Zc(n)) => {
                if let Some(n) = n {
                    self.release(n);
                }
                Phase::Send(send)
            }
            (Phase::Flush, Outcome::Zc(n)) => {
                if let Some(n) = n {
                    self.release(n);
                }
                self.closing()
            }
            (Phase::Fill, Outcome::Ok) => {
                Phase::Send(SendAll::new(self.region(), self.piece().zerocopy))
            }
            (Phase::Send(send), _) => self.sending(send, &outcome, &op),
            (Phase::Done, _) => Phase::Done,
            (Phase::Failed(a), _) => Phase::Failed(a),
            _ => Phase::Failed(unexpected(&op, &outcome)),
        };
    }
}
