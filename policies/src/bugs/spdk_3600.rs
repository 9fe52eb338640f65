//! spdk#3600 ("Missed zcopy completions"): an application send counter that skips 0 on
//! wrap-around, so one notification per wrap finds no request and a buffer leaks.
//!
//! SPDK's posix sock layer (`_sock_flush` in `module/sock/posix/posix.c`) numbers its
//! `MSG_ZEROCOPY` sends itself, with `sendmsg_idx` starting at 1 and
//! `req->internal.offset = sendmsg_idx - 1`, so that the label equals the kernel's
//! `sk_zckey`. On reaching `UINT32_MAX` it jumped back to 1 ("sendmsg_idx should not be
//! zero"). The kernel's counter does not skip: from then on every label is one behind the
//! kernel's id, the notification for `UINT32_MAX` matches nothing, and each request is
//! completed by its successor's notification. The last request of a flush never
//! completes: closing the socket waits for it forever (the report: one buffer lost per
//! wrap). Fix (merged 2025): increment with plain unsigned wrap-around.
//!
//! Both policies pipeline `MSG_ZEROCOPY` sends over the buffer's slots, release requests
//! by the labels a notification covers (wrap-aware), fall back to a copying `send` on
//! `ENOBUFS` with nothing outstanding, and wait for every request before finishing.
//! The model needs a narrow counter (`zc_id_bits = 2`) so that five sends wrap.

use super::{Bug, Tuning};
use crate::steps::{feature_failed, unexpected, Cursor, Progress, SendAll};
use crate::{BuildError, Catalogued, Entry, Feature};
use zcsafe_policy::{
    Abort, Errno, Expectation, Geometry, Op, Outcome, Policy, Profile, TransportClass,
    ZcNotification,
};

/// How the application advances its send counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Counter {
    /// `if (idx == MAX) idx = 1; else idx++;` — the shipped code.
    SkipsZero,
    /// `idx++` with unsigned wrap-around — the fix.
    Wraps,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SpdkZc {
    g: Geometry,
    counter: Counter,
    at: Cursor,
    /// `sendmsg_idx`: the label of the next send is `idx - 1`.
    idx: u32,
    /// `(label, slot)` of requests waiting for their notification.
    pending: Vec<(u32, u16)>,
    phase: Phase,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    Enable,
    Reclaim,
    Fill,
    Send(SendAll),
    AwaitAny(SendAll),
    /// Closing: wait until every request has completed.
    Flush,
    Done,
    Failed(Abort),
}

impl SpdkZc {
    fn new(g: &Geometry, counter: Counter) -> Self {
        SpdkZc {
            g: *g,
            counter,
            at: Cursor::default(),
            idx: 1,
            pending: Vec::new(),
            phase: Phase::Enable,
        }
    }

    fn max(&self) -> u32 {
        ((1u64 << self.g.zc_id_bits) - 1) as u32
    }

    fn label_send(&mut self) {
        let label = if self.idx == 0 {
            self.max()
        } else {
            self.idx - 1
        };
        self.pending.push((label, self.at.slot_index(&self.g)));
        self.idx = match self.counter {
            Counter::SkipsZero if self.idx == self.max() => 1,
            _ => self.g.zc_next(self.idx),
        };
    }

    fn release(&mut self, n: &ZcNotification) {
        let g = self.g;
        self.pending.retain(|&(l, _)| !g.zc_in_range(l, n.lo, n.hi));
    }

    fn begin_chunk(&self) -> Phase {
        let slot = self.at.slot_index(&self.g);
        if self.pending.iter().any(|&(_, s)| s == slot) {
            Phase::Reclaim
        } else {
            Phase::Fill
        }
    }

    fn after_chunk(&mut self) -> Phase {
        if self.at.advance(&self.g) {
            self.begin_chunk()
        } else if self.pending.is_empty() {
            Phase::Done
        } else {
            Phase::Flush
        }
    }

    fn sending(&mut self, mut send: SendAll, outcome: &Outcome, op: &Op) -> Phase {
        let calls = send.calls;
        let progress = send.handle(outcome);
        if send.zerocopy && send.calls > calls {
            self.label_send();
        }
        match progress {
            Progress::Pending => Phase::Send(send),
            Progress::Complete => self.after_chunk(),
            Progress::Failed(Errno::NoBufs) if !self.pending.is_empty() => Phase::AwaitAny(send),
            Progress::Failed(Errno::NoBufs) => Phase::Send(SendAll::new(send.left, false)),
            Progress::Failed(_) | Progress::Unexpected => Phase::Failed(unexpected(op, outcome)),
        }
    }
}

impl Policy for SpdkZc {
    fn poll_op(&self) -> Op {
        match &self.phase {
            Phase::Enable => Op::EnableZerocopy,
            Phase::Reclaim | Phase::AwaitAny(_) | Phase::Flush => Op::ReadErrqueue { block: true },
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
            (Phase::Flush, Outcome::Zc(n)) => {
                if let Some(n) = n {
                    self.release(n);
                }
                if self.pending.is_empty() {
                    Phase::Done
                } else {
                    Phase::Flush
                }
            }
            (Phase::Fill, Outcome::Ok) => Phase::Send(SendAll::new(self.at.slot(&self.g), true)),
            (Phase::Send(send), _) => self.sending(send, &outcome, &op),
            (Phase::Done, _) => Phase::Done,
            (Phase::Failed(a), _) => Phase::Failed(a),
            _ => Phase::Failed(unexpected(&op, &outcome)),
        };
    }
}

/// The shipped code: the counter skips 0 on wrap.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpdkZcIndexSkipsZero(SpdkZc);

/// The fix: the counter wraps like the kernel's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpdkZcIndexFixed(SpdkZc);

impl Catalogued for SpdkZcIndexSkipsZero {
    const NAME: &'static str = "spdk-zc-index-skips-zero";
    const SUMMARY: &'static str =
        "MSG_ZEROCOPY with an app counter that skips 0 on wrap; waits for all on close";
    const ORIGIN: &'static str = "spdk/spdk#3600 (module/sock/posix/posix.c, _sock_flush)";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(SpdkZc::new(g, Counter::SkipsZero)))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::new(
            zcsafe_policy::Verdict::Stuck,
            "after the wrap the notification for the skipped id matches no request, so the \
             last request never completes and the close waits forever",
        )
    }
}

impl Catalogued for SpdkZcIndexFixed {
    const NAME: &'static str = "spdk-zc-index-fixed";
    const SUMMARY: &'static str =
        "MSG_ZEROCOPY with an app counter that wraps like sk_zckey; waits for all on close";
    const ORIGIN: &'static str = "spdk/spdk#3600, the merged fix";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(SpdkZc::new(g, Counter::Wraps)))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe(
            "labels equal the kernel's ids, so every notification completes its own requests",
        )
    }
}

crate::delegate_policy!(SpdkZcIndexSkipsZero, SpdkZcIndexFixed);

pub fn bug() -> Bug {
    Bug {
        id: "spdk#3600",
        sources: &["spdk/spdk#3600"],
        what: "send counter skips 0 on u32 wrap: one notification per wrap is lost, a request never completes",
        buggy: Entry::of::<SpdkZcIndexSkipsZero>(),
        fixed: Entry::of::<SpdkZcIndexFixed>(),
        tuning: Tuning {
            zc_id_bits: Some(2),
            ..Tuning::default()
        },
        transports: &[TransportClass::Local, TransportClass::Remote],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buggy_counter_falls_one_behind_after_the_wrap() {
        let g = Geometry {
            zc_id_bits: 2,
            ..Geometry::kernel(4096, 8192, 4096, 8 * 4096)
        };
        let labels = |c| {
            let mut p = SpdkZc::new(&g, c);
            for _ in 0..6 {
                p.label_send();
            }
            p.pending.iter().map(|x| x.0).collect::<Vec<_>>()
        };
        assert_eq!(labels(Counter::Wraps), vec![0, 1, 2, 3, 0, 1]);
        assert_eq!(labels(Counter::SkipsZero), vec![0, 1, 2, 0, 1, 2]);
    }
}
