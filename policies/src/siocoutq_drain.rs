//! `siocoutq-drain`: `vmsplice` + `splice`, then poll `SIOCOUTQ` until it reads 0 before
//! any reuse.
//!
//! The fix proposed in the well-known "vmsplice and TCP" answer: `SIOCOUTQ` is
//! `write_seq - snd_una` (`tcp_ioctl`), so 0 means the peer acknowledged every byte.
//! It assumes an acknowledged byte is no longer referenced. True behind a real NIC (the
//! device read the page before the peer could ACK it); false for local delivery, where
//! the ACK is sent when the peer *socket* queues the skb — with our page still in it.

use crate::script::{scripted_policy, Action, Script};
use crate::{expect_after_ack, BuildError, Catalogued};
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass};

scripted_policy!(
    SiocoutqDrain,
    Script {
        setup: &[],
        per_chunk: &[Action::Fill, Action::Splice { gift: false }, Action::Drain],
    }
);

impl Catalogued for SiocoutqDrain {
    const NAME: &'static str = "siocoutq-drain";
    const SUMMARY: &'static str = "vmsplice+splice, then poll SIOCOUTQ until 0 before any reuse";
    const ORIGIN: &'static str = "the vmsplice-and-TCP answer's proposed fix";

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self::scripted(g))
    }

    fn expect(transport: TransportClass, profile: &Profile) -> Expectation {
        expect_after_ack(profile.vmsplice_maps, transport)
    }
}
