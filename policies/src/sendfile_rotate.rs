//! `sendfile-rotate`: a new tmpfs file per chunk, never rewritten, unlinked after
//! `sendfile` returns.
//!
//! Unlinking drops the pages from the page cache, but the skbs keep their references
//! and nobody can write those pages any more: the bytes in flight cannot change.

use crate::script::{scripted_policy, Action, Script};
use crate::{BuildError, Catalogued};
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass};

scripted_policy!(
    SendfileRotate,
    Script {
        setup: &[],
        per_chunk: &[
            Action::CreateFile,
            Action::WriteFile,
            Action::Sendfile,
            Action::RemoveFile
        ],
    }
);

impl Catalogued for SendfileRotate {
    const NAME: &'static str = "sendfile-rotate";
    const SUMMARY: &'static str =
        "a new tmpfs file per chunk, never rewritten, unlinked after sending";
    const ORIGIN: &'static str = "sendfile(2) with write-once files (replace, don't rewrite)";
    const TWIN: Option<&'static str> = Some(crate::sendfile_rewrite::SendfileRewrite::NAME);

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self::scripted(g))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe("pages in flight belong to a file nobody writes any more")
    }
}
