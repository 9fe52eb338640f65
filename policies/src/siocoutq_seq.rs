//! `siocoutq-seq`: pipelined reuse by sequence number.
//!
//! Instead of draining to zero, compute `acked = written - SIOCOUTQ` and reuse only the
//! buffer slots whose bytes all lie below `acked`. With `S` slots, before filling chunk
//! `n` the chunk `n - S` (same slot) must be acknowledged:
//! `acked ≥ (n - S + 1)·chunk`, and since `written = n·chunk` here, that is simply
//! `SIOCOUTQ ≤ (S - 1)·chunk`.
//!
//! Same assumption as `siocoutq-drain` (acknowledged = unreferenced), without the stall.

use crate::steps::{unexpected, Cursor, Drain, Progress, SpliceChunk};
use crate::{expect_after_ack, BuildError, Catalogued};
use zcsafe_policy::{Abort, Expectation, Geometry, Op, Outcome, Policy, Profile, TransportClass};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SiocoutqSeq {
    g: Geometry,
    at: Cursor,
    phase: Phase,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    /// Wait until the slot's previous chunk is acknowledged.
    Reclaim(Drain),
    Fill,
    Splice(SpliceChunk),
    Done,
    Failed(Abort),
}

impl SiocoutqSeq {
    /// The phase that starts the current chunk.
    fn begin_chunk(&self) -> Phase {
        let slots = self.g.slots();
        if self.at.chunk < slots {
            Phase::Fill
        } else {
            Phase::Reclaim(Drain {
                target: (slots - 1) * self.g.chunk,
            })
        }
    }
}

impl Catalogued for SiocoutqSeq {
    const NAME: &'static str = "siocoutq-seq";
    const SUMMARY: &'static str =
        "pipelined: acked = written - SIOCOUTQ; reuse only slots wholly below it";
    const ORIGIN: &'static str = "sequence-number variant of the vmsplice-and-TCP answer's fix";
    const TWIN: Option<&'static str> = Some(crate::siocoutq_drain::SiocoutqDrain::NAME);

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(SiocoutqSeq {
            g: *g,
            at: Cursor::default(),
            phase: Phase::Fill,
        })
    }

    fn expect(transport: TransportClass, profile: &Profile) -> Expectation {
        expect_after_ack(profile.vmsplice_maps, transport)
    }
}

impl Policy for SiocoutqSeq {
    fn poll_op(&self) -> Op {
        match &self.phase {
            Phase::Reclaim(d) => d.op(),
            Phase::Fill => self.at.fill(&self.g),
            Phase::Splice(s) => s.op(),
            Phase::Done => Op::Finish,
            Phase::Failed(a) => Op::Abort(a.clone()),
        }
    }

    fn handle(&mut self, outcome: Outcome) {
        let op = self.poll_op();
        let failed = || Phase::Failed(unexpected(&op, &outcome));
        self.phase = match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Reclaim(mut d) => match d.handle(&outcome) {
                Progress::Pending => Phase::Reclaim(d),
                Progress::Complete => Phase::Fill,
                Progress::Failed(_) | Progress::Unexpected => failed(),
            },
            Phase::Fill => match outcome {
                Outcome::Ok => Phase::Splice(SpliceChunk::new(self.at.slot(&self.g), false)),
                _ => failed(),
            },
            Phase::Splice(mut s) => match s.handle(&outcome) {
                Progress::Pending => Phase::Splice(s),
                Progress::Complete if self.at.advance(&self.g) => self.begin_chunk(),
                Progress::Complete => Phase::Done,
                Progress::Failed(_) | Progress::Unexpected => failed(),
            },
            end => end,
        };
    }
}
