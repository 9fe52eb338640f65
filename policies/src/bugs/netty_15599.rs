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
//! Both policies are `uring-zc-notif` tagging each `SEND_ZC` with its buffer slot (as a
//! pooled-buffer id would be) and sending a failed chunk again; they differ in which
//! CQEs promise a notification (`Promise`). The model lets one `SEND_ZC` fail
//! (`uring_failures = 1`).

use super::{Bug, Tuning};
use crate::uring_zc_notif::{Knobs, OnFailure, Promise, Tag, UringZcNotif};
use crate::{BuildError, Catalogued, Entry, Feature};
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass};

/// Netty's sender, shipped and fixed: slot tags, a failed send sent again.
const NETTY: Knobs = Knobs {
    tag: Tag::Slot,
    on_failure: OnFailure::Retry,
    ..Knobs::DOCUMENTED
};

/// The shipped code: a failed send's notification is not expected.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NettySendzcFailNoNotif(UringZcNotif);

/// The fix: every `F_MORE` promises a notification.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NettySendzcFailFixed(UringZcNotif);

impl Catalogued for NettySendzcFailNoNotif {
    const NAME: &'static str = "netty-sendzc-fail-no-notif";
    const SUMMARY: &'static str =
        "io_uring SEND_ZC; a failed send is assumed to post no NOTIF, so a stray NOTIF frees a busy slot";
    const ORIGIN: &'static str = "netty/netty#15599, axboe/liburing#1462";
    const NEEDS: &'static [Feature] = &[Feature::UringSendZc];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(UringZcNotif::with(
            g,
            Knobs {
                promise: Promise::SentOnly,
                ..NETTY
            },
        )))
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
        Ok(Self(UringZcNotif::with(g, NETTY)))
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
