//! netty#17238: `MSG_ZEROCOPY` notifications assumed to arrive in submission order.
//!
//! The tracker keeps outstanding sends in a queue and, on a notification `[lo, hi]`,
//! completes everything up to `hi`. `Documentation/networking/msg_zerocopy.rst` says
//! completions may arrive out of order, and the 32-bit counter wraps: a notification for
//! older sends (`[1, 1]`) can be read after a newer send got a smaller, wrapped id
//! (`0`), and "everything up to 1" then frees the newer send's buffer while TCP still
//! holds it. The fix completes exactly the ids in `[lo, hi]`, wrap-aware.
//!
//! This is the catalogue's `zc-inorder-tracker` / `zc-completion` pair under the bug's
//! own name. (With a wide counter the model finds no harmful reordering: a spurious
//! retransmission can complete send 0 after send 1, but the peer drops that duplicate,
//! so the early reuse never reaches the receiver.)

use super::{Bug, Tuning};
use crate::zc_completion::ZcCompletion;
use crate::zc_inorder_tracker::ZcInorderTracker;
use crate::{BuildError, Catalogued, Entry, Feature};
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass};

/// Completes every send `≤ hi` on each notification.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NettyZcInorder(ZcInorderTracker);

/// Completes exactly the sends a notification covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NettyZcInorderFixed(ZcCompletion);

impl Catalogued for NettyZcInorder {
    const NAME: &'static str = "netty-zc-inorder";
    const SUMMARY: &'static str =
        "MSG_ZEROCOPY tracker that completes every send <= hi (assumes in-order notifications)";
    const ORIGIN: &'static str = "netty/netty#17238";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(ZcInorderTracker::new(g)?))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::corrupt(
            "a notification for older sends, read after a newer send got a wrapped (smaller) \
             id, frees the newer send's buffer too",
        )
    }
}

impl Catalogued for NettyZcInorderFixed {
    const NAME: &'static str = "netty-zc-inorder-fixed";
    const SUMMARY: &'static str = "MSG_ZEROCOPY tracker that completes exactly the ids in [lo, hi]";
    const ORIGIN: &'static str = "netty/netty#17238, the fix";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(ZcCompletion::new(g)?))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe("a notification frees only the sends it names, in any order")
    }
}

crate::delegate_policy!(NettyZcInorder, NettyZcInorderFixed);

pub fn bug() -> Bug {
    Bug {
        id: "netty#17238",
        sources: &["netty/netty#17238"],
        what: "MSG_ZEROCOPY notifications assumed to arrive in submission order",
        buggy: Entry::of::<NettyZcInorder>(),
        fixed: Entry::of::<NettyZcInorderFixed>(),
        tuning: Tuning::default(),
        transports: &[TransportClass::Local, TransportClass::Remote],
    }
}
