//! Skips for tests that need what a machine may lack (root, `ip`, `nft`, a peer NIC).
//!
//! Shared by every test suite that drives this backend — zcsafe's own and a library
//! author's. A skip is never silent: it prints `SKIP <test>: <why> (skip #n in this test
//! binary)` to the real stderr (not captured by the harness), and with
//! `ZCSAFE_REQUIRE_ROOT=1` (CI) it fails instead.

use crate::{veth, Transport};
use std::sync::atomic::{AtomicUsize, Ordering};

static SKIPPED: AtomicUsize = AtomicUsize::new(0);

/// Whether `transport` cannot run here; if so, the skip is recorded (see [`skipped`]).
pub fn skip(test: &str, transport: &Transport) -> bool {
    match veth::unavailable(transport) {
        None => false,
        Some(why) => {
            skipped(test, &why);
            true
        }
    }
}

/// Records a skip of `test` for `why`, or panics when `ZCSAFE_REQUIRE_ROOT=1`.
pub fn skipped(test: &str, why: &str) {
    use std::io::Write;
    if std::env::var("ZCSAFE_REQUIRE_ROOT").as_deref() == Ok("1") {
        panic!("{test}: cannot run ({why}) and ZCSAFE_REQUIRE_ROOT=1");
    }
    let n = SKIPPED.fetch_add(1, Ordering::Relaxed) + 1;
    let _ = writeln!(
        std::io::stderr(),
        "SKIP {test}: {why} (skip #{n} in this test binary)"
    );
}
