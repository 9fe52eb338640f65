//! grpc#30320: after `ENOBUFS` from `sendmsg(MSG_ZEROCOPY)`, the writer sleeps until a
//! zero-copy completion frees optmem — even when none of its sends is outstanding, so
//! no completion can ever come and the write hangs.
//!
//! `ENOBUFS` comes from `msg_zerocopy_alloc` → `sock_omalloc`, which charges the
//! notification to the socket's `sk_omem_alloc` against `sysctl_optmem_max`; other users
//! of the same budget (socket options, filters, queued error-queue entries) can use it up.
//! gRPC's TCP zero-copy writer (`tcp_posix.cc`) then waited for the error queue. The fix
//! only waits when a zero-copy send is actually outstanding, and otherwise retries the
//! send as a plain copy.
//!
//! Both writers are `zc-completion` with the shipped or the fixed answer to `ENOBUFS`
//! (`OnNoBufs`). The model makes optmem "already used by something else" with
//! `zc_optmem = 0`: every new notification fails with `ENOBUFS`.

use super::{Bug, Tuning};
use crate::zc_completion::{Knobs, OnNoBufs, ZcCompletion};
use crate::{BuildError, Catalogued, Entry, Feature};
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass, Verdict};

/// The shipped writer: always sleeps for a completion after `ENOBUFS`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GrpcEnobufsSleep(ZcCompletion);

/// The fix: sleeps only when a zero-copy send is outstanding, else copies.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GrpcEnobufsFixed(ZcCompletion);

impl Catalogued for GrpcEnobufsSleep {
    const NAME: &'static str = "grpc-enobufs-sleep";
    const SUMMARY: &'static str =
        "MSG_ZEROCOPY writer that sleeps for a completion after ENOBUFS, outstanding or not";
    const ORIGIN: &'static str = "grpc/grpc#30320 (tcp_posix.cc zero-copy writer)";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(ZcCompletion::with(
            g,
            Knobs {
                on_nobufs: OnNoBufs::AlwaysWait,
                ..Knobs::DOCUMENTED
            },
        )))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::new(
            Verdict::Stuck,
            "with nothing outstanding no completion will ever arrive to wake the writer",
        )
    }
}

impl Catalogued for GrpcEnobufsFixed {
    const NAME: &'static str = "grpc-enobufs-fixed";
    const SUMMARY: &'static str =
        "MSG_ZEROCOPY writer that waits after ENOBUFS only with sends outstanding, else copies";
    const ORIGIN: &'static str = "grpc/grpc#30320, the fix";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(ZcCompletion::with(g, Knobs::DOCUMENTED)))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe("it waits only for completions that will come, and copies otherwise")
    }
}

crate::delegate_policy!(GrpcEnobufsSleep, GrpcEnobufsFixed);

pub fn bug() -> Bug {
    Bug {
        id: "grpc#30320",
        sources: &["grpc/grpc#30320"],
        what: "after ENOBUFS the writer sleeps for a zero-copy completion although none is outstanding",
        buggy: Entry::of::<GrpcEnobufsSleep>(),
        fixed: Entry::of::<GrpcEnobufsFixed>(),
        tuning: Tuning {
            zc_optmem: Some(0),
            ..Tuning::default()
        },
        transports: &[TransportClass::Local, TransportClass::Remote],
    }
}
