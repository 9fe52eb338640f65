//! glommio#46 ("fix: stop setting MSG_ZEROCOPY on every socket send"): glommio OR'ed
//! `MSG_ZEROCOPY` into the flags of every io_uring `Send` and `SendMsg` it submitted
//! (`UringOpDescriptor::SockSend` → `opcode::Send::new(..).flags(flags | MSG_ZEROCOPY)`)
//! and freed or reused the buffer when the send CQE came.
//!
//! Nothing in glommio set `SO_ZEROCOPY`, so the flag did nothing — until a caller set it
//! on the socket through the public `AsRawFd`. From then on the kernel takes the
//! `MSG_ZEROCOPY` path: `io_send` (6.1 io_uring/net.c) passes the SQE's `msg_flags` to
//! `sock_sendmsg` with no `msg_ubuf`, and `tcp_sendmsg_locked` (net/ipv4/tcp.c) sees
//! `MSG_ZEROCOPY` with `sock_flag(sk, SOCK_ZEROCOPY)` and takes a `MSG_ZEROCOPY`
//! completion (`msg_zerocopy_realloc`): the skbs reference the user's pages after the
//! CQE, and the release is a notification on the socket's error queue, which glommio
//! never reads. The buffer goes back to the caller while bytes not yet sent still point
//! at it. The fix drops the flag: a real zero-copy send is `IORING_OP_SEND_ZC`, whose
//! release is a second CQE on the ring.
//!
//! Both policies are scripted: the caller's `setsockopt(SO_ZEROCOPY)`, then per chunk
//! fill, a plain io_uring `SEND` (`Op::UringSend`) and its one CQE, then reuse. They
//! differ only in `MSG_ZEROCOPY`.

use super::{Bug, Tuning};
use crate::script::{scripted_policy, Action, Script};
use crate::{BuildError, Catalogued, Entry, Feature};
use zcsafe_policy::{Expectation, Geometry, Profile, ReceiveWindow, TransportClass};

/// Per chunk: fill, `SEND` with or without `MSG_ZEROCOPY`, its CQE.
const fn glommio(msg_zerocopy: bool) -> Script {
    Script {
        setup: &[Action::EnableZerocopy],
        per_chunk: if msg_zerocopy {
            &[
                Action::Fill,
                Action::UringPlainSendAwaitCqe { msg_zerocopy: true },
            ]
        } else {
            &[
                Action::Fill,
                Action::UringPlainSendAwaitCqe {
                    msg_zerocopy: false,
                },
            ]
        },
    }
}

scripted_policy!(
    /// The shipped code: `MSG_ZEROCOPY` on every send, the buffer reused at the CQE.
    GlommioSendMsgZerocopy,
    glommio(true)
);

scripted_policy!(
    /// The fix: no `MSG_ZEROCOPY`; the kernel copies, so the CQE frees the buffer.
    GlommioSendCopy,
    glommio(false)
);

impl Catalogued for GlommioSendMsgZerocopy {
    const NAME: &'static str = "glommio-send-msg-zerocopy";
    const SUMMARY: &'static str =
        "io_uring SEND with MSG_ZEROCOPY on an SO_ZEROCOPY socket; buffer reused at the CQE, errqueue never read";
    const ORIGIN: &'static str = "glommio/glommio#46 (UringOpDescriptor::SockSend)";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];
    // Local delivery copies zero-copy frags on arrival (`skb_orphan_frags_rx`): the
    // pages are at risk while unsent, as for `zc-naive`.
    const WINDOW: ReceiveWindow = ReceiveWindow::Kernel;

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self::scripted(g))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::corrupt(
            "with SO_ZEROCOPY the SEND's CQE means queued: skbs still reference the pages \
             until a notification on the error queue, and the buffer is written first",
        )
    }
}

impl Catalogued for GlommioSendCopy {
    const NAME: &'static str = "glommio-send-copy";
    const SUMMARY: &'static str =
        "io_uring SEND without MSG_ZEROCOPY on an SO_ZEROCOPY socket; buffer reused at the CQE";
    const ORIGIN: &'static str = "glommio/glommio#46, the fix";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];
    const WINDOW: ReceiveWindow = ReceiveWindow::Kernel;

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self::scripted(g))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe(
            "without MSG_ZEROCOPY tcp_sendmsg_locked copies, SO_ZEROCOPY or not: the CQE \
             frees the buffer",
        )
    }
}

pub fn bug() -> Bug {
    Bug {
        id: "glommio#46",
        sources: &["glommio/glommio#46"],
        what: "MSG_ZEROCOPY on every io_uring SEND: with SO_ZEROCOPY the buffer is reused at the CQE while the kernel still reads it",
        buggy: Entry::of::<GlommioSendMsgZerocopy>(),
        fixed: Entry::of::<GlommioSendCopy>(),
        tuning: Tuning::default(),
        transports: &[TransportClass::Local, TransportClass::Remote],
    }
}
