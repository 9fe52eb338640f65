//! `udp-zc-naive`: `send(MSG_ZEROCOPY)` on a connected UDP socket, buffer reused at once.
//!
//! The QUIC/media-server reading of `MSG_ZEROCOPY`: "UDP has no send queue, the
//! datagram is gone when `sendmsg` returns". It is not: `udp_sendmsg` → `ip_make_skb`
//! → `__ip_append_data` → `skb_zerocopy_iter_dgram` puts the user's pages in the skb's
//! frags, and `udp_send_skb` hands that skb down the stack. Remotely it waits in the
//! device TX ring until the NIC's DMA and TX completion; locally it waits in the backlog
//! (`loopback_xmit` / `veth_xmit` → `__netif_rx`) until `__netif_receive_skb_core`
//! copies the frags (`skb_orphan_frags_rx`). A reuse in either window rewrites bytes
//! that have not left. Everything else is `zc-naive`'s script.

use crate::script::scripted_policy;
use crate::{BuildError, Catalogued, Feature};
use zcsafe_policy::{Expectation, Geometry, Pipeline, Profile, RemoteDevice, TransportClass};

scripted_policy!(UdpZcNaive, crate::zc_naive::SCRIPT);

impl Catalogued for UdpZcNaive {
    const NAME: &'static str = "udp-zc-naive";
    const SUMMARY: &'static str = "UDP send(MSG_ZEROCOPY), buffer reused at once";
    const ORIGIN: &'static str =
        "Documentation/networking/msg_zerocopy.rst (UDP since 5.0), ignoring its notifications";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];
    const PIPELINE: Pipeline = Pipeline::STANDARD.udp();

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self::scripted(g))
    }

    fn expect(transport: TransportClass, _: &Profile) -> Expectation {
        match transport {
            TransportClass::Remote => Expectation::corrupt(
                "the datagram's frags reference the user's pages in the device TX ring until \
                 TX completion frees the skb",
            ),
            // Written before any run: the window is the backlog between udp_send_skb and
            // __netif_receive_skb_core's copy. A host that drains its backlog inside
            // sendmsg (local_bh_enable runs NET_RX at once) may never open it; the model
            // explores the deferred softirq too.
            TransportClass::Local => Expectation::corrupt(
                "the datagram waits in the backlog referencing the user's pages until \
                 skb_orphan_frags_rx copies them on delivery",
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
            (TransportClass::Remote, RemoteDevice::Tun) => Expectation::safe(
                "a TUN device copies the datagram's zero-copy frags as it queues it, inside \
                 sendmsg (tun_net_xmit → skb_orphan_frags_rx), so no reuse can reach the peer",
            ),
            _ => Self::expect_for(transport, profile, geometry),
        }
    }
}
