//! An example of a reuse policy written outside zcsafe: `MSG_ZEROCOPY` sends, and reuse
//! of the buffer once `SIOCOUTQ` reads 0 — instead of reading the error queue.
//!
//! Is that safe? `SIOCOUTQ == 0` means every byte was acknowledged. Behind a real NIC the
//! device has read the pages by then. With local delivery the peer socket could still
//! hold them — but `skb_orphan_frags_rx` copies zero-copy frags on local delivery, so on
//! today's kernels this is safe too. On a kernel that stopped copying (a different
//! kernel profile) it would not be. `tests/check.rs` asks zcsafe's model checker.
//!
//! The policy is a sans-IO state machine built from zcsafe's public steps: it never does
//! I/O, so the model checker, the simulator and the real-kernel backend all drive it.
//! Its [`Catalogued`] entry gives it a name and an expectation, and `src/main.rs` — five
//! lines — is a `zcsafe` binary that knows it: `cargo run -- check -p zc-drain`,
//! `… run -p zc-drain -t loopback`, `… replay TRACE`, `… matrix -p zc-drain`.
//!
//! The first version of this example never read the error queue. The checker answered
//! `error` with a 16-step timeline ending in `ENOBUFS`: unread notifications use up the
//! socket's optmem, and `MSG_ZEROCOPY` sends start failing. Hence `Phase::Discard`.

#![forbid(unsafe_code)]

pub mod ring;
pub use ring::{RingZc, RingZcInorder};

use zcsafe_policies::steps::{unexpected, Cursor, Drain, Progress, SendAll};
use zcsafe_policies::{BuildError, Catalogued, Feature};
use zcsafe_policy::{
    Abort, Errno, Expectation, Geometry, Op, Outcome, Policy, Profile, TransportClass,
};

/// `MSG_ZEROCOPY`, then wait for `SIOCOUTQ == 0` before refilling the buffer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ZcDrain {
    g: Geometry,
    at: Cursor,
    phase: Phase,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    Enable,
    Fill,
    Send(SendAll),
    /// `ENOBUFS`: read (and ignore) one notification to free optmem, then send again.
    Discard(SendAll),
    Drain(Drain),
    Done,
    Failed(Abort),
}

impl ZcDrain {
    pub fn new(g: &Geometry) -> Self {
        ZcDrain {
            g: *g,
            at: Cursor::default(),
            phase: Phase::Enable,
        }
    }
}

impl Catalogued for ZcDrain {
    const NAME: &'static str = "zc-drain";
    const SUMMARY: &'static str = "MSG_ZEROCOPY; reuse once SIOCOUTQ reads 0 (errqueue discarded)";
    const ORIGIN: &'static str = "examples/ring-policy: an outside crate's own policy";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(ZcDrain::new(g))
    }

    fn expect(transport: TransportClass, profile: &Profile) -> Expectation {
        match transport {
            TransportClass::Local if !profile.zerocopy_local_copies => Expectation::corrupt(
                "every byte is acknowledged once it sits in the peer's queue, which keeps the pages \
                 when local delivery does not copy zero-copy frags",
            ),
            _ => Expectation::safe(
                "acknowledged means the device read the pages, or local delivery copied them",
            ),
        }
    }
}

impl Policy for ZcDrain {
    fn poll_op(&self) -> Op {
        match &self.phase {
            Phase::Enable => Op::EnableZerocopy,
            Phase::Fill => self.at.fill(&self.g),
            Phase::Send(s) => s.op(),
            Phase::Discard(_) => Op::ReadErrqueue { block: false },
            Phase::Drain(d) => d.op(),
            Phase::Done => Op::Finish,
            Phase::Failed(a) => Op::Abort(a.clone()),
        }
    }

    fn handle(&mut self, outcome: Outcome) {
        let op = self.poll_op();
        let failed = || Phase::Failed(unexpected(&op, &outcome));
        self.phase = match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Enable | Phase::Fill if outcome != Outcome::Ok => failed(),
            Phase::Enable => Phase::Fill,
            Phase::Fill => Phase::Send(SendAll::new(self.at.slot(&self.g), true)),
            Phase::Send(mut s) => match s.handle(&outcome) {
                Progress::Pending => Phase::Send(s),
                Progress::Complete => Phase::Drain(Drain { target: 0 }),
                Progress::Failed(Errno::NoBufs) => Phase::Discard(s),
                Progress::Failed(_) | Progress::Unexpected => failed(),
            },
            Phase::Discard(s) => match outcome {
                Outcome::Zc(_) => Phase::Send(s),
                _ => failed(),
            },
            Phase::Drain(mut d) => match d.handle(&outcome) {
                Progress::Pending => Phase::Drain(d),
                Progress::Complete if self.at.advance(&self.g) => Phase::Fill,
                Progress::Complete => Phase::Done,
                Progress::Failed(_) | Progress::Unexpected => failed(),
            },
            end => end,
        };
    }
}
