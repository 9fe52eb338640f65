//! tokio-rs/io-uring#354 ("ERRNO is -2147483648"): an application that asked for
//! `IORING_SEND_ZC_REPORT_USAGE` read every CQE's `res` as "bytes or `-errno`" before
//! looking at the flags, so a notification carrying `IORING_NOTIF_USAGE_ZC_COPIED`
//! (bit 31: `res = -2147483648` as an `i32`) came out as an error.
//!
//! The code the report links (rpcpool/shredstream-proxy, `proxy/src/io_uring/sendmmsg.rs`,
//! commit 8782eee of 2025-08-17: SEND_ZC from registered buffers with `REPORT_USAGE`)
//! classified a CQE as `Error` when `res < 0`, ahead of `more()` and `notif()`; the `Error`
//! arm counted and logged it and released nothing, so the NOTIF that should have
//! returned the buffer to its pool never did. `io_notif_tw_complete` (6.1:
//! `__io_notif_complete_tw`) sets the bit when `zc_copied || !zc_used`: on every NOTIF
//! of a locally delivered send, whose frags `skb_orphan_frags_rx` copies. The pool runs
//! dry and the sender waits for a buffer that never comes back. The next commit
//! (7944612, "errno overflow", the one the report cites) looks at `more()` and `notif()`
//! first and frees the buffer at every NOTIF; the negative `res` stays an attached
//! error, whose `-res` overflows an `i32` — the report's question.
//!
//! Both policies are `uring-zc-notif` (the shredstream sender sends UDP datagrams to
//! several destinations; the misreading is the same on a TCP stream, which zcsafe's
//! receiver checks); they differ in how a CQE is read (`Reading`).

use super::{Bug, Tuning};
use crate::uring_zc_notif::{Knobs, Reading, UringZcNotif};
use crate::{BuildError, Catalogued, Entry, Feature};
use zcsafe_policy::{Expectation, Geometry, Profile, RemoteDevice, TransportClass, Verdict};

/// The shipped code: a negative `res` is an errno, whatever the flags say.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UringZcNotifResAsErrno(UringZcNotif);

/// The fix: the flags first; a NOTIF frees its buffer, whatever its `res`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UringZcNotifFlagsFirst(UringZcNotif);

impl Catalogued for UringZcNotifResAsErrno {
    const NAME: &'static str = "uring-zc-notif-res-as-errno";
    const SUMMARY: &'static str =
        "io_uring SEND_ZC with REPORT_USAGE; a NOTIF whose res has the COPIED bit is read as an errno and frees nothing";
    const ORIGIN: &'static str = "tokio-rs/io-uring#354";
    const NEEDS: &'static [Feature] = &[Feature::UringSendZc];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(UringZcNotif::with(
            g,
            Knobs {
                reading: Reading::ResFirst,
                ..Knobs::DOCUMENTED
            },
        )))
    }

    fn expect(transport: TransportClass, _: &Profile) -> Expectation {
        match transport {
            TransportClass::Local => Expectation::new(
                Verdict::Stuck,
                "local delivery copies the frags, so every NOTIF has IORING_NOTIF_USAGE_ZC_COPIED \
                 (res = -2147483648); read as an errno it frees no slot and the sender waits \
                 for one forever",
            ),
            TransportClass::Remote => Expectation::safe(
                "the NIC sends with zero copy: the NOTIF's res is 0, not negative, and frees \
                 its slot",
            ),
        }
    }

    fn expect_behind(
        device: RemoteDevice,
        transport: TransportClass,
        profile: &Profile,
        geometry: &Geometry,
    ) -> Expectation {
        match (transport, device) {
            (TransportClass::Remote, RemoteDevice::Tun) => Expectation::new(
                Verdict::Stuck,
                "a TUN device copies the frags as it queues each segment (tun_net_xmit → \
                 skb_orphan_frags_rx), so every NOTIF has IORING_NOTIF_USAGE_ZC_COPIED, as on \
                 local delivery: read as an errno it frees no slot",
            ),
            _ => Self::expect_for(transport, profile, geometry),
        }
    }
}

impl Catalogued for UringZcNotifFlagsFirst {
    const NAME: &'static str = "uring-zc-notif-flags-first";
    const SUMMARY: &'static str =
        "io_uring SEND_ZC with REPORT_USAGE; F_MORE/F_NOTIF read before res, every NOTIF frees its slot";
    const ORIGIN: &'static str = "tokio-rs/io-uring#354, the fix";
    const NEEDS: &'static [Feature] = &[Feature::UringSendZc];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(UringZcNotif::with(g, Knobs::DOCUMENTED)))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe("a NOTIF's res is a usage report; the NOTIF frees its slot either way")
    }
}

crate::delegate_policy!(UringZcNotifResAsErrno, UringZcNotifFlagsFirst);

pub fn bug() -> Bug {
    Bug {
        id: "tokio-rs/io-uring#354",
        sources: &["tokio-rs/io-uring#354"],
        what: "a NOTIF with res = -2147483648 (the REPORT_USAGE COPIED bit) read as an errno: the buffer is never freed",
        buggy: Entry::of::<UringZcNotifResAsErrno>(),
        fixed: Entry::of::<UringZcNotifFlagsFirst>(),
        tuning: Tuning::default(),
        transports: &[TransportClass::Local],
    }
}
