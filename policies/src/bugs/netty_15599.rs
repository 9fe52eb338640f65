//! netty#15599, liburing#1462: code that assumes a failed or cancelled io_uring
//! `SEND_ZC` posts no notification CQE.
//!
//! The kernel does post one: a `SEND_ZC` owns its notif from `io_send_zc_prep` on;
//! when it fails, `io_sendrecv_fail` sets `IORING_CQE_F_MORE` on its CQE and
//! `io_send_zc_cleanup` flushes the notif (`io_notif_flush`), which posts the
//! `IORING_CQE_F_NOTIF` CQE later, from task work. Netty's io_uring transport released
//! the buffer on the failure and then released "it" again on the stray notification —
//! by then the slot carried a newer send, whose pages the kernel still held. The
//! liburing report asks the same question from the API side (a notification after an
//! error). The fix: count a notification for every CQE with `F_MORE`, failed or not.
//!
//! Both policies tag each `SEND_ZC` with its buffer slot (as a pooled-buffer id would
//! be), wait for the send CQE before the next submission, retry a failed send, and reuse
//! a slot when the notifications they expect for it have arrived. The model lets one
//! `SEND_ZC` fail (`uring_failures = 1`).

use super::{Bug, Tuning};
use crate::steps::{unexpected, Cursor};
use crate::uring::{self, NotSent, Notifs, Phase};
use crate::{BuildError, Catalogued, Entry, Feature};
use zcsafe_policy::{Cqe, Expectation, Geometry, Op, Outcome, Policy, Profile, TransportClass};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SendZcRetry {
    g: Geometry,
    /// A failed send's `F_MORE` counts as a notification to come (the fix).
    counts_failed_notif: bool,
    at: Cursor,
    /// Notifications still expected, per slot.
    expected: Notifs,
    phase: Phase,
}

impl SendZcRetry {
    fn new(g: &Geometry, counts_failed_notif: bool) -> Self {
        SendZcRetry {
            g: *g,
            counts_failed_notif,
            at: Cursor::default(),
            expected: Notifs::new(g),
            phase: Phase::Fill,
        }
    }

    fn slot(&self) -> usize {
        self.at.slot_index(&self.g) as usize
    }

    fn begin_chunk(&self) -> Phase {
        if self.expected.pins(self.slot()) {
            Phase::Reclaim
        } else {
            Phase::Fill
        }
    }

    /// A CQE while waiting for the current send's CQE.
    fn send_cqe(&mut self, c: &Cqe) -> Phase {
        let slot = self.slot();
        match uring::sent(c, &self.g) {
            Err(NotSent::Failed(_)) => {
                if self.counts_failed_notif && c.more {
                    self.expected.expect(slot);
                }
                // The data did not go out: send the same slot again.
                return Phase::Submit;
            }
            Err(short) => return Phase::Failed(short.abort()),
            Ok(()) => {}
        }
        if c.more {
            self.expected.expect(slot);
        }
        if self.at.advance(&self.g) {
            self.begin_chunk()
        } else {
            Phase::Done
        }
    }
}

impl Policy for SendZcRetry {
    fn poll_op(&self) -> Op {
        self.phase.op(&self.g, &self.at, self.slot() as u32)
    }

    fn handle(&mut self, outcome: Outcome) {
        let op = self.poll_op();
        self.phase = match (std::mem::replace(&mut self.phase, Phase::Done), &outcome) {
            (Phase::Fill, Outcome::Ok) => Phase::Submit,
            (Phase::Submit, Outcome::Ok) => Phase::AwaitSend,
            (phase @ (Phase::Reclaim | Phase::AwaitSend), Outcome::Cqe(c)) if c.notif => {
                self.expected.arrived(self.expected.slot_of(c.user_data));
                if phase == Phase::Reclaim {
                    self.begin_chunk()
                } else {
                    phase
                }
            }
            (Phase::AwaitSend, Outcome::Cqe(c)) => self.send_cqe(c),
            (Phase::Done, _) => Phase::Done,
            (Phase::Failed(a), _) => Phase::Failed(a),
            _ => Phase::Failed(unexpected(&op, &outcome)),
        };
    }
}

/// The shipped code: a failed send's notification is not expected.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NettySendzcFailNoNotif(SendZcRetry);

/// The fix: every `F_MORE` promises a notification.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NettySendzcFailFixed(SendZcRetry);

impl Catalogued for NettySendzcFailNoNotif {
    const NAME: &'static str = "netty-sendzc-fail-no-notif";
    const SUMMARY: &'static str =
        "io_uring SEND_ZC; a failed send is assumed to post no NOTIF, so a stray NOTIF frees a busy slot";
    const ORIGIN: &'static str = "netty/netty#15599, axboe/liburing#1462";
    const NEEDS: &'static [Feature] = &[Feature::UringSendZc];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(SendZcRetry::new(g, false)))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::corrupt(
            "the failed send's late NOTIF is taken for the retry's, and the slot is rewritten \
             while the retry's pages are queued",
        )
    }
}

impl Catalogued for NettySendzcFailFixed {
    const NAME: &'static str = "netty-sendzc-fail-fixed";
    const SUMMARY: &'static str =
        "io_uring SEND_ZC; every CQE with F_MORE, failed or not, promises one NOTIF";
    const ORIGIN: &'static str = "netty/netty#15599, the fix";
    const NEEDS: &'static [Feature] = &[Feature::UringSendZc];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(SendZcRetry::new(g, true)))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe(
            "a slot is reused only when every notification promised for it has arrived",
        )
    }
}

crate::delegate_policy!(NettySendzcFailNoNotif, NettySendzcFailFixed);

pub fn bug() -> Bug {
    Bug {
        id: "netty#15599",
        sources: &["netty/netty#15599", "axboe/liburing#1462"],
        what: "a failed or cancelled SEND_ZC is assumed to post no NOTIF",
        buggy: Entry::of::<NettySendzcFailNoNotif>(),
        fixed: Entry::of::<NettySendzcFailFixed>(),
        tuning: Tuning {
            uring_failures: 1,
            ..Tuning::default()
        },
        transports: &[TransportClass::Local, TransportClass::Remote],
    }
}
