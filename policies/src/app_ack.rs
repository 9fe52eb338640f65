//! `app-ack`: the receiver reports how many bytes its application consumed, on the same
//! connection; the sender reuses only buffer slots wholly below that count.
//!
//! The end-to-end argument applied to buffer reuse: only the receiving application knows
//! that nobody will read the bytes again, on any transport. Costs a reverse stream and a
//! round trip of buffering; needs a cooperating receiver. Sends with vmsplice + splice,
//! the path that keeps user pages referenced the longest.

use crate::steps::{unexpected, Cursor, Progress, SpliceChunk};
use crate::{BuildError, Catalogued};
use zcsafe_policy::{Abort, Expectation, Geometry, Op, Outcome, Policy, Profile, TransportClass};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AppAck {
    g: Geometry,
    at: Cursor,
    /// Bytes the receiver last said it consumed.
    consumed: u64,
    phase: Phase,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    /// Wait until the receiver consumed the slot's previous chunk.
    Reclaim,
    Fill,
    Splice(SpliceChunk),
    Done,
    Failed(Abort),
}

impl AppAck {
    /// Bytes the receiver must have consumed before the current chunk's slot is free.
    fn needed(&self) -> u64 {
        (self.at.chunk + 1).saturating_sub(self.g.slots()) * self.g.chunk
    }

    fn begin_chunk(&self) -> Phase {
        if self.consumed >= self.needed() {
            Phase::Fill
        } else {
            Phase::Reclaim
        }
    }
}

impl Catalogued for AppAck {
    const NAME: &'static str = "app-ack";
    const SUMMARY: &'static str =
        "the receiver reports consumed bytes back on the connection; reuse only below that";
    const ORIGIN: &'static str = "application-level acknowledgement (end-to-end argument)";
    const NEEDS_APP_ACK: bool = true;
    const TWIN: Option<&'static str> =
        Some(crate::vmsplice_double_buffer::VmspliceDoubleBuffer::NAME);

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(AppAck {
            g: *g,
            at: Cursor::default(),
            consumed: 0,
            phase: Phase::Fill,
        })
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe("bytes the receiving application consumed are never read again")
    }
}

impl Policy for AppAck {
    fn poll_op(&self) -> Op {
        match &self.phase {
            Phase::Reclaim => Op::WaitAppAck {
                beyond: self.consumed,
            },
            Phase::Fill => self.at.fill(&self.g),
            Phase::Splice(s) => s.op(),
            Phase::Done => Op::Finish,
            Phase::Failed(a) => Op::Abort(a.clone()),
        }
    }

    fn handle(&mut self, outcome: Outcome) {
        let op = self.poll_op();
        let failed = |op: &Op| Phase::Failed(unexpected(op, &outcome));
        self.phase = match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Reclaim => match outcome {
                Outcome::Done(n) if n > self.consumed => {
                    self.consumed = n;
                    self.begin_chunk()
                }
                _ => failed(&op),
            },
            Phase::Fill => match outcome {
                Outcome::Ok => Phase::Splice(SpliceChunk::new(self.at.slot(&self.g), false)),
                _ => failed(&op),
            },
            Phase::Splice(mut s) => match s.handle(&outcome) {
                Progress::Pending => Phase::Splice(s),
                Progress::Complete if self.at.advance(&self.g) => self.begin_chunk(),
                Progress::Complete => Phase::Done,
                Progress::Failed(_) | Progress::Unexpected => failed(&op),
            },
            end => end,
        };
    }
}
