//! `sendfile-rewrite`: `sendfile` a region of a tmpfs file, wait until `SIOCOUTQ` is 0,
//! then `pwrite` the next chunk over the same region.
//!
//! A file used as a ring buffer. `sendfile` splices page-cache pages into the socket
//! (`shmem_file_splice_read` / `filemap_splice_read`), and `pwrite` overwrites those same
//! pages in place — so the file behaves like a vmspliced user buffer.

use crate::script::{scripted_policy, Action, Script};
use crate::{expect_after_ack, BuildError, Catalogued};
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass};

scripted_policy!(
    SendfileRewrite,
    Script {
        setup: &[Action::CreateFile],
        per_chunk: &[Action::WriteFile, Action::Sendfile, Action::Drain],
    }
);

impl Catalogued for SendfileRewrite {
    const NAME: &'static str = "sendfile-rewrite";
    const SUMMARY: &'static str =
        "sendfile a region of a tmpfs file, drain SIOCOUTQ, rewrite the region";
    const ORIGIN: &'static str = "sendfile(2) from a file used as a ring buffer";

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self::scripted(g))
    }

    fn expect(transport: TransportClass, profile: &Profile) -> Expectation {
        expect_after_ack(profile.file_splice_maps, transport)
    }
}
