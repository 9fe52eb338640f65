//! Skips for tests that boot guests, which a machine may lack (QEMU, a fetchable kernel).
//!
//! Shared by zcsafe's own test suites and a library author's. A skip is never silent: it
//! prints `SKIP [zcsafe-vm #n] <test>: <why>` to stderr, and with `ZCSAFE_REQUIRE_VM=1`
//! (CI) it fails instead.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

static SKIPS: AtomicUsize = AtomicUsize::new(0);

/// Records a skip of `test` for `why`, or panics when `ZCSAFE_REQUIRE_VM=1`.
pub fn skipped(test: &str, why: &str) {
    if std::env::var("ZCSAFE_REQUIRE_VM").is_ok_and(|v| v == "1") {
        panic!("{test}: cannot run and ZCSAFE_REQUIRE_VM=1: {why}");
    }
    skipped_optional(test, why);
}

/// Records a skip that CI accepts even with `ZCSAFE_REQUIRE_VM=1` (an optional artefact,
/// such as the VM agent, was not built).
pub fn skipped_optional(test: &str, why: &str) {
    let n = SKIPS.fetch_add(1, Ordering::SeqCst) + 1;
    eprintln!("SKIP [zcsafe-vm #{n}] {test}: {why}");
}

/// Why guests cannot boot here, if they cannot: QEMU is missing from `PATH`.
pub fn unavailable() -> Option<String> {
    which("qemu-system-x86_64")
        .is_none()
        .then(|| "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)".into())
}

/// Whether `test` cannot boot a guest here; if so, the skip is recorded ([`skipped`]).
pub fn skip(test: &str) -> bool {
    match unavailable() {
        None => false,
        Some(why) => {
            skipped(test, &why);
            true
        }
    }
}

/// `tool`'s path on `PATH`, if it is there.
pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| PathBuf::from(d).join(tool))
        .find(|p| p.is_file())
}
