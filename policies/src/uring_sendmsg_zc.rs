//! `uring-sendmsg-zc`: io_uring `IORING_OP_SENDMSG_ZC`, each chunk gathered from an iovec
//! of its pages, reused after the request's one notification CQE.
//!
//! `SENDMSG_ZC` (6.1) is `SEND_ZC` over a `msghdr`: `io_sendmsg_zc` points the message's
//! `msg_ubuf` at the request's notif and lets `io_sg_from_iter_iovec` pin the pages of
//! every iovec entry into skbs accounted to it, then `io_notif_flush`es it and posts the
//! send CQE with `IORING_CQE_F_MORE` — 6.1 and 6.12 alike. So there is one NOTIF for the
//! whole message, and it comes when the last page of *any* entry is released: no entry may
//! be rewritten before it, however early its own bytes were sent (the gather is what
//! QEMU's multifd header and payload shared, and what freeing "the header" at the send
//! CQE gets wrong). The iovec itself (the `msghdr` and its array) is copied at prep
//! (6.12 `io_sendmsg_prep_setup`) or at the first issue (6.1 `io_sendmsg_copy_hdr`);
//! the sender keeps it until the send CQE, which covers both.
//!
//! This is `uring-zc-notif`'s pipeline with the opcode switched.

use crate::uring_zc_notif::{Knobs, UringZcNotif};
use crate::{BuildError, Catalogued, Feature};
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass, UringZcOpcode};

/// `SENDMSG_ZC` per chunk, slot reused after its NOTIF.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UringSendmsgZc(UringZcNotif);

impl Catalogued for UringSendmsgZc {
    const NAME: &'static str = "uring-sendmsg-zc";
    const SUMMARY: &'static str =
        "io_uring SENDMSG_ZC, one iovec entry per page, buffer reused after the NOTIF CQE";
    const ORIGIN: &'static str = "io_uring_prep_sendmsg_zc(3)";
    const NEEDS: &'static [Feature] = &[Feature::UringSendZc];
    const TWIN: Option<&'static str> = Some(crate::uring_zc_naive::UringZcNaive::NAME);

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(UringZcNotif::with(
            g,
            Knobs {
                opcode: UringZcOpcode::Sendmsg,
                ..Knobs::DOCUMENTED
            },
        )))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe(
            "io_sendmsg_zc accounts every iovec page to the request's one notif; its NOTIF \
             comes when the last of them is released",
        )
    }
}

crate::delegate_policy!(UringSendmsgZc);
