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
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass, Verdict};

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

    /// What the rule gets wrong depends on how far past the wrap the stream runs, with
    /// `S` slots and a `2^bits` counter (and a window that lets every slot's send be
    /// outstanding, as the derived scenario does):
    /// - **corrupt** from `2^bits + S + 1` chunks: a send after the wrap has a counter
    ///   below an older notification's `hi`, is released while in flight, and its slot
    ///   is refilled `S` chunks later. Out-of-order notifications alone are harmless for
    ///   TCP: a send completes only once a cumulative ACK covers it, and so every older
    ///   send's data too.
    /// - **stuck** from `max(2, 2^bits - S + 1) + S + 1` chunks (`bits >= 2`): a range
    ///   that wraps (`hi < lo`) releases only the counters `<= hi`, so `lo ..= 2^bits - 1`
    ///   stay pinned forever and the next fill of their slot waits for a notification
    ///   that never comes. The kernel makes such ranges: `__msg_zerocopy_callback`
    ///   computes `hi = id + len - 1` in `u32` (wrapping), and `skb_zerocopy_notify_extend`
    ///   merges adjacent ranges across the wrap while the sum stays below `2^32` (the
    ///   model: below `2^bits`, so a range spans at most `2^bits - 1` counters and the
    ///   earliest one to wrap starts at counter 2). A 1-bit counter never wraps a range.
    /// - **safe** below both: the counter wraps too late for either to happen.
    fn expect_for(transport: TransportClass, profile: &Profile, g: &Geometry) -> Expectation {
        let wrap = 1u64 << g.zc_id_bits;
        let (slots, chunks) = (g.slots(), g.chunks());
        if chunks >= wrap.saturating_add(slots).saturating_add(1) {
            return Self::expect(transport, profile);
        }
        let stranded = 2u64.max((wrap + 1).saturating_sub(slots));
        if wrap >= 4 && chunks > stranded + slots {
            return Expectation::new(
                Verdict::Stuck,
                "a notification range wraps (hi < lo, __msg_zerocopy_callback's u32 hi): \
                 releasing only counters <= hi leaves lo.. pinned forever, and refilling \
                 their slot waits for a notification that never comes",
            );
        }
        Expectation::safe(
            "the zerocopy counter wraps too late in this stream for the rule to release a send early or strand one",
        )
    }
}

crate::delegate_policy!(ZcInorderTracker);
