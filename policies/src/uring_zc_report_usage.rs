//! `uring-zc-report-usage`: io_uring `SEND_ZC` with `IORING_SEND_ZC_REPORT_USAGE`; every
//! notification frees its slot, and one that says the kernel copied turns the sender to
//! plain `send()`.
//!
//! With the flag, `io_send_zc_prep` sets the notif's `zc_report`; the skb completion
//! callback (`io_tx_ubuf_complete`, 6.1: `io_uring_tx_zerocopy_callback`) records
//! `zc_used` for an skb freed after zero-copy transmission and `zc_copied` for one whose
//! frags were copied (`skb_copy_ubufs`, e.g. local delivery's `skb_orphan_frags_rx`);
//! `io_notif_tw_complete` (6.1: `__io_notif_complete_tw`) then ORs
//! `IORING_NOTIF_USAGE_ZC_COPIED` (bit 31) into the NOTIF's `res` when
//! `zc_copied || !zc_used`. The NOTIF's `res` is a usage report, not a result: read
//! through the flags first it is 0 or the bit, never an errno. The bit says zero copy
//! bought nothing on this path (pinning pages and waiting for a second CQE to then copy
//! anyway), so the remaining chunks go with a copying `send()`, which needs no
//! notification. Slots a NOTIF still holds are not rewritten until it comes.
//!
//! This is `uring-zc-notif` with `Usage::FallBackToCopy`; reading the same `res` as an
//! errno is the shipped bug `bugs::io_uring_354`.

use crate::uring_zc_notif::{Knobs, UringZcNotif, Usage};
use crate::{BuildError, Catalogued, Feature};
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass};

/// `SEND_ZC` until a NOTIF reports COPIED, then `send()`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UringZcReportUsage(UringZcNotif);

impl Catalogued for UringZcReportUsage {
    const NAME: &'static str = "uring-zc-report-usage";
    const SUMMARY: &'static str =
        "io_uring SEND_ZC with REPORT_USAGE: reuse after the NOTIF; plain send() once it says COPIED";
    const ORIGIN: &'static str =
        "io_uring_enter(2) IORING_SEND_ZC_REPORT_USAGE, IORING_NOTIF_USAGE_ZC_COPIED";
    const NEEDS: &'static [Feature] = &[Feature::UringSendZc];
    const TWIN: Option<&'static str> = Some(crate::uring_zc_naive::UringZcNaive::NAME);

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(UringZcNotif::with(
            g,
            Knobs {
                usage: Usage::FallBackToCopy,
                ..Knobs::DOCUMENTED
            },
        )))
    }

    fn expect(transport: TransportClass, _: &Profile) -> Expectation {
        match transport {
            TransportClass::Local => Expectation::safe(
                "local delivery copies the frags (skb_orphan_frags_rx), so the NOTIF says \
                 COPIED; it still frees its slot, and the copying send() that follows \
                 needs no notification",
            ),
            TransportClass::Remote => Expectation::safe(
                "the NIC's TX completion drops the last page reference; the NOTIF (usage 0) \
                 frees the slot",
            ),
        }
    }
}

crate::delegate_policy!(UringZcReportUsage);
