//! A 4-slot ring over `MSG_ZEROCOPY` (issue 19's library author's policy): fill a slot,
//! send it, and refill a slot only once the error queue's notifications cover every send
//! made from it; and the classic bug beside it, which on each notification releases every
//! older send (`id <= hi`), as if completions came in order and the counter never wrapped.
//!
//! Both declare their [`Pipeline`] (`Pipeline::ring(4)`: four one-page slots, a send
//! outstanding from each), so `zcsafe check` derives a scenario that fills the ring, wraps
//! the counter and reuses every slot twice. Under `Scenario::standard` (a 2-page send
//! buffer, a 1-bit counter) the bug has no room and the buggy variant is `safe`.

use zcsafe_policies::ledger::ZcLedger;
use zcsafe_policies::steps::{unexpected, Cursor, Progress, SendAll};
use zcsafe_policies::{BuildError, Catalogued, Feature, Layout};
use zcsafe_policy::{
    Abort, Errno, Expectation, Geometry, Op, Outcome, Pipeline, Policy, Profile, TransportClass,
    ZcNotification,
};

/// How a notification releases outstanding sends: the one difference between the two
/// policies of this file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Release {
    /// Exactly the counters in `[lo, hi]`, wrap-aware (`ZcLedger::release`).
    Covered,
    /// Every counter `<= hi`: the bug.
    OlderThanHi,
}

/// The ring machine both policies run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Ring {
    g: Geometry,
    release: Release,
    at: Cursor,
    ledger: ZcLedger,
    phase: Phase,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    Enable,
    /// Read notifications until no send pins the current slot.
    Reclaim,
    Fill,
    Send(SendAll),
    /// `ENOBUFS`: unread notifications hold optmem; read one, then send again.
    AwaitAny(SendAll),
    Done,
    Failed(Abort),
}

impl Ring {
    /// Like the author's, the ring has exactly four slots.
    fn new(g: &Geometry, release: Release, name: &'static str) -> Result<Ring, BuildError> {
        LAYOUT
            .check(&RING, g)
            .map_err(|need| BuildError::Needs { policy: name, need })?;
        Ok(Ring {
            g: *g,
            release,
            at: Cursor::default(),
            ledger: ZcLedger::default(),
            phase: Phase::Enable,
        })
    }

    fn apply(&mut self, n: &Option<ZcNotification>) {
        let Some(n) = n else { return };
        match self.release {
            Release::Covered => self.ledger.release(&self.g, n),
            Release::OlderThanHi => self.ledger.release_where(|id| id <= n.hi),
        }
    }

    fn begin_chunk(&self) -> Phase {
        if self.ledger.pins(self.at.slot_index(&self.g)) {
            Phase::Reclaim
        } else {
            Phase::Fill
        }
    }
}

impl Policy for Ring {
    fn poll_op(&self) -> Op {
        match &self.phase {
            Phase::Enable => Op::EnableZerocopy,
            Phase::Reclaim | Phase::AwaitAny(_) => Op::ReadErrqueue { block: true },
            Phase::Fill => self.at.fill(&self.g),
            Phase::Send(s) => s.op(),
            Phase::Done => Op::Finish,
            Phase::Failed(a) => Op::Abort(a.clone()),
        }
    }

    fn handle(&mut self, outcome: Outcome) {
        let op = self.poll_op();
        let failed = || Phase::Failed(unexpected(&op, &outcome));
        self.phase = match (std::mem::replace(&mut self.phase, Phase::Done), &outcome) {
            (Phase::Enable, Outcome::Ok) => Phase::Fill,
            (Phase::Reclaim, Outcome::Zc(n)) => {
                self.apply(n);
                self.begin_chunk()
            }
            (Phase::AwaitAny(send), Outcome::Zc(n)) => {
                self.apply(n);
                Phase::Send(send)
            }
            (Phase::Fill, Outcome::Ok) => Phase::Send(SendAll::new(self.at.slot(&self.g), true)),
            (Phase::Send(mut send), _) => {
                let calls = send.calls;
                let progress = send.handle(&outcome);
                if send.calls > calls {
                    self.ledger
                        .record_send(&self.g, self.at.slot_index(&self.g));
                }
                match progress {
                    Progress::Pending => Phase::Send(send),
                    Progress::Complete if self.at.advance(&self.g) => self.begin_chunk(),
                    Progress::Complete => Phase::Done,
                    Progress::Failed(Errno::NoBufs) if !self.ledger.is_empty() => {
                        Phase::AwaitAny(send)
                    }
                    // Nothing outstanding: no notification will free optmem; copy instead.
                    Progress::Failed(Errno::NoBufs) => Phase::Send(SendAll::new(send.left, false)),
                    Progress::Failed(_) | Progress::Unexpected => failed(),
                }
            }
            (end @ (Phase::Done | Phase::Failed(_)), _) => end,
            _ => failed(),
        };
    }
}

/// The ring, done right: a notification releases exactly the counters it covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RingZc(Ring);

/// The ring with the classic bug: each notification releases every send `<= hi`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RingZcInorder(Ring);

/// The four slots both variants cycle through, each with a send outstanding.
const RING: Pipeline = Pipeline::ring(4);
/// Exactly [`RING`]'s slots, wherever a backend picks the sizes (the bench too).
const LAYOUT: Layout = Layout::Declared;

impl Catalogued for RingZc {
    const NAME: &'static str = "ring-zc";
    const SUMMARY: &'static str =
        "MSG_ZEROCOPY over a 4-slot ring; refill a slot once notifications cover its sends";
    const ORIGIN: &'static str = "examples/ring-policy: issue 19's library author";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];
    const PIPELINE: Pipeline = RING;
    const LAYOUT: Layout = LAYOUT;

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ring::new(g, Release::Covered, Self::NAME).map(RingZc)
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe(
            "a notification comes only once the last skb referencing the pages is freed",
        )
    }
}

impl Catalogued for RingZcInorder {
    const NAME: &'static str = "ring-zc-inorder";
    const SUMMARY: &'static str =
        "MSG_ZEROCOPY over a 4-slot ring; each notification releases every send <= hi";
    const ORIGIN: &'static str = "examples/ring-policy: issue 19's library author's bug";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];
    const PIPELINE: Pipeline = RING;
    const LAYOUT: Layout = LAYOUT;

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ring::new(g, Release::OlderThanHi, Self::NAME).map(RingZcInorder)
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::corrupt(
            "after the counter wraps, a newer send has a counter below hi and is released early",
        )
    }

    /// The same bands as the catalogue's `zc-inorder-tracker`, whose rule this is.
    fn expect_for(t: TransportClass, p: &Profile, g: &Geometry) -> Expectation {
        zcsafe_policies::zc_inorder_tracker::ZcInorderTracker::expect_for(t, p, g)
    }
}

macro_rules! delegate {
    ($($ty:ty),+) => {$(
        impl Policy for $ty {
            fn poll_op(&self) -> Op {
                self.0.poll_op()
            }
            fn handle(&mut self, outcome: Outcome) {
                self.0.handle(outcome)
            }
        }
    )+};
}
delegate!(RingZc, RingZcInorder);
