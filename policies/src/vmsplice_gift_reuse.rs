//! `vmsplice-gift-reuse`: `vmsplice(SPLICE_F_GIFT)`, splice, wait until `SIOCOUTQ` is 0,
//! then write the same pages again.
//!
//! `vmsplice(2)` says a gifted page must not be modified afterwards; folk wisdom reads
//! the gift as "the kernel took it" and reuses the pages once the data is acknowledged.
//! For a socket the gift changes nothing (`splice_to_socket` never steals pages), so this
//! is `siocoutq-drain` with a flag — and shares its fate.

use crate::script::{scripted_policy, Action, Script};
use crate::{expect_after_ack, BuildError, Catalogued};
use zcsafe_policy::{Expectation, Geometry, GiftSupport, Profile, TransportClass};

scripted_policy!(
    VmspliceGiftReuse,
    Script {
        setup: &[],
        per_chunk: &[Action::Fill, Action::Splice { gift: true }, Action::Drain],
    }
);

impl Catalogued for VmspliceGiftReuse {
    const NAME: &'static str = "vmsplice-gift-reuse";
    const SUMMARY: &'static str =
        "vmsplice with SPLICE_F_GIFT, splice, SIOCOUTQ drained to 0, then the same pages again";
    const ORIGIN: &'static str =
        "vmsplice(2) SPLICE_F_GIFT; reuse after drain as in the vmsplice-and-TCP answer";

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self::scripted(g))
    }

    fn expect(transport: TransportClass, profile: &Profile) -> Expectation {
        if profile.gift == GiftSupport::Rejected {
            return Expectation::unsupported("this kernel refuses SPLICE_F_GIFT");
        }
        expect_after_ack(profile.vmsplice_maps, transport)
    }
}
