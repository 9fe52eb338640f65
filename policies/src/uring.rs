//! The io_uring `SEND_ZC` pieces several policies share: the phases of a sender that
//! submits one chunk per `SEND_ZC`, the notifications each buffer slot still waits for,
//! and what a send CQE says.
//!
//! A `SEND_ZC` posts a send CQE (bytes sent, or `-errno`); with `IORING_CQE_F_MORE` set,
//! a notification CQE (`IORING_CQE_F_NOTIF`) follows once the kernel dropped the pages
//! (`io_notif_tw_complete`). The policies differ in what they count and when they
//! submit — `uring-zc-notif`, `bugs::netty_15599`, `bugs::tokio_io_uring_249` — and share
//! the rest from here.

use crate::steps::{feature_failed, Cursor};
use zcsafe_policy::{Abort, Cqe, Errno, Geometry, Op, UserData};

/// Where a `SEND_ZC` sender stands.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Reap CQEs until the current slot may be written.
    Reclaim,
    Fill,
    Submit,
    /// Reap CQEs until the current chunk's send CQE.
    AwaitSend,
    Done,
    Failed(Abort),
}

impl Phase {
    /// The operation of this phase for the chunk at `at`, its `SEND_ZC` tagged `user_data`.
    pub fn op(&self, g: &Geometry, at: &Cursor, user_data: UserData) -> Op {
        match self {
            Phase::Reclaim | Phase::AwaitSend => Op::UringWaitCqe,
            Phase::Fill => at.fill(g),
            Phase::Submit => Op::UringSendZc {
                buf: at.slot(g),
                user_data,
            },
            Phase::Done => Op::Finish,
            Phase::Failed(a) => Op::Abort(a.clone()),
        }
    }
}

/// Notification CQEs still to come, per buffer slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Notifs(Vec<u8>);

impl Notifs {
    pub fn new(g: &Geometry) -> Self {
        Notifs(vec![0; g.slots() as usize])
    }

    /// The slot a CQE's `user_data` names: a chunk index or a slot index, either way
    /// modulo the slots.
    pub fn slot_of(&self, user_data: UserData) -> usize {
        user_data as usize % self.0.len()
    }

    /// One more notification to come for `slot`.
    pub fn expect(&mut self, slot: usize) {
        self.0[slot] += 1;
    }

    /// A notification for `slot` came (or will not come). Never below zero: a
    /// notification nobody counted frees nothing.
    pub fn arrived(&mut self, slot: usize) {
        self.0[slot] = self.0[slot].saturating_sub(1);
    }

    /// Whether `slot` still waits for a notification.
    pub fn pins(&self, slot: usize) -> bool {
        self.0[slot] > 0
    }
}

/// A send CQE that did not send the whole chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotSent {
    /// The request failed with this errno.
    Failed(Errno),
    /// It sent only `sent` bytes; the policies send whole chunks and do not resume.
    Short { sent: i64, chunk: u64 },
}

impl NotSent {
    /// The abort of a policy that cannot go on: `unsupported` when the kernel refused
    /// `SEND_ZC` itself ([`feature_failed`]).
    pub fn abort(self) -> Abort {
        match self {
            NotSent::Failed(errno) => feature_failed("io_uring SEND_ZC", errno),
            NotSent::Short { sent, chunk } => {
                Abort::Failed(format!("short SEND_ZC: {sent} of {chunk} bytes"))
            }
        }
    }
}

/// What the send CQE `c` of a whole-chunk `SEND_ZC` says.
pub fn sent(c: &Cqe, g: &Geometry) -> Result<(), NotSent> {
    if c.res < 0 {
        Err(NotSent::Failed(Errno::from_raw(-c.res as i32)))
    } else if (c.res as u64) < g.chunk {
        Err(NotSent::Short {
            sent: c.res,
            chunk: g.chunk,
        })
    } else {
        Ok(())
    }
}
