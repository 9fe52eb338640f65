//! `uring-zc-notif`: io_uring `SEND_ZC`, reuse a buffer slot only after its notification
//! CQE (`IORING_CQE_F_NOTIF`).
//!
//! The documented contract of `io_uring_prep_send_zc(3)`. Pipelined over the buffer's
//! slots: a `SEND_ZC` holds its slot until its send CQE, and a send CQE with
//! `IORING_CQE_F_MORE` hands the hold on to the notification it promises (without
//! `F_MORE`, a failed send, none follows and the slot is free at once). To keep the
//! stream in order it submits the next send only after the previous one's send CQE (two
//! unlinked `SEND_ZC`s in flight may run in either order, tokio-rs/io-uring#249).
//!
//! The bugs shipped with this scheme are a `Knobs` setting away from it
//! (`bugs::netty_15599`, `bugs::tokio_io_uring_249`, `bugs::io_uring_354`), and so is
//! `uring-zc-report-usage`, which acts on the notification's usage report (`Usage`).

use crate::steps::{feature_failed, unexpected, Cursor, Progress, SendAll};
use crate::uring::{self, Holds, NotSent};
use crate::{BuildError, Catalogued, Feature};
use zcsafe_policy::{
    Abort, Cqe, Expectation, Geometry, Op, Outcome, Policy, Profile, TransportClass, UringZcOpcode,
    UserData,
};

/// Where the reproducers of shipped bugs differ from the documented scheme: each one
/// sets a few knobs, and everything else is this file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Knobs {
    pub tag: Tag,
    pub submit: Submit,
    pub promise: Promise,
    pub on_failure: OnFailure,
    pub close: Close,
    pub reading: Reading,
    pub usage: Usage,
    /// `SEND_ZC`, or `SENDMSG_ZC` with the chunk as an iovec (`uring-sendmsg-zc`).
    pub opcode: UringZcOpcode,
}

impl Knobs {
    /// `io_uring_prep_send_zc(3)`, done right.
    pub const DOCUMENTED: Knobs = Knobs {
        tag: Tag::Chunk,
        submit: Submit::AfterSendCqe,
        promise: Promise::EveryMore,
        on_failure: OnFailure::Abort,
        close: Close::AfterSendCqes,
        reading: Reading::FlagsFirst,
        usage: Usage::Ignore,
        opcode: UringZcOpcode::Send,
    };
}

/// What a `SEND_ZC`'s `user_data` names; both of its CQEs carry it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Tag {
    /// The chunk's index in the stream.
    Chunk,
    /// The buffer slot, as a pooled-buffer id would.
    Slot,
}

/// When the next `SEND_ZC` goes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Submit {
    /// After the previous one's send CQE, so that the stream stays in order.
    AfterSendCqe,
    /// As soon as its slot is free, earlier ones still in flight (tokio-rs/io-uring#249).
    AtOnce,
}

/// Which send CQEs the sender takes to promise a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Promise {
    /// Every one with `IORING_CQE_F_MORE`, failed or not: the kernel's rule
    /// (`io_sendrecv_fail` sets it on a failed send that owns a notification).
    EveryMore,
    /// Only a successful send's: a failed send is assumed to post none (netty#15599).
    SentOnly,
}

/// What the sender does after a failed send CQE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum OnFailure {
    /// Give up: `unsupported` when the kernel refused `SEND_ZC` itself.
    Abort,
    /// Send the chunk again, if it is the one whose send CQE the sender awaits; a
    /// sender that went on (`Submit::AtOnce`) gives up.
    Retry,
}

/// When the sender is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Close {
    /// Once every send CQE has come, so that no failed send goes unnoticed.
    AfterSendCqes,
    /// Once the last chunk is submitted, without reaping its send CQE.
    AfterLastSubmit,
}

/// How the sender reads a CQE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Reading {
    /// `IORING_CQE_F_NOTIF` first: a notification's `res` is a usage report, not a
    /// result (io_uring_enter(2), `IORING_SEND_ZC_REPORT_USAGE`).
    FlagsFirst,
    /// A negative `cqe->res` first, as an errno, before the flags are looked at: a
    /// notification with `IORING_NOTIF_USAGE_ZC_COPIED` (`res = -2147483648`) is taken
    /// for a failed send, logged, and frees nothing (tokio-rs/io-uring#354).
    ResFirst,
}

/// What the sender does with a notification's usage report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Usage {
    /// Nothing: the notification frees its slot, copied or not.
    Ignore,
    /// After the first notification that says `IORING_NOTIF_USAGE_ZC_COPIED`, send the
    /// remaining chunks with plain copying `send()`: zero copy buys nothing on this
    /// path (what the flag was added for, io_uring_enter(2)).
    FallBackToCopy,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UringZcNotif {
    g: Geometry,
    knobs: Knobs,
    at: Cursor,
    holds: Holds,
    /// A notification said COPIED and the sender acts on it (`Usage::FallBackToCopy`).
    copying: bool,
    phase: Phase,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    /// Reap CQEs until the current slot is free (or, every chunk submitted, until the
    /// sender may finish).
    Reclaim,
    Fill,
    Submit,
    /// Plain `send()` of the current chunk (`Usage::FallBackToCopy`), until all queued.
    Copy(SendAll),
    /// Reap CQEs until the current chunk's send CQE.
    AwaitSend,
    Done,
    Failed(Abort),
}

impl UringZcNotif {
    pub(crate) fn with(g: &Geometry, knobs: Knobs) -> Self {
        UringZcNotif {
            g: *g,
            knobs,
            at: Cursor::default(),
            holds: Holds::new(g),
            copying: false,
            phase: Phase::Fill,
        }
    }

    fn slot(&self) -> usize {
        self.at.slot_index(&self.g) as usize
    }

    fn tag(&self) -> UserData {
        match self.knobs.tag {
            Tag::Chunk => self.at.chunk as UserData,
            Tag::Slot => self.slot() as UserData,
        }
    }

    /// Whether the sender waits for the send CQE of the chunk it just submitted: before
    /// the next submission, or before it finishes.
    fn awaits_send(&self) -> bool {
        let last = self.at.chunk + 1 == self.g.chunks();
        self.knobs.submit == Submit::AfterSendCqe
            && !(last && self.knobs.close == Close::AfterLastSubmit)
    }

    fn advance(&mut self) -> Phase {
        self.at.advance(&self.g);
        self.ready()
    }

    /// Fill the current slot once it is free; finish once every chunk is submitted (and,
    /// if the sender waits for them, every send CQE has come).
    fn ready(&self) -> Phase {
        if self.at.chunk < self.g.chunks() {
            if self.holds.pins(self.slot()) {
                Phase::Reclaim
            } else {
                Phase::Fill
            }
        } else if self.knobs.close == Close::AfterSendCqes && self.holds.sending() {
            Phase::Reclaim
        } else {
            Phase::Done
        }
    }

    /// Books a send CQE: the send no longer holds its slot; the notification it
    /// promises does.
    fn send_cqe(&mut self, c: &Cqe) -> Result<(), NotSent> {
        let result = uring::sent(c, &self.g);
        let promised = c.more && (result.is_ok() || self.knobs.promise == Promise::EveryMore);
        let slot = self.holds.slot_of(c.user_data);
        self.holds.completed(slot, promised);
        result
    }

    /// Books a notification: it frees its slot; under `Usage::FallBackToCopy` a COPIED
    /// one turns the sender to plain `send()`.
    fn notified(&mut self, c: &Cqe) {
        self.holds.notified(self.holds.slot_of(c.user_data));
        if c.copied && self.knobs.usage == Usage::FallBackToCopy {
            self.copying = true;
        }
    }

    /// Whether the sender takes `c` for a failed request before looking at its flags
    /// (`Reading::ResFirst`).
    fn reads_as_errno(&self, c: &Cqe) -> bool {
        self.knobs.reading == Reading::ResFirst && c.raw_res() < 0
    }
}

impl Catalogued for UringZcNotif {
    const NAME: &'static str = "uring-zc-notif";
    const SUMMARY: &'static str = "io_uring SEND_ZC, buffer reused after the NOTIF CQE";
    const ORIGIN: &'static str = "io_uring_prep_send_zc(3)";
    const NEEDS: &'static [Feature] = &[Feature::UringSendZc];
    const TWIN: Option<&'static str> = Some(crate::uring_zc_naive::UringZcNaive::NAME);

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self::with(g, Knobs::DOCUMENTED))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe("the NOTIF CQE is posted when the last page reference is dropped")
    }
}

impl Policy for UringZcNotif {
    fn poll_op(&self) -> Op {
        match &self.phase {
            Phase::Reclaim | Phase::AwaitSend => Op::UringWaitCqe,
            Phase::Fill => self.at.fill(&self.g),
            Phase::Submit if self.copying => Op::Send {
                buf: self.at.slot(&self.g),
                zerocopy: false,
            },
            Phase::Copy(s) => s.op(),
            Phase::Submit => Op::UringSendZc {
                buf: self.at.slot(&self.g),
                user_data: self.tag(),
                opcode: self.knobs.opcode,
                link_timeout: None,
            },
            Phase::Done => Op::Finish,
            Phase::Failed(a) => Op::Abort(a.clone()),
        }
    }

    fn handle(&mut self, outcome: Outcome) {
        let op = self.poll_op();
        self.phase = match (std::mem::replace(&mut self.phase, Phase::Done), &outcome) {
            (Phase::Fill, Outcome::Ok) => Phase::Submit,
            // The copying path: `send()` copies, so the slot is free when it returns.
            (Phase::Submit, _) if self.copying => {
                let mut s = SendAll::new(self.at.slot(&self.g), false);
                self.copy_step(&mut s, &op, &outcome)
            }
            (Phase::Copy(mut s), _) => self.copy_step(&mut s, &op, &outcome),
            (Phase::Submit, Outcome::Ok) => {
                self.holds.submitted(self.slot());
                if self.awaits_send() {
                    Phase::AwaitSend
                } else {
                    self.advance()
                }
            }
            // The kernel refused `SEND_ZC`: `unsupported` for the errnos that say so.
            (Phase::Submit, Outcome::Err(e)) => {
                Phase::Failed(feature_failed("io_uring SEND_ZC", *e))
            }
            // Logged as an error; nothing is freed, nothing advances.
            (phase @ (Phase::Reclaim | Phase::AwaitSend), Outcome::Cqe(c))
                if self.reads_as_errno(c) =>
            {
                phase
            }
            (phase @ (Phase::Reclaim | Phase::AwaitSend), Outcome::Cqe(c)) if c.notif => {
                self.notified(c);
                if phase == Phase::Reclaim {
                    self.ready()
                } else {
                    phase
                }
            }
            (Phase::AwaitSend, Outcome::Cqe(c)) => match self.send_cqe(c) {
                Ok(()) => self.advance(),
                // The data did not go out: send the same chunk again.
                Err(NotSent::Failed(_)) if self.knobs.on_failure == OnFailure::Retry => {
                    Phase::Submit
                }
                Err(not_sent) => Phase::Failed(not_sent.abort()),
            },
            // An earlier chunk's send CQE (`Submit::AtOnce`).
            (Phase::Reclaim, Outcome::Cqe(c)) => match self.send_cqe(c) {
                Ok(()) => self.ready(),
                Err(not_sent) => Phase::Failed(not_sent.abort()),
            },
            (Phase::Done, _) => Phase::Done,
            (Phase::Failed(a), _) => Phase::Failed(a),
            _ => Phase::Failed(unexpected(&op, &outcome)),
        };
    }
}

impl UringZcNotif {
    /// One outcome of the copying path's `send()`.
    fn copy_step(&mut self, s: &mut SendAll, op: &Op, outcome: &Outcome) -> Phase {
        match s.handle(outcome) {
            Progress::Pending => Phase::Copy(s.clone()),
            Progress::Complete => self.advance(),
            Progress::Failed(e) => Phase::Failed(Abort::Failed(format!("send: {e}"))),
            Progress::Unexpected => Phase::Failed(unexpected(op, outcome)),
        }
    }
}
