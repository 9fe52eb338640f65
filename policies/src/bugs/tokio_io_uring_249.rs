//! tokio-rs/io-uring#249: several `SEND_ZC` in flight on one TCP stream, without
//! waiting for each one's send CQE (or linking them), corrupt the order of the data.
//!
//! io_uring does not promise to run independent submissions in order: a `SEND_ZC` that
//! finds no socket space returns `-EAGAIN` to io_uring, which arms poll and retries it
//! later (`io_send_zc` → `io_uring_poll`/`io_poll_add`), while the next submission may
//! find space and queue its bytes first. Each buffer is released correctly (after its
//! `F_NOTIF`), yet the receiver gets chunk 1 before chunk 0. Fix: submit the next send
//! only after the previous one's send CQE (what the catalogue's `uring-zc-notif` does),
//! or link them with `IOSQE_IO_LINK`.

use super::{Bug, Tuning};
use crate::steps::{feature_failed, unexpected, Cursor};
use crate::uring::{self, NotSent, Notifs, Phase};
use crate::{BuildError, Catalogued, Entry, Feature};
use zcsafe_policy::{
    Abort, Cqe, Expectation, Geometry, Op, Outcome, Policy, Profile, TransportClass,
};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct UringPipeline {
    g: Geometry,
    /// Wait for each send CQE before the next submission (the fix).
    serialises: bool,
    at: Cursor,
    /// Notifications still to come, per slot.
    pinned: Notifs,
    /// Send CQEs still to come.
    sends: u8,
    /// It moves to the next chunk as soon as a `SEND_ZC` is submitted (never
    /// [`Phase::AwaitSend`]); [`Phase::Reclaim`] reaps until the current slot is free
    /// and, serialised, the last send is done.
    phase: Phase,
}

impl UringPipeline {
    fn new(g: &Geometry, serialises: bool) -> Self {
        UringPipeline {
            g: *g,
            serialises,
            at: Cursor::default(),
            pinned: Notifs::new(g),
            sends: 0,
            phase: Phase::Fill,
        }
    }

    fn ready(&self) -> Phase {
        let busy = self.pinned.pins(self.at.slot_index(&self.g) as usize)
            || (self.serialises && self.sends > 0);
        if busy {
            Phase::Reclaim
        } else {
            Phase::Fill
        }
    }

    fn reap(&mut self, c: &Cqe) -> Result<(), Abort> {
        let slot = self.pinned.slot_of(c.user_data);
        if c.notif {
            self.pinned.arrived(slot);
            return Ok(());
        }
        self.sends = self.sends.saturating_sub(1);
        if !c.more {
            self.pinned.arrived(slot);
        }
        uring::sent(c, &self.g).map_err(NotSent::abort)
    }
}

impl Policy for UringPipeline {
    fn poll_op(&self) -> Op {
        self.phase.op(&self.g, &self.at, self.at.chunk as u32)
    }

    fn handle(&mut self, outcome: Outcome) {
        let op = self.poll_op();
        self.phase = match (std::mem::replace(&mut self.phase, Phase::Done), &outcome) {
            (Phase::Fill, Outcome::Ok) => Phase::Submit,
            (Phase::Submit, Outcome::Ok) => {
                self.pinned.expect(self.at.slot_index(&self.g) as usize);
                self.sends += 1;
                if self.at.advance(&self.g) {
                    self.ready()
                } else {
                    Phase::Done
                }
            }
            (Phase::Submit, Outcome::Err(e)) => {
                Phase::Failed(feature_failed("io_uring SEND_ZC", *e))
            }
            (Phase::Reclaim, Outcome::Cqe(c)) => match self.reap(c) {
                Ok(()) => self.ready(),
                Err(a) => Phase::Failed(a),
            },
            (Phase::Done, _) => Phase::Done,
            (Phase::Failed(a), _) => Phase::Failed(a),
            _ => Phase::Failed(unexpected(&op, &outcome)),
        };
    }
}

/// Submits a `SEND_ZC` per slot without waiting for the previous send CQE.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UringZcUnorderedInflight(UringPipeline);

/// Submits the next `SEND_ZC` only after the previous one's send CQE.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UringZcUnorderedFixed(UringPipeline);

impl Catalogued for UringZcUnorderedInflight {
    const NAME: &'static str = "uring-zc-unordered-inflight";
    const SUMMARY: &'static str =
        "io_uring SEND_ZC, several in flight on one stream without links (buffers freed by NOTIF)";
    const ORIGIN: &'static str = "tokio-rs/io-uring#249";
    const NEEDS: &'static [Feature] = &[Feature::UringSendZc];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(UringPipeline::new(g, false)))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::corrupt(
            "io_uring may run the second SEND_ZC first: the receiver gets chunks out of order",
        )
    }
}

impl Catalogued for UringZcUnorderedFixed {
    const NAME: &'static str = "uring-zc-unordered-fixed";
    const SUMMARY: &'static str =
        "io_uring SEND_ZC, next submission only after the previous send CQE";
    const ORIGIN: &'static str = "tokio-rs/io-uring#249, the fix";
    const NEEDS: &'static [Feature] = &[Feature::UringSendZc];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(UringPipeline::new(g, true)))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe("one send at a time keeps the stream in order; NOTIF frees each buffer")
    }
}

crate::delegate_policy!(UringZcUnorderedInflight, UringZcUnorderedFixed);

pub fn bug() -> Bug {
    Bug {
        id: "tokio-rs/io-uring#249",
        sources: &["tokio-rs/io-uring#249"],
        what: "several SEND_ZC in flight on one TCP stream without waiting: data order corruption",
        buggy: Entry::of::<UringZcUnorderedInflight>(),
        fixed: Entry::of::<UringZcUnorderedFixed>(),
        tuning: Tuning::default(),
        transports: &[TransportClass::Local, TransportClass::Remote],
    }
}
