//! spdk#3610 ("Premature completion of posix sock request when zero copy and threshold
//! set"): a request split across several `sendmsg` calls completed without waiting for
//! its zero-copy pieces when its last piece fell under the zero-copy size threshold.
//!
//! SPDK's posix sock layer (`_sock_flush` in `module/sock/posix/posix.c`) batches queued
//! requests' iovecs into `sendmsg` calls and passes `MSG_ZEROCOPY` only to a call of at
//! least `zerocopy_threshold` bytes. A large request can span several calls. Whether the
//! request waits for a notification was decided by the call that sent its last byte: if
//! that one went without `MSG_ZEROCOPY`, the request completed at once, although earlier
//! calls had sent its first bytes with `MSG_ZEROCOPY` and the kernel still referenced
//! those pages. The upper layer reused the buffers (the report's reproducer poisons them
//! after completion) and the wire carried the new bytes. Fix
//! (review.spdk.io/c/spdk/spdk/+/25645, linked from the issue): a request that had any
//! piece sent with `MSG_ZEROCOPY` waits for that piece's notification.
//!
//! Both policies are `zc-completion` with requests of two chunks
//! (`Pieces::SplitTailCopied`): the head with `MSG_ZEROCOPY`, the tail copied, as a
//! threshold of more than one chunk makes it. The shipped one does not track the head
//! (`head_tracked: false`); the kernel still numbers that send (`msg_zerocopy_realloc`),
//! so the labels of later sends stay right and only the head goes unwatched. Both wait
//! for every tracked request on close, as `_sock_flush` does.

use super::{Bug, Tuning};
use crate::zc_completion::{Close, Knobs, Pieces, ZcCompletion};
use crate::{BuildError, Catalogued, Entry, Feature};
use zcsafe_policy::{Expectation, Geometry, Profile, ReceiveWindow, TransportClass};

/// `_sock_flush`'s shape: split requests, every tracked one waited for on close.
const fn split(head_tracked: bool) -> Knobs {
    Knobs {
        close: Close::AfterLastNotification,
        pieces: Pieces::SplitTailCopied { head_tracked },
        ..Knobs::DOCUMENTED
    }
}

/// The shipped code: a request whose last `sendmsg` was copied completes at once.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpdkZcSplitTailCompletes(ZcCompletion);

/// The fix: a request with any zero-copy piece waits for its notification.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpdkZcSplitFixed(ZcCompletion);

impl Catalogued for SpdkZcSplitTailCompletes {
    const NAME: &'static str = "spdk-zc-split-tail-completes";
    const SUMMARY: &'static str =
        "MSG_ZEROCOPY head + copied tail per request; the request completes by its tail's flag";
    const ORIGIN: &'static str = "spdk/spdk#3610 (module/sock/posix/posix.c, _sock_flush)";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];
    // The head's pages are at risk only while its bytes wait unsent: local delivery
    // copies zero-copy frags on arrival (`skb_orphan_frags_rx`), as for `zc-naive`.
    const WINDOW: ReceiveWindow = ReceiveWindow::Kernel;

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        ZcCompletion::build(Self::NAME, g, split(false)).map(Self)
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::corrupt(
            "the request completes when its copied tail is queued; the head's pages are \
             still referenced by skbs not yet sent, and the next request writes them",
        )
    }
}

impl Catalogued for SpdkZcSplitFixed {
    const NAME: &'static str = "spdk-zc-split-fixed";
    const SUMMARY: &'static str =
        "MSG_ZEROCOPY head + copied tail per request; the request waits for its head's notification";
    const ORIGIN: &'static str = "spdk/spdk#3610, the fix (review.spdk.io 25645)";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];
    const WINDOW: ReceiveWindow = ReceiveWindow::Kernel;

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        ZcCompletion::build(Self::NAME, g, split(true)).map(Self)
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe(
            "the head's slot is written again only after a notification covers its send; \
             the copied tail is the kernel's own copy",
        )
    }
}

crate::delegate_policy!(SpdkZcSplitTailCompletes, SpdkZcSplitFixed);

pub fn bug() -> Bug {
    Bug {
        id: "spdk#3610",
        sources: &["spdk/spdk#3610"],
        what: "a request split over sendmsg calls whose copied last piece completes it: the zero-copy head is reused in flight",
        buggy: Entry::of::<SpdkZcSplitTailCompletes>(),
        fixed: Entry::of::<SpdkZcSplitFixed>(),
        tuning: Tuning::default(),
        transports: &[TransportClass::Local, TransportClass::Remote],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zcsafe_policy::{Op, Outcome, Policy};

    /// The ops of the first two requests, answering every call at once.
    fn first_ops(mut p: impl Policy) -> Vec<Op> {
        let mut ops = Vec::new();
        for _ in 0..7 {
            let op = p.poll_op();
            let outcome = match &op {
                Op::EnableZerocopy | Op::Fill { .. } => Outcome::Ok,
                Op::Send { buf, .. } => Outcome::Done(buf.len),
                Op::ReadErrqueue { .. } => Outcome::Zc(None),
                _ => break,
            };
            ops.push(op);
            p.handle(outcome);
        }
        ops
    }

    #[test]
    fn the_head_goes_zero_copy_the_tail_copied_and_only_the_fix_waits_for_the_head() {
        let g = Geometry::model_standard();
        let buggy = first_ops(SpdkZcSplitTailCompletes::new(&g).unwrap());
        let fixed = first_ops(SpdkZcSplitFixed::new(&g).unwrap());
        let send = |offset, zerocopy| Op::Send {
            buf: zcsafe_policy::Region::new(offset, 1),
            zerocopy,
        };
        assert_eq!(buggy[2], send(0, true), "{buggy:?}");
        assert_eq!(buggy[4], send(1, false), "{buggy:?}");
        // The next request's head: the shipped code writes slot 0 at once...
        assert!(
            matches!(buggy[5], Op::Fill { buf, .. } if buf.offset == 0),
            "{buggy:?}"
        );
        // ...the fix first reads the notification that covers the head.
        assert_eq!(fixed[5], Op::ReadErrqueue { block: true }, "{fixed:?}");
    }
}
