//! liburing#643 ("send-zerocopy and linked timeout: how to deal buffer when timeout?"):
//! a `SEND_ZC` guarded by a linked `IORING_OP_LINK_TIMEOUT`; the timeout fires — may the
//! buffer be freed then? No: the answer in the thread is that a send that sent anything
//! posts two CQEs, the request's and the buffer-free NOTIF, and the buffer is the
//! kernel's until the NOTIF. Since 6.1 every `SEND_ZC` past prep has `F_MORE` and a
//! NOTIF, cancelled or not.
//!
//! What the kernel does (6.1 io_uring/net.c, timeout.c, poll.c): with `MSG_WAITALL` a
//! send that finds room for only part of its bytes queues that part (`io_send_zc`:
//! `done_io += ret`, `REQ_F_PARTIAL_IO`) and waits in poll for the rest. When the timer
//! fires, `io_link_timeout_fn` → `io_req_task_link_timeout` cancels it (`io_try_cancel`
//! → `io_poll_cancel`) and completes with `-ETIME`; the send fails with `res = done_io`
//! (`io_sendrecv_fail`) and `F_MORE`, and `io_send_zc_cleanup` flushes its notif — whose
//! CQE waits until the skbs holding the queued part are freed (acknowledged, or sent by
//! the device). Those pages may still be unsent when the timeout's CQE arrives.
//!
//! The shipped pattern: free the buffer at the timeout or error CQE and copy the unsent
//! rest into a new buffer for the retry; the allocator hands back the block just freed,
//! so the copy overwrites pages the cancelled send's skbs still reference. The fix keeps
//! the buffer until the cancelled send's NOTIF and sends the rest from where it lies.
//!
//! Both are `uring_zc_link_timeout` with requests of two pages (a part can be queued) and
//! a send buffer one page short of two requests, so a second request finds room for
//! only part of itself; the model lets one timeout fire (`Tuning`).

use super::{Bug, Tuning};
use crate::uring_zc_link_timeout::{OnTimeout, UringZcLinkTimeout};
use crate::{BuildError, Catalogued, Entry, Feature};
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass};

/// The shipped pattern: the buffer freed at the timeout, the rest copied into a new one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LiburingZcTimeoutRealloc(UringZcLinkTimeout);

/// The fix: the buffer kept until the cancelled send's NOTIF, the rest sent in place.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LiburingZcTimeoutWaitNotif(UringZcLinkTimeout);

impl Catalogued for LiburingZcTimeoutRealloc {
    const NAME: &'static str = "liburing-zc-timeout-realloc";
    const SUMMARY: &'static str =
        "io_uring SEND_ZC + LINK_TIMEOUT; at the timeout the buffer is freed and the unsent rest copied into its new allocation";
    const ORIGIN: &'static str = "axboe/liburing#643";
    const NEEDS: &'static [Feature] = &[Feature::UringSendZc];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(UringZcLinkTimeout::new(
            g,
            OnTimeout::FreeAndReallocate,
        )))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::corrupt(
            "the timeout cancels the send after it queued part of the chunk; skbs still \
             reference those pages until the NOTIF, and the retry's copy of the rest is \
             written over them before they are sent",
        )
    }
}

impl Catalogued for LiburingZcTimeoutWaitNotif {
    const NAME: &'static str = "liburing-zc-timeout-wait-notif";
    const SUMMARY: &'static str =
        "io_uring SEND_ZC + LINK_TIMEOUT; a cancelled send's buffer kept until its NOTIF, the rest sent in place";
    const ORIGIN: &'static str = "axboe/liburing#643, the answer";
    const NEEDS: &'static [Feature] = &[Feature::UringSendZc];

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self(UringZcLinkTimeout::new(g, OnTimeout::KeepUntilNotif)))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe(
            "a cancelled SEND_ZC still has F_MORE: its NOTIF comes once the queued pages \
             are let go, and nothing writes the buffer before",
        )
    }
}

crate::delegate_policy!(LiburingZcTimeoutRealloc, LiburingZcTimeoutWaitNotif);

pub fn bug() -> Bug {
    Bug {
        id: "liburing#643",
        sources: &["axboe/liburing#643"],
        what: "a linked timeout cancels a SEND_ZC that queued part of its pages; the buffer freed at the timeout is rewritten before the NOTIF",
        buggy: Entry::of::<LiburingZcTimeoutRealloc>(),
        fixed: Entry::of::<LiburingZcTimeoutWaitNotif>(),
        tuning: Tuning {
            chunk: Some(2),
            sndbuf: Some(3),
            uring_link_timeouts: 1,
            ..Tuning::default()
        },
        transports: &[TransportClass::Local, TransportClass::Remote],
    }
}
