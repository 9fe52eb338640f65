//! Helpers shared by the integration tests: skips are printed and counted, and
//! `ZCSAFE_REQUIRE_VM=1` (CI) turns a skip into a failure.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

static SKIPS: AtomicUsize = AtomicUsize::new(0);

/// Records a skipped test with its reason; panics instead when VMs are required.
pub fn skip(test: &str, reason: &str) {
    if std::env::var("ZCSAFE_REQUIRE_VM").is_ok_and(|v| v == "1") {
        panic!("{test}: cannot run and ZCSAFE_REQUIRE_VM=1: {reason}");
    }
    let n = SKIPS.fetch_add(1, Ordering::SeqCst) + 1;
    eprintln!("SKIP [zcsafe-vm #{n}] {test}: {reason}");
}

/// Records a skip that CI accepts even with `ZCSAFE_REQUIRE_VM=1` (an optional artefact
/// such as the VM agent was not built).
pub fn skip_optional(test: &str, reason: &str) {
    let n = SKIPS.fetch_add(1, Ordering::SeqCst) + 1;
    eprintln!("SKIP [zcsafe-vm #{n}] {test}: {reason}");
}

/// The 5.10 cloud kernel (fastest to boot), fetched into the user's cache if needed.
pub fn kernel(test: &str) -> Option<zcsafe_vm::Kernel> {
    if which("qemu-system-x86_64").is_none() {
        skip(
            test,
            "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)",
        );
        return None;
    }
    let cat = zcsafe_vm::Catalogue::builtin();
    let entry = cat.get("5.10").expect("5.10 in the catalogue").clone();
    let f = zcsafe_vm::Fetcher::new(zcsafe_vm::cache_dir(), &cat);
    match f.fetch(&entry) {
        Ok(k) => Some(k),
        Err(e) => {
            skip(
                test,
                &format!("kernel 5.10 is not cached and cannot be fetched: {e}"),
            );
            None
        }
    }
}

/// A static busybox, used both as busybox and as the guest binary of plumbing tests.
pub fn busybox(test: &str) -> Option<PathBuf> {
    let p = PathBuf::from("/bin/busybox");
    let ok = std::fs::read(&p)
        .map(|b| zcsafe_vm::initramfs::is_static_elf(&b))
        .unwrap_or(false);
    if !ok {
        skip(
            test,
            "a static /bin/busybox is needed (apt-get install busybox-static)",
        );
        return None;
    }
    Some(p)
}

pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| PathBuf::from(d).join(tool))
        .find(|p| p.is_file())
}
