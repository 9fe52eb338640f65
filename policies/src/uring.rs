//! The io_uring `SEND_ZC` pieces several policies share: what still holds each buffer
//! slot, and what a send CQE says.
//!
//! A `SEND_ZC` posts a send CQE (bytes sent, or `-errno`); with `IORING_CQE_F_MORE` set,
//! a notification CQE (`IORING_CQE_F_NOTIF`) follows once the kernel dropped the pages
//! (`io_notif_tw_complete`). The pipeline built on these is `uring-zc-notif`; the bug
//! reproducers `bugs::netty_15599` and `bugs::tokio_io_uring_249` are settings of its
//! knobs.

use crate::steps::feature_failed;
use zcsafe_policy::{Abort, Cqe, Errno, Geometry, UserData};

/// What holds each buffer slot: `SEND_ZC`s whose send CQE has not come, and the
/// notifications send CQEs promised.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Holds {
    sends: Vec<u8>,
    notifs: Vec<u8>,
}

impl Holds {
    pub fn new(g: &Geometry) -> Self {
        let slots = vec![0; g.slots() as usize];
        Holds {
            sends: slots.clone(),
            notifs: slots,
        }
    }

    /// The slot a CQE's `user_data` names: a chunk index or a slot index, either way
    /// modulo the slots.
    pub fn slot_of(&self, user_data: UserData) -> usize {
        user_data as usize % self.sends.len()
    }

    /// A `SEND_ZC` from `slot` went in.
    pub fn submitted(&mut self, slot: usize) {
        self.sends[slot] += 1;
    }

    /// Its send CQE came; `notif`: the sender takes it to promise a notification.
    pub fn completed(&mut self, slot: usize, notif: bool) {
        self.sends[slot] = self.sends[slot].saturating_sub(1);
        if notif {
            self.notifs[slot] += 1;
        }
    }

    /// A notification for `slot` came. Never below zero: a notification nobody counted
    /// frees nothing.
    pub fn notified(&mut self, slot: usize) {
        self.notifs[slot] = self.notifs[slot].saturating_sub(1);
    }

    /// Whether `slot` may not be written yet.
    pub fn pins(&self, slot: usize) -> bool {
        self.sends[slot] > 0 || self.notifs[slot] > 0
    }

    /// Whether some `SEND_ZC` still waits for its send CQE.
    pub fn sending(&self) -> bool {
        self.sends.iter().any(|&n| n > 0)
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
