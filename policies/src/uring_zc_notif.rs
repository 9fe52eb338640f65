//! `uring-zc-notif`: io_uring `SEND_ZC`, reuse a buffer slot only after its notification
//! CQE (`IORING_CQE_F_NOTIF`).
//!
//! The documented contract of `io_uring_prep_send_zc(3)`. Pipelined over the buffer's
//! slots; to keep the stream in order it submits the next send only after the previous
//! one's send CQE (two unlinked `SEND_ZC`s in flight may run in either order,
//! tokio-rs/io-uring#249). A send CQE without `F_MORE` means no notification follows
//! (a failed send), so the slot is free at once.

use crate::steps::{feature_failed, unexpected, Cursor};
use crate::{BuildError, Catalogued, Feature};
use zcsafe_policy::{
    Abort, Cqe, Errno, Expectation, Geometry, Op, Outcome, Policy, Profile, TransportClass,
};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UringZcNotif {
    g: Geometry,
    at: Cursor,
    /// Notifications still to come, per slot.
    pinned: Vec<u8>,
    phase: Phase,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    /// Reap CQEs until the current slot has no notification outstanding.
    Reclaim,
    Fill,
    Submit,
    /// Reap CQEs until the current chunk's send CQE.
    AwaitSend,
    Done,
    Failed(Abort),
}

impl UringZcNotif {
    fn slot_of(&self, user_data: u32) -> usize {
        (user_data as u64 % self.g.slots()) as usize
    }

    fn begin_chunk(&self) -> Phase {
        if self.pinned[self.at.slot_index(&self.g) as usize] > 0 {
            Phase::Reclaim
        } else {
            Phase::Fill
        }
    }

    /// Books a CQE; returns an error for a failed send.
    fn reap(&mut self, c: &Cqe) -> Result<(), Abort> {
        let slot = self.slot_of(c.user_data);
        if c.notif || !c.more {
            self.pinned[slot] = self.pinned[slot].saturating_sub(1);
        }
        if !c.notif && c.res < 0 {
            return Err(feature_failed(
                "io_uring SEND_ZC",
                Errno::from_raw(-c.res as i32),
            ));
        }
        if !c.notif && (c.res as u64) < self.g.chunk {
            return Err(Abort::Failed(format!(
                "short SEND_ZC: {} of {} bytes",
                c.res, self.g.chunk
            )));
        }
        Ok(())
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
            pinned: vec![0; g.slots() as usize],
            phase: Phase::Fill,
        })
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
            Phase::Submit => Op::UringSendZc {
                buf: self.at.slot(&self.g),
                user_data: self.at.chunk as u32,
            },
            Phase::Done => Op::Finish,
            Phase::Failed(a) => Op::Abort(a.clone()),
        }
    }

    fn handle(&mut self, outcome: Outcome) {
        let op = self.poll_op();
        self.phase = match (std::mem::replace(&mut self.phase, Phase::Done), &outcome) {
            (Phase::Fill, Outcome::Ok) => Phase::Submit,
            (Phase::Submit, Outcome::Ok) => {
                self.pinned[self.at.slot_index(&self.g) as usize] += 1;
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
