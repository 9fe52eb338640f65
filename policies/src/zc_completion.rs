//! `zc-completion`: `send(MSG_ZEROCOPY)`, and reuse a buffer slot only after an errqueue
//! notification covers every send made from it.
//!
//! The scheme of `Documentation/networking/msg_zerocopy.rst` and the kselftest
//! `msg_zerocopy.c`, done with the details that bite:
//! - notifications carry ranges `[lo, hi]` that the kernel coalesces
//!   (`skb_zerocopy_notify_extend`) and that may arrive out of order (retransmissions);
//! - the counter is 32 bits and wraps; ranges wrap with it ([`ZcLedger::release`]);
//! - `SO_EE_CODE_ZEROCOPY_COPIED` still releases the pages;
//! - `ENOBUFS` (optmem exhausted, `sock_omalloc` in `msg_zerocopy_alloc`): wait for a
//!   notification if any send is outstanding, otherwise none will ever come — send the
//!   rest with a plain copying `send()` instead of waiting.
//!
//! Slots are pipelined: with `S` slots, `S` chunks can be in flight.

use crate::ledger::ZcLedger;
use crate::steps::{feature_failed, unexpected, Cursor, Progress, SendAll};
use crate::{BuildError, Catalogued, Feature};
use zcsafe_policy::{
    Abort, Errno, Expectation, Geometry, Op, Outcome, Policy, Profile, TransportClass,
    ZcNotification,
};

/// How a notification releases outstanding sends. The correct rule and the common bug
/// differ in this one function, so both policies share everything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ReleaseRule {
    /// Release exactly the counters in `[lo, hi]`, wrap-aware.
    Covered,
    /// Release every counter `≤ hi`, as if completions came in order and never wrapped.
    UpToHi,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ZcCompletion {
    g: Geometry,
    rule: ReleaseRule,
    at: Cursor,
    ledger: ZcLedger,
    phase: Phase,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    Enable,
    /// Read notifications until nothing pins the current slot.
    Reclaim,
    Fill,
    Send(SendAll),
    /// `ENOBUFS` with sends outstanding: wait for one notification, then send the rest.
    AwaitAny(SendAll),
    Done,
    Failed(Abort),
}

impl ZcCompletion {
    pub(crate) fn with_rule(g: &Geometry, rule: ReleaseRule) -> Self {
        ZcCompletion {
            g: *g,
            rule,
            at: Cursor::default(),
            ledger: ZcLedger::default(),
            phase: Phase::Enable,
        }
    }

    fn release(&mut self, n: &ZcNotification) {
        match self.rule {
            ReleaseRule::Covered => self.ledger.release(&self.g, n),
            ReleaseRule::UpToHi => self.ledger.release_where(|id| id <= n.hi),
        }
    }

    fn begin_chunk(&self) -> Phase {
        if self.ledger.pins(self.at.slot_index(&self.g)) {
            Phase::Reclaim
        } else {
            Phase::Fill
        }
    }

    fn sending(&mut self, mut send: SendAll, outcome: &Outcome, op: &Op) -> Phase {
        let calls = send.calls;
        let progress = send.handle(outcome);
        if send.zerocopy && send.calls > calls {
            self.ledger
                .record_send(&self.g, self.at.slot_index(&self.g));
        }
        match progress {
            Progress::Pending => Phase::Send(send),
            Progress::Complete => self.next_chunk(),
            Progress::Failed(Errno::NoBufs) if !self.ledger.is_empty() => Phase::AwaitAny(send),
            // Nothing outstanding: no notification will ever free optmem for us.
            Progress::Failed(Errno::NoBufs) => Phase::Send(SendAll::new(send.left, false)),
            Progress::Failed(_) | Progress::Unexpected => Phase::Failed(unexpected(op, outcome)),
        }
    }

    fn next_chunk(&mut self) -> Phase {
        if self.at.advance(&self.g) {
            self.begin_chunk()
        } else {
            Phase::Done
        }
    }
}

impl Catalogued for ZcCompletion {
    const NAME: &'static str = "zc-completion";
    const SUMMARY: &'static str =
        "MSG_ZEROCOPY; reuse only after an errqueue notification covers the send";
    const ORIGIN: &'static str =
        "Documentation/networking/msg_zerocopy.rst; kselftest msg_zerocopy.c";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];
    const TWIN: Option<&'static str> = Some(crate::zc_naive::ZcNaive::NAME);

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self::with_rule(g, ReleaseRule::Covered))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe(
            "the notification comes only when the last skb referencing the pages is freed",
        )
    }
}

impl Policy for ZcCompletion {
    fn poll_op(&self) -> Op {
        match &self.phase {
            Phase::Enable => Op::EnableZerocopy,
            Phase::Reclaim | Phase::AwaitAny(_) => Op::ReadErrqueue { block: true },
            Phase::Fill => self.at.fill(&self.g),
            Phase::Send(s) => s.op(),
            Phase::Done => Op::Finish,
            Phase::Failed(a) => Op::Abort(a.clone()),
        }
    }

    fn handle(&mut self, outcome: Outcome) {
        let op = self.poll_op();
        self.phase = match (std::mem::replace(&mut self.phase, Phase::Done), &outcome) {
            (Phase::Enable, Outcome::Ok) => Phase::Fill,
            (Phase::Enable, Outcome::Err(e)) => Phase::Failed(feature_failed("SO_ZEROCOPY", *e)),
            (Phase::Reclaim, Outcome::Zc(n)) => {
                if let Some(n) = n {
                    self.release(n);
                }
                self.begin_chunk()
            }
            (Phase::AwaitAny(send), Outcome::Zc(n)) => {
                if let Some(n) = n {
                    self.release(n);
                }
                Phase::Send(send)
            }
            (Phase::Fill, Outcome::Ok) => Phase::Send(SendAll::new(self.at.slot(&self.g), true)),
            (Phase::Send(send), _) => self.sending(send, &outcome, &op),
            (Phase::Done, _) => Phase::Done,
            (Phase::Failed(a), _) => Phase::Failed(a),
            _ => Phase::Failed(unexpected(&op, &outcome)),
        };
    }
}
