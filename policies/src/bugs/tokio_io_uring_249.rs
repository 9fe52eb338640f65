//! tokio-rs/io-uring#249: several `SEND_ZC` in flight on one TCP stream, without
//! waiting for each one's send CQE (or linking them), corrupt the order of the data.
//!
//! io_uring does not promise to run independent submissions in order: a `SEND_ZC` that
//! finds no socket space returns `-EAGAIN` to io_uring, which arms poll and retries it
//! later (`io_send_zc` → `io_uring_poll`/`io_poll_add`), while the next submission may
//! find space and queue its bytes first. Each buffer is released correctly (after its
//! `F_NOTIF`), yet the receiver gets chunk 1 before chunk 0. Fix: submit the next send
//! only after the previous one's send CQE (what the catalogue's `uring-zc-notif` does),
//! or link them with `IOSQE_IO_LINK`.
//!
//! Both policies are `uring-zc-notif` finishing as soon as the last chunk is submitted
//! (`Close`); they differ in when the next `SEND_ZC` goes in (`Submit`).

use super::{Bug, Tuning};
use crate::uring_zc_notif::{Close, Knobs, Submit, UringZcNotif};
use crate::{BuildError, Catalogued, Entry, Feature};
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass};

/// The reproducers' sender, shipped and fixed: it never reaps the last send CQE.
const PIPELINE: Knobs = Knobs {
    close: Close::AfterLastSubmit,
    ..Knobs::DOCUMENTED
};

/// Submits a `SEND_ZC` per slot without waiting for the previous send CQE.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UringZcUnorderedInflight(UringZcNotif);

/// Submits the next `SEND_ZC` only after the previous one's send CQE.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UringZcUnorderedFixed(UringZcNotif);

impl Catalogued for UringZcUnorderedInflight {
    const NAME: &'static str = "uring-zc-unordered-inflight";
    const SUMMARY: &'static str =
        "io_uring SEND_ZC, several in flight on one stream without links (buffers freed by NOTIF)";
    const ORIGIN: &'static str = "tokio-rs/io-uring#249";
    const NEEDS: &'static [Feature] = &[Feature::UringSendZc];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(UringZcNotif::with(
            g,
            Knobs {
                submit: Submit::AtOnce,
                ..PIPELINE
            },
        )))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::corrupt(
            "io_uring may run the second SEND_ZC first: the receiver gets chunks out of order",
        )
    }
}

impl Catalogued for UringZcUnorderedFixed {
    const NAME: &'static str = "uring-zc-unordered-fixed";
    const SUMMARY: &'static str =
        "io_uring SEND_ZC, next submission only after the previous send CQE";
    const ORIGIN: &'static str = "tokio-rs/io-uring#249, the fix";
    const NEEDS: &'static [Feature] = &[Feature::UringSendZc];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(UringZcNotif::with(g, PIPELINE)))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe("one send at a time keeps the stream in order; NOTIF frees each buffer")
    }
}

crate::delegate_policy!(UringZcUnorderedInflight, UringZcUnorderedFixed);

pub fn bug() -> Bug {
    Bug {
        id: "tokio-rs/io-uring#249",
        sources: &["tokio-rs/io-uring#249"],
        what: "several SEND_ZC in flight on one TCP stream without waiting: data order corruption",
        buggy: Entry::of::<UringZcUnorderedInflight>(),
        fixed: Entry::of::<UringZcUnorderedFixed>(),
        tuning: Tuning::default(),
        transports: &[TransportClass::Local, TransportClass::Remote],
    }
}
