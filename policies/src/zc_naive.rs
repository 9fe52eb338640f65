//! `zc-naive`: `send(MSG_ZEROCOPY)` and reuse the buffer at once.
//!
//! What people try first: "the send returned, so the kernel is done". With
//! `MSG_ZEROCOPY` the skb frags point at the user's pages (`skb_zerocopy_iter_stream`)
//! until the last skb referencing them is freed — after transmission and ACK. Bytes
//! still in the write queue (small window, slow reader) are read after the reuse.

use crate::script::{scripted_policy, Action, Script};
use crate::{BuildError, Catalogued, Feature};
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass};

/// Enable `SO_ZEROCOPY`, then fill and `send(MSG_ZEROCOPY)` every chunk: the same
/// script on any socket (`udp-zc-naive` sends it on UDP).
pub(crate) const SCRIPT: Script = Script {
    setup: &[Action::EnableZerocopy],
    per_chunk: &[Action::Fill, Action::Send { zerocopy: true }],
};

scripted_policy!(ZcNaive, SCRIPT);

impl Catalogued for ZcNaive {
    const NAME: &'static str = "zc-naive";
    const SUMMARY: &'static str = "send(MSG_ZEROCOPY), buffer reused at once";
    const ORIGIN: &'static str =
        "Documentation/networking/msg_zerocopy.rst, ignoring its notifications";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];
    // Local delivery copies zero-copy frags on arrival: the pages are at risk only
    // while unsent, which takes a window that fills.
    const WINDOW: zcsafe_policy::ReceiveWindow = zcsafe_policy::ReceiveWindow::Kernel;

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self::scripted(g))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::corrupt("bytes not yet transmitted are read from the user's pages later")
    }
}
