//! `uring-zc-naive`: io_uring `SEND_ZC`, buffer reused after the send CQE.
//!
//! `IORING_OP_SEND_ZC` posts two CQEs: the send result with `IORING_CQE_F_MORE`, then a
//! notification (`IORING_CQE_F_NOTIF`) when the kernel dropped its page references
//! (`io_send_zc`, `io_notif_tw_complete`). Treating the first as "buffer free" is the
//! common mistake: it only means the bytes were queued.

use crate::script::{scripted_policy, Action, Script};
use crate::{BuildError, Catalogued, Feature};
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass};

scripted_policy!(
    UringZcNaive,
    Script {
        setup: &[],
        per_chunk: &[Action::Fill, Action::UringSendAwaitCqe],
    }
);

impl Catalogued for UringZcNaive {
    const NAME: &'static str = "uring-zc-naive";
    const SUMMARY: &'static str = "io_uring SEND_ZC, buffer reused after the send CQE (F_MORE)";
    const ORIGIN: &'static str = "io_uring_prep_send_zc(3), ignoring the notification CQE";
    const NEEDS: &'static [Feature] = &[Feature::UringSendZc];
    // Local delivery copies zero-copy frags on arrival: the pages are at risk only
    // while unsent, which takes a window that fills.
    const WINDOW: zcsafe_policy::ReceiveWindow = zcsafe_policy::ReceiveWindow::Kernel;

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self::scripted(g))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::corrupt("the send CQE means queued, not released: the NOTIF CQE comes later")
    }
}
