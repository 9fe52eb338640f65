//! `vmsplice-double-buffer`: the 2006 LWN scheme.
//!
//! From the `vmsplice` introduction (LWN, "Two new system calls: splice() and sync_file_range()",
//! and Jens Axboe's examples): use a buffer of twice the pipe's capacity; once `vmsplice`
//! of one half returns, the other half "must" have left the pipe, so it is assumed free.
//!
//! What it assumes: the pipe is the only holder. It is not — `splice` moves the page
//! references on to the socket's write queue (`splice_to_socket`), where they stay until
//! sent and acknowledged, and with local delivery until the receiver reads them.

use crate::script::{scripted_policy, Action, Script};
use crate::{BuildError, Catalogued, Layout};
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass};

scripted_policy!(
    VmspliceDoubleBuffer,
    Script {
        setup: &[],
        per_chunk: &[Action::Fill, Action::Splice { gift: false }],
    }
);

impl Catalogued for VmspliceDoubleBuffer {
    const NAME: &'static str = "vmsplice-double-buffer";
    const SUMMARY: &'static str =
        "buffer of 2 x pipe capacity; once vmsplice of one half returns, the other is reused";
    const ORIGIN: &'static str = "LWN 2006 vmsplice double-buffering scheme";
    const LAYOUT: Layout = Layout::PipeHalves;

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Self::LAYOUT
            .check(&Self::PIPELINE, g)
            .map_err(|need| BuildError::Needs {
                policy: Self::NAME,
                need,
            })?;
        Ok(Self::scripted(g))
    }

    fn expect(_: TransportClass, profile: &Profile) -> Expectation {
        if profile.vmsplice_maps {
            Expectation::corrupt(
                "when vmsplice returns, the other half has only moved from the pipe to the \
                 socket, which still references it",
            )
        } else {
            Expectation::safe("this kernel's vmsplice copies, so the half is free at once")
        }
    }
}
