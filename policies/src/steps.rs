//! Multi-call steps that several policies share.
//!
//! A blocking call may still move fewer bytes than asked (a signal, a partial splice, a
//! pipe that filled up). Each step here loops until its job is done, so the policies
//! built from them read as a sequence of intentions.

use zcsafe_policy::{Abort, Errno, Geometry, Op, Outcome, Region};

/// Which chunk of the stream a policy works on, and where it lives in a buffer used as a
/// ring of chunk-sized slots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub chunk: u64,
}

impl Cursor {
    /// The buffer region of the current chunk.
    pub fn slot(&self, g: &Geometry) -> Region {
        g.ring_slot(self.chunk)
    }

    /// The slot number of the current chunk.
    pub fn slot_index(&self, g: &Geometry) -> u16 {
        (self.chunk % g.slots()) as u16
    }

    /// Stream offset of the current chunk.
    pub fn offset(&self, g: &Geometry) -> u64 {
        g.chunk_offset(self.chunk)
    }

    /// Write the current chunk's stream bytes into its slot: the reuse moment.
    pub fn fill(&self, g: &Geometry) -> Op {
        Op::Fill {
            buf: self.slot(g),
            stream: self.offset(g),
        }
    }

    /// Moves to the next chunk; false when the stream is complete.
    pub fn advance(&mut self, g: &Geometry) -> bool {
        self.chunk += 1;
        self.chunk < g.chunks()
    }
}

/// Where a step stands after an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Call [`op`](SendAll::op) again.
    Pending,
    /// The step is done.
    Complete,
    /// The call failed; the policy decides what that means.
    Failed(Errno),
    /// The backend answered with an outcome of the wrong kind for the operation (a CQE
    /// for a `send`, say). That breaks the contract: it is a backend bug, reported as
    /// `error` ([`unexpected`]), never as a kernel that lacks a feature.
    Unexpected,
}

/// The abort for an outcome a step did not expect from `op`.
pub fn unexpected(op: &Op, outcome: &Outcome) -> Abort {
    Abort::Failed(format!("unexpected outcome {outcome} of {op}"))
}

/// Interprets a byte-count outcome for a region.
fn count(left: &mut Region, outcome: &Outcome) -> Progress {
    match outcome {
        Outcome::Done(n) => {
            *left = left.advance(*n);
            if left.is_empty() {
                Progress::Complete
            } else {
                Progress::Pending
            }
        }
        Outcome::Err(e) => Progress::Failed(*e),
        _ => Progress::Unexpected,
    }
}

/// `send()` a region until every byte is queued, counting the calls that queued bytes
/// (each successful `MSG_ZEROCOPY` call takes one notification counter).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SendAll {
    pub left: Region,
    pub zerocopy: bool,
    /// Successful calls made so far.
    pub calls: u32,
}

impl SendAll {
    pub fn new(buf: Region, zerocopy: bool) -> Self {
        SendAll {
            left: buf,
            zerocopy,
            calls: 0,
        }
    }

    pub fn op(&self) -> Op {
        Op::Send {
            buf: self.left,
            zerocopy: self.zerocopy,
        }
    }

    pub fn handle(&mut self, outcome: &Outcome) -> Progress {
        let p = count(&mut self.left, outcome);
        if matches!(outcome, Outcome::Done(n) if *n > 0) {
            self.calls += 1;
        }
        p
    }
}

/// `vmsplice` a chunk into the pipe and `splice` it on to the socket, alternating until
/// the chunk has left the pipe. The chunk must fit in the pipe.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpliceChunk {
    left: Region,
    gift: bool,
    /// Bytes vmspliced but not yet spliced on.
    in_pipe: u64,
}

impl SpliceChunk {
    pub fn new(buf: Region, gift: bool) -> Self {
        SpliceChunk {
            left: buf,
            gift,
            in_pipe: 0,
        }
    }

    pub fn op(&self) -> Op {
        if self.in_pipe > 0 {
            Op::Splice { len: self.in_pipe }
        } else {
            Op::Vmsplice {
                buf: self.left,
                gift: self.gift,
            }
        }
    }

    pub fn handle(&mut self, outcome: &Outcome) -> Progress {
        let n = match outcome {
            Outcome::Done(n) => *n,
            Outcome::Err(e) => return Progress::Failed(*e),
            _ => return Progress::Unexpected,
        };
        if self.in_pipe > 0 {
            self.in_pipe -= n.min(self.in_pipe);
        } else {
            self.left = self.left.advance(n);
            self.in_pipe = n;
        }
        if self.in_pipe == 0 && self.left.is_empty() {
            Progress::Complete
        } else {
            Progress::Pending
        }
    }
}

/// `sendfile` a file region until all of it is queued.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SendfileAll {
    pub file: zcsafe_policy::FileId,
    pub left: Region,
}

impl SendfileAll {
    pub fn op(&self) -> Op {
        Op::Sendfile {
            file: self.file,
            region: self.left,
        }
    }

    pub fn handle(&mut self, outcome: &Outcome) -> Progress {
        count(&mut self.left, outcome)
    }
}

/// Poll `SIOCOUTQ` until at most `target` bytes are unacknowledged. With `target = 0` this
/// is the drain proposed in the vmsplice-and-TCP answer. The backend answers a repeated
/// poll only when the value changed (see [`Op::Siocoutq`]), so this loop never spins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Drain {
    pub target: u64,
}

impl Drain {
    pub fn op(&self) -> Op {
        Op::Siocoutq
    }

    pub fn handle(&mut self, outcome: &Outcome) -> Progress {
        match outcome {
            Outcome::Done(v) if *v <= self.target => Progress::Complete,
            Outcome::Done(_) => Progress::Pending,
            Outcome::Err(e) => Progress::Failed(*e),
            _ => Progress::Unexpected,
        }
    }
}

/// The abort a policy raises when a feature call failed: `unsupported` for the errnos a
/// kernel uses to say "not here", `failed` otherwise. Only for real errnos: an outcome of
/// the wrong kind is [`Progress::Unexpected`], a contract error.
pub fn feature_failed(what: &str, errno: Errno) -> Abort {
    match errno {
        Errno::OpNotSupp | Errno::NoProtoOpt | Errno::Inval => {
            Abort::Unsupported(format!("{what} failed with {errno}"))
        }
        e => Abort::Failed(format!("{what} failed with {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_chunk_alternates_until_the_pipe_is_empty() {
        let mut s = SpliceChunk::new(Region::new(0, 8), false);
        assert_eq!(
            s.op(),
            Op::Vmsplice {
                buf: Region::new(0, 8),
                gift: false
            }
        );
        assert_eq!(s.handle(&Outcome::Done(5)), Progress::Pending);
        assert_eq!(s.op(), Op::Splice { len: 5 });
        assert_eq!(s.handle(&Outcome::Done(2)), Progress::Pending);
        assert_eq!(s.op(), Op::Splice { len: 3 });
        assert_eq!(s.handle(&Outcome::Done(3)), Progress::Pending);
        assert_eq!(
            s.op(),
            Op::Vmsplice {
                buf: Region::new(5, 3),
                gift: false
            }
        );
        assert_eq!(s.handle(&Outcome::Done(3)), Progress::Pending);
        assert_eq!(s.handle(&Outcome::Done(3)), Progress::Complete);
    }

    #[test]
    fn send_all_counts_calls_and_reports_errors() {
        let mut s = SendAll::new(Region::new(0, 4), true);
        assert_eq!(s.handle(&Outcome::Done(1)), Progress::Pending);
        assert_eq!(
            s.handle(&Outcome::Err(Errno::NoBufs)),
            Progress::Failed(Errno::NoBufs)
        );
        assert_eq!(s.handle(&Outcome::Done(3)), Progress::Complete);
        assert_eq!(s.calls, 2);
    }

    #[test]
    fn an_outcome_of_the_wrong_kind_is_unexpected_not_an_errno() {
        let wrong = Outcome::Zc(None);
        let mut s = SendAll::new(Region::new(0, 4), true);
        assert_eq!(s.handle(&wrong), Progress::Unexpected);
        assert_eq!(s.calls, 0);
        let mut c = SpliceChunk::new(Region::new(0, 4), true);
        assert_eq!(c.handle(&wrong), Progress::Unexpected);
        assert_eq!(
            Drain { target: 0 }.handle(&Outcome::Ok),
            Progress::Unexpected
        );
        let mut f = SendfileAll {
            file: 0,
            left: Region::new(0, 4),
        };
        assert_eq!(f.handle(&Outcome::Ok), Progress::Unexpected);
    }

    #[test]
    fn drain_completes_at_or_below_target() {
        let mut d = Drain { target: 0 };
        assert_eq!(d.handle(&Outcome::Done(3)), Progress::Pending);
        assert_eq!(d.handle(&Outcome::Done(0)), Progress::Complete);
    }
}
