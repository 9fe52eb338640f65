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
//! Both policies are `zc-completion` (pipelined `MSG_ZEROCOPY` sends over the buffer's
//! slots, requests released by the labels a notification covers, wrap-aware, a copying
//! `send` on `ENOBUFS` with nothing outstanding) that waits for every request before
//! finishing (`Close::AfterLastNotification`); the shipped one labels its sends with
//! the skipping counter (`Labels::IndexSkipsZero`). The model needs a narrow counter
//! (`zc_id_bits = 2`) so that five sends wrap.

use super::{Bug, Tuning};
use crate::zc_completion::{Close, Knobs, Labels, ZcCompletion};
use crate::{BuildError, Catalogued, Entry, Feature};
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass};

/// Both variants wait for every request when closing, as `_sock_flush` does.
const FLUSHES: Knobs = Knobs {
    close: Close::AfterLastNotification,
    ..Knobs::DOCUMENTED
};

/// The shipped code: the counter skips 0 on wrap.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpdkZcIndexSkipsZero(ZcCompletion);

/// The fix: the counter wraps like the kernel's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpdkZcIndexFixed(ZcCompletion);

impl Catalogued for SpdkZcIndexSkipsZero {
    const NAME: &'static str = "spdk-zc-index-skips-zero";
    const SUMMARY: &'static str =
        "MSG_ZEROCOPY with an app counter that skips 0 on wrap; waits for all on close";
    const ORIGIN: &'static str = "spdk/spdk#3600 (module/sock/posix/posix.c, _sock_flush)";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(ZcCompletion::with(
            g,
            Knobs {
                labels: Labels::IndexSkipsZero,
                ..FLUSHES
            },
        )))
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
        Ok(Self(ZcCompletion::with(g, FLUSHES)))
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
    use crate::ledger::ZcLedger;
    use zcsafe_policy::Geometry;

    #[test]
    fn the_buggy_counter_falls_one_behind_after_the_wrap() {
        let g = Geometry {
            zc_id_bits: 2,
            ..Geometry::kernel(4096, 8192, 4096, 8 * 4096)
        };
        let mut kernel = ZcLedger::default();
        let mut skipping = ZcLedger::default();
        let labels = (0..6)
            .map(|_| {
                (
                    kernel.record_send(&g, 0),
                    skipping.record_send_skipping_last(&g, 0),
                )
            })
            .collect::<Vec<_>>();
        assert_eq!(
            labels,
            vec![(0, 0), (1, 1), (2, 2), (3, 0), (0, 1), (1, 2)],
            "(kernel, skipping) labels"
        );
    }
}
