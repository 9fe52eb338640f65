//! `vmsplice-gift-fresh`: gift the pages, then `munmap` them and `mmap` fresh ones for the
//! next chunk.
//!
//! The reading of `SPLICE_F_GIFT` that is actually safe: the application gives the pages
//! away for good. Whatever the kernel still holds it holds alone; nobody can write to it,
//! so no receiver can see new bytes. The cost is a page fault and zeroing per page.

use crate::script::{scripted_policy, Action, Script};
use crate::{BuildError, Catalogued};
use zcsafe_policy::{Expectation, Geometry, GiftSupport, Profile, TransportClass};

scripted_policy!(
    VmspliceGiftFresh,
    Script {
        setup: &[],
        per_chunk: &[Action::Fill, Action::Splice { gift: true }, Action::Remap],
    }
);

impl Catalogued for VmspliceGiftFresh {
    const NAME: &'static str = "vmsplice-gift-fresh";
    const SUMMARY: &'static str =
        "vmsplice with SPLICE_F_GIFT, then munmap and mmap fresh pages per chunk";
    const ORIGIN: &'static str = "vmsplice(2): gifted pages are never touched again";
    const TWIN: Option<&'static str> =
        Some(crate::vmsplice_double_buffer::VmspliceDoubleBuffer::NAME);

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self::scripted(g))
    }

    fn expect(_: TransportClass, profile: &Profile) -> Expectation {
        if profile.gift == GiftSupport::Rejected {
            return Expectation::unsupported("this kernel refuses SPLICE_F_GIFT");
        }
        Expectation::safe(
            "the old pages are unmapped: nobody can write what the kernel still holds",
        )
    }
}
