//! `uring-zc-notif`: io_uring `SEND_ZC`, reuse a buffer slot only after its notification
//! CQE (`IORING_CQE_F_NOTIF`).
//!
//! The documented contract of `io_uring_prep_send_zc(3)`. Pipelined over the buffer's
//! slots; to keep the stream in order it submits the next send only after the previous
//! one's send CQE (two unlinked `SEND_ZC`s in flight may run in either order,
//! tokio-rs/io-uring#249). A send CQE without `F_MORE` means no notification follows
//! (a failed send), so the slot is free at once.

use crate::steps::{feature_failed, unexpected, Cursor};
use crate::uring::{self, NotSent, Notifs, Phase};
use crate::{BuildError, Catalogued, Feature};
use zcsafe_policy::{
    Abort, Cqe, Expectation, Geometry, Op, Outcome, Policy, Profile, TransportClass,
};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UringZcNotif {
    g: Geometry,
    at: Cursor,
    /// Notifications still to come, per slot.
    pinned: Notifs,
    phase: Phase,
}

impl UringZcNotif {
    fn begin_chunk(&self) -> Phase {
        if self.pinned.pins(self.at.slot_index(&self.g) as usize) {
            Phase::Reclaim
        } else {
            Phase::Fill
        }
    }

    /// Books a CQE; returns an error for a failed send.
    fn reap(&mut self, c: &Cqe) -> Result<(), Abort> {
        if c.notif || !c.more {
            self.pinned.arrived(self.pinned.slot_of(c.user_data));
        }
        if c.notif {
            return Ok(());
        }
        uring::sent(c, &self.g).map_err(NotSent::abort)
    }
}

impl Catalogued for UringZcNotif {
    const NAME: &'static str = "uring-zc-notif";
    const SUMMARY: &'static str = "io_uring SEND_ZC, buffer reused after the NOTIF CQE";
    const ORIGIN: &'static str = "io_uring_prep_send_zc(3)";
    const NEEDS: &'static [Feature] = &[Feature::UringSendZc];
    const TWIN: Option<&'static str> = Some(crate::uring_zc_naive::UringZcNaive::NAME);

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(UringZcNotif {
            g: *g,
            at: Cursor::default(),
            pinned: Notifs::new(g),
            phase: Phase::Fill,
        })
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe("the NOTIF CQE is posted when the last page reference is dropped")
    }
}

impl Policy for UringZcNotif {
    fn poll_op(&self) -> Op {
        self.phase.op(&self.g, &self.at, self.at.chunk as u32)
    }

    fn handle(&mut self, outcome: Outcome) {
        let op = self.poll_op();
        self.phase = match (std::mem::replace(&mut self.phase, Phase::Done), &outcome) {
            (Phase::Fill, Outcome::Ok) => Phase::Submit,
            (Phase::Submit, Outcome::Ok) => {
                self.pinned.expect(self.at.slot_index(&self.g) as usize);
                Phase::AwaitSend
            }
            (Phase::Submit, Outcome::Err(e)) => {
                Phase::Failed(feature_failed("io_uring SEND_ZC", *e))
            }
            (phase @ (Phase::Reclaim | Phase::AwaitSend), Outcome::Cqe(c)) => match self.reap(c) {
                Err(abort) => Phase::Failed(abort),
                Ok(())
                    if phase == Phase::AwaitSend
                        && !c.notif
                        && c.user_data == self.at.chunk as u32 =>
                {
                    if self.at.advance(&self.g) {
                        self.begin_chunk()
                    } else {
                        Phase::Done
                    }
                }
                Ok(()) if phase == Phase::Reclaim => self.begin_chunk(),
                Ok(()) => phase,
            },
            (Phase::Done, _) => Phase::Done,
            (Phase::Failed(a), _) => Phase::Failed(a),
            _ => Phase::Failed(unexpected(&op, &outcome)),
        };
    }
}
