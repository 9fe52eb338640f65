//! rapidgzip#39, uutils/coreutils#7625: a buffer `vmsplice`d into a pipe is freed, and
//! `malloc` hands the same memory back for the next chunk before the reader drained the
//! pipe.
//!
//! Both programs write their output to stdout with `vmsplice` when stdout is a pipe
//! (`rapidgzip … | consumer`, uutils `cat`/`yes` style fast paths). `vmsplice` returns
//! once the pipe holds references to the user pages (`iter_to_pipe`); the reading
//! process copies them out later (`pipe_read`). Freeing the buffer and allocating the
//! next one gets the same pages back, the next chunk is written into them, and the
//! reader sees the new bytes in place of the old. The fixes keep each buffer alive until
//! the pipe must have been drained of it: with a pipe of `P` bytes, a ring of at least
//! `P + chunk` bytes guarantees that when `vmsplice` of a chunk returns, the chunk the
//! next write goes into was read — the LWN double-buffer rule, which *is* right when a
//! process, not `splice` to a socket, empties the pipe. (Later kernels' copying
//! `vmsplice` makes the bug go away.) The model runs with a pipe reader
//! (`pipe_reader`).

use super::{Bug, Tuning};
use crate::steps::{unexpected, Cursor};
use crate::{BuildError, Catalogued, Entry};
use zcsafe_policy::{
    Abort, Expectation, Geometry, Op, Outcome, Policy, Profile, Region, TransportClass,
};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct VmspliceOut {
    g: Geometry,
    /// Slots of the ring: 1 when `malloc` recycles the freed block at once.
    slots: u64,
    at: Cursor,
    phase: Phase,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    Fill,
    /// What of the chunk is still to go into the pipe.
    Vmsplice(Region),
    Done,
    Failed(Abort),
}

impl VmspliceOut {
    fn slot(&self) -> Region {
        Region::new((self.at.chunk % self.slots) * self.g.chunk, self.g.chunk)
    }
}

impl Policy for VmspliceOut {
    fn poll_op(&self) -> Op {
        match &self.phase {
            Phase::Fill => Op::Fill {
                buf: self.slot(),
                stream: self.at.offset(&self.g),
            },
            Phase::Vmsplice(left) => Op::Vmsplice {
                buf: *left,
                gift: false,
            },
            Phase::Done => Op::Finish,
            Phase::Failed(a) => Op::Abort(a.clone()),
        }
    }

    fn handle(&mut self, outcome: Outcome) {
        let op = self.poll_op();
        self.phase = match (std::mem::replace(&mut self.phase, Phase::Done), &outcome) {
            (Phase::Fill, Outcome::Ok) => Phase::Vmsplice(self.slot()),
            (Phase::Vmsplice(left), Outcome::Done(n)) => {
                let left = left.advance(*n);
                if !left.is_empty() {
                    Phase::Vmsplice(left)
                } else if self.at.advance(&self.g) {
                    Phase::Fill
                } else {
                    Phase::Done
                }
            }
            (Phase::Done, _) => Phase::Done,
            (Phase::Failed(a), _) => Phase::Failed(a),
            _ => Phase::Failed(unexpected(&op, &outcome)),
        };
    }
}

/// Frees each chunk after `vmsplice` returns; `malloc` returns the same block.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VmspliceMallocRecycle(VmspliceOut);

/// A ring of `pipe + chunk` bytes: a block is reused only after the pipe was drained of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VmspliceMallocFixed(VmspliceOut);

impl Catalogued for VmspliceMallocRecycle {
    const NAME: &'static str = "vmsplice-malloc-recycle";
    const SUMMARY: &'static str =
        "vmsplice to a pipe read by a process, then free + malloc hands the same block back";
    const ORIGIN: &'static str = "mxmlnkn/rapidgzip#39, uutils/coreutils#7625";

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(VmspliceOut {
            g: *g,
            slots: 1,
            at: Cursor::default(),
            phase: Phase::Fill,
        }))
    }

    fn expect(_: TransportClass, profile: &Profile) -> Expectation {
        if profile.vmsplice_maps {
            Expectation::corrupt(
                "the pipe still references the pages when the next chunk is written into them",
            )
        } else {
            Expectation::safe("this kernel's vmsplice copies, so the block is free at once")
        }
    }
}

impl Catalogued for VmspliceMallocFixed {
    const NAME: &'static str = "vmsplice-malloc-fixed";
    const SUMMARY: &'static str =
        "vmsplice to a pipe read by a process, from a ring of pipe + chunk bytes";
    const ORIGIN: &'static str = "mxmlnkn/rapidgzip#39, uutils/coreutils#7625, the fixes";

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        let slots = g.pipe / g.chunk + 1;
        if g.pipe % g.chunk != 0 || g.buffer < slots * g.chunk {
            return Err(BuildError::Needs {
                policy: Self::NAME,
                need: format!(
                    "a pipe of whole chunks and a buffer of at least pipe + chunk (got chunk {}, pipe {}, buffer {})",
                    g.chunk, g.pipe, g.buffer
                ),
            });
        }
        Ok(Self(VmspliceOut {
            g: *g,
            slots,
            at: Cursor::default(),
            phase: Phase::Fill,
        }))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe(
            "when vmsplice of chunk n returns, the pipe holds at most pipe bytes, so the block \
             written next was read out",
        )
    }
}

crate::delegate_policy!(VmspliceMallocRecycle, VmspliceMallocFixed);

pub fn bug() -> Bug {
    Bug {
        id: "rapidgzip#39",
        sources: &["mxmlnkn/rapidgzip#39", "uutils/coreutils#7625"],
        what: "a vmspliced buffer freed and recycled by malloc before the reader drained the pipe",
        buggy: Entry::of::<VmspliceMallocRecycle>(),
        fixed: Entry::of::<VmspliceMallocFixed>(),
        tuning: Tuning {
            pipe_reader: true,
            ..Tuning::default()
        },
        transports: &[TransportClass::Local],
    }
}
