//! `zc-inorder-tracker`: the common bug — on each notification, release every send whose
//! counter is `≤ hi`.
//!
//! Seen in many `MSG_ZEROCOPY` users (netty#17238 among them): keep outstanding sends in
//! submission order and treat a notification as "everything up to `hi` is done". That is
//! wrong twice: `msg_zerocopy.rst` says notifications can arrive out of order, and the
//! 32-bit counter wraps, after which a *newer* send has a *smaller* counter than `hi`
//! and is released while the kernel still reads its pages.
//!
//! Everything else is `zc-completion`; only the release rule differs.

use crate::zc_completion::{ReleaseRule, ZcCompletion};
use crate::{BuildError, Catalogued};
use zcsafe_policy::{Expectation, Geometry, Op, Outcome, Policy, Profile, TransportClass};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ZcInorderTracker(ZcCompletion);

impl Catalogued for ZcInorderTracker {
    const NAME: &'static str = "zc-inorder-tracker";
    const SUMMARY: &'static str =
        "MSG_ZEROCOPY; on each notification releases every send <= hi (assumes order, no wrap)";
    const ORIGIN: &'static str = "common user-space bug, e.g. netty#17238";

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(ZcInorderTracker(ZcCompletion::with_rule(
            g,
            ReleaseRule::UpToHi,
        )))
    }

    fn expect(_: TransportClass, profile: &Profile) -> Expectation {
        if !profile.msg_zerocopy {
            return Expectation::unsupported("this kernel has no MSG_ZEROCOPY for TCP");
        }
        Expectation::corrupt(
            "after the counter wraps, a newer send has a counter below hi and is released early",
        )
    }
}

impl Policy for ZcInorderTracker {
    fn poll_op(&self) -> Op {
        self.0.poll_op()
    }

    fn handle(&mut self, outcome: Outcome) {
        self.0.handle(outcome)
    }
}
