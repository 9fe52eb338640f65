//! grpc#30320: after `ENOBUFS` from `sendmsg(MSG_ZEROCOPY)`, the writer sleeps until a
//! zero-copy completion frees optmem — even when none of its sends is outstanding, so
//! no completion can ever come and the write hangs.
//!
//! `ENOBUFS` comes from `msg_zerocopy_alloc` → `sock_omalloc`, which charges the
//! notification to the socket's `sk_omem_alloc` against `sysctl_optmem_max`; other users
//! of the same budget (socket options, filters, queued error-queue entries) can use it up.
//! gRPC's TCP zero-copy writer (`tcp_posix.cc`) then waited for the error queue. The fix
//! only waits when a zero-copy send is actually outstanding, and otherwise retries the
//! send as a plain copy.
//!
//! The model makes optmem "already used by something else" with `zc_optmem = 0`: every
//! new notification fails with `ENOBUFS`.

use super::{Bug, Tuning};
use crate::ledger::ZcLedger;
use crate::steps::{feature_failed, unexpected, Cursor, Progress, SendAll};
use crate::{BuildError, Catalogued, Entry, Feature};
use zcsafe_policy::{
    Abort, Errno, Expectation, Geometry, Op, Outcome, Policy, Profile, TransportClass, Verdict,
};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ZcWriter {
    g: Geometry,
    /// On `ENOBUFS`, wait only if something is outstanding (the fix).
    checks_outstanding: bool,
    at: Cursor,
    ledger: ZcLedger,
    phase: Phase,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    Enable,
    Reclaim,
    Fill,
    Send(SendAll),
    /// Sleep until the error queue has a completion, then send the rest.
    SleepForCompletion(SendAll),
    Done,
    Failed(Abort),
}

impl ZcWriter {
    fn new(g: &Geometry, checks_outstanding: bool) -> Self {
        ZcWriter {
            g: *g,
            checks_outstanding,
            at: Cursor::default(),
            ledger: ZcLedger::default(),
            phase: Phase::Enable,
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

impl Policy for ZcWriter {
    fn poll_op(&self) -> Op {
        match &self.phase {
            Phase::Enable => Op::EnableZerocopy,
            Phase::Reclaim | Phase::SleepForCompletion(_) => Op::ReadErrqueue { block: true },
            Phase::Fill => self.at.fill(&self.g),
            Phase::Send(s) => s.op(),
            Phase::Done => Op::Finish,
            Phase::Failed(a) => Op::Abort(a.clone()),
        }
    }

    fn handle(&mut self, outcome: Outcome) {
        let op = self.poll_op();
        let g = self.g;
        self.phase = match (std::mem::replace(&mut self.phase, Phase::Done), &outcome) {
            (Phase::Enable, Outcome::Ok) => Phase::Fill,
            (Phase::Enable, Outcome::Err(e)) => Phase::Failed(feature_failed("SO_ZEROCOPY", *e)),
            (Phase::Reclaim, Outcome::Zc(n)) => {
                if let Some(n) = n {
                    self.ledger.release(&g, n);
                }
                self.begin_chunk()
            }
            (Phase::SleepForCompletion(send), Outcome::Zc(n)) => {
                if let Some(n) = n {
                    self.ledger.release(&g, n);
                }
                Phase::Send(send)
            }
            (Phase::Fill, Outcome::Ok) => Phase::Send(SendAll::new(self.at.slot(&g), true)),
            (Phase::Send(mut send), _) => {
                let calls = send.calls;
                let progress = send.handle(&outcome);
                if send.zerocopy && send.calls > calls {
                    self.ledger.record_send(&g, self.at.slot_index(&g));
                }
                match progress {
                    Progress::Pending => Phase::Send(send),
                    Progress::Complete if self.at.advance(&g) => self.begin_chunk(),
                    Progress::Complete => Phase::Done,
                    Progress::Failed(Errno::NoBufs)
                        if self.checks_outstanding && self.ledger.is_empty() =>
                    {
                        Phase::Send(SendAll::new(send.left, false))
                    }
                    Progress::Failed(Errno::NoBufs) => Phase::SleepForCompletion(send),
                    Progress::Failed(_) | Progress::Unexpected => {
                        Phase::Failed(unexpected(&op, &outcome))
                    }
                }
            }
            (Phase::Done, _) => Phase::Done,
            (Phase::Failed(a), _) => Phase::Failed(a),
            _ => Phase::Failed(unexpected(&op, &outcome)),
        };
    }
}

/// The shipped writer: always sleeps for a completion after `ENOBUFS`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GrpcEnobufsSleep(ZcWriter);

/// The fix: sleeps only when a zero-copy send is outstanding, else copies.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GrpcEnobufsFixed(ZcWriter);

impl Catalogued for GrpcEnobufsSleep {
    const NAME: &'static str = "grpc-enobufs-sleep";
    const SUMMARY: &'static str =
        "MSG_ZEROCOPY writer that sleeps for a completion after ENOBUFS, outstanding or not";
    const ORIGIN: &'static str = "grpc/grpc#30320 (tcp_posix.cc zero-copy writer)";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(ZcWriter::new(g, false)))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::new(
            Verdict::Stuck,
            "with nothing outstanding no completion will ever arrive to wake the writer",
        )
    }
}

impl Catalogued for GrpcEnobufsFixed {
    const NAME: &'static str = "grpc-enobufs-fixed";
    const SUMMARY: &'static str =
        "MSG_ZEROCOPY writer that waits after ENOBUFS only with sends outstanding, else copies";
    const ORIGIN: &'static str = "grpc/grpc#30320, the fix";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(ZcWriter::new(g, true)))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe("it waits only for completions that will come, and copies otherwise")
    }
}

crate::delegate_policy!(GrpcEnobufsSleep, GrpcEnobufsFixed);

pub fn bug() -> Bug {
    Bug {
        id: "grpc#30320",
        sources: &["grpc/grpc#30320"],
        what: "after ENOBUFS the writer sleeps for a zero-copy completion although none is outstanding",
        buggy: Entry::of::<GrpcEnobufsSleep>(),
        fixed: Entry::of::<GrpcEnobufsFixed>(),
        tuning: Tuning {
            zc_optmem: Some(0),
            ..Tuning::default()
        },
        transports: &[TransportClass::Local, TransportClass::Remote],
    }
}
