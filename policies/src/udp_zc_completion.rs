//! `udp-zc-completion`: UDP `send(MSG_ZEROCOPY)`, a slot reused only after an errqueue
//! notification covers every send made from it.
//!
//! `zc-completion`'s scheme on a connected UDP socket, unchanged — which is the point:
//! the notification means the same thing. `__msg_zerocopy_callback` runs when the last
//! skb referencing the `ubuf_info` is freed (`skb_release_data` → `skb_zcopy_clear`): for
//! a datagram at TX completion (remote) or when `skb_orphan_frags_rx` copied it on local
//! delivery (then with `SO_EE_CODE_ZEROCOPY_COPIED`). What differs from TCP is what the
//! ledger sees: one `ubuf_info` per `sendmsg` (uncorked `__ip_append_data` passes the
//! empty private queue's tail to `msg_zerocopy_realloc`), ranges merged only on the error
//! queue, never out of order, never a retransmission.

use crate::zc_completion::{Knobs, ZcCompletion};
use crate::{BuildError, Catalogued, Feature};
use zcsafe_policy::{Expectation, Geometry, Pipeline, Profile, TransportClass};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UdpZcCompletion(ZcCompletion);

impl Catalogued for UdpZcCompletion {
    const NAME: &'static str = "udp-zc-completion";
    const SUMMARY: &'static str =
        "UDP MSG_ZEROCOPY; reuse only after an errqueue notification covers the send";
    const ORIGIN: &'static str =
        "Documentation/networking/msg_zerocopy.rst (UDP); kselftest msg_zerocopy.c -u";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];
    const TWIN: Option<&'static str> = Some(crate::udp_zc_naive::UdpZcNaive::NAME);
    const PIPELINE: Pipeline = Pipeline::STANDARD.udp();

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(UdpZcCompletion(ZcCompletion::with(g, Knobs::DOCUMENTED)))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe(
            "the notification comes when the datagram's skb is freed: after TX completion, or \
             after the copy on local delivery",
        )
    }
}

crate::delegate_policy!(UdpZcCompletion);
