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

use crate::zc_completion::{Knobs, ReleaseRule, ZcCompletion};
use crate::{BuildError, Catalogued, Feature};
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ZcInorderTracker(ZcCompletion);

impl Catalogued for ZcInorderTracker {
    const NAME: &'static str = "zc-inorder-tracker";
    const SUMMARY: &'static str =
        "MSG_ZEROCOPY; on each notification releases every send <= hi (assumes order, no wrap)";
    const ORIGIN: &'static str = "common user-space bug, e.g. netty#17238";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(ZcInorderTracker(ZcCompletion::with(
            g,
            Knobs {
                release: ReleaseRule::UpToHi,
                ..Knobs::DOCUMENTED
            },
        )))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::corrupt(
            "after the counter wraps, a newer send has a counter below hi and is released early",
        )
    }

    /// The bug needs a wrapped send still in flight when an older notification arrives,
    /// and then a refill of its slot: `2^bits + slots + 1` chunks. Out-of-order
    /// notifications alone are harmless for TCP: a send completes only once a
    /// cumulative ACK covers it, and so every older send's data too.
    fn expect_for(transport: TransportClass, profile: &Profile, g: &Geometry) -> Expectation {
        let needed = (1u64 << g.zc_id_bits)
            .saturating_add(g.slots())
            .saturating_add(1);
        if g.chunks() < needed {
            return Expectation::safe(
                "the zerocopy counter never wraps within this stream, so the release rule is never wrong",
            );
        }
        Self::expect(transport, profile)
    }
}

crate::delegate_policy!(ZcInorderTracker);
