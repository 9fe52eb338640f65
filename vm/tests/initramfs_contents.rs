//! The image holds busybox, the guest binary, /init and the wanted modules (decompressed,
//! dependencies first), and is rebuilt only when an input changes.

mod common;

use std::path::Path;
use zcsafe_vm::initramfs::{self, Inputs};
use zcsafe_vm::Kernel;

/// A fake kernel: virtio_net (xz) depends on net_failover, which depends on failover.
fn fake_kernel(root: &Path) -> Option<Kernel> {
    let rel = "9.9.9-test";
    let m = root
        .join("lib/modules")
        .join(rel)
        .join("kernel/drivers/net");
    std::fs::create_dir_all(&m).unwrap();
    let ko = |deps: &str| {
        format!("\x7fELF fake\0license=GPL\0depends={deps}\0vermagic=9.9.9\0").into_bytes()
    };
    std::fs::write(m.join("failover.ko"), ko("")).unwrap();
    std::fs::write(m.join("net_failover.ko"), ko("failover")).unwrap();
    std::fs::write(m.join("virtio_net.ko"), ko("net_failover")).unwrap();
    std::fs::write(m.join("veth.ko"), ko("")).unwrap();
    let st = std::process::Command::new("xz")
        .arg("--check=crc32")
        .arg(m.join("virtio_net.ko"))
        .status();
    if !st.map(|s| s.success()).unwrap_or(false) {
        common::skip(
            "initramfs",
            "xz is not installed (apt-get install xz-utils)",
        );
        return None;
    }
    std::fs::write(root.join("vmlinuz"), "not a kernel").unwrap();
    Some(Kernel {
        name: "fake".into(),
        suite: "test".into(),
        release: rel.into(),
        version: "1".into(),
        packages: vec![],
        vmlinuz: root.join("vmlinuz"),
        modules: root.join("lib/modules").join(rel),
    })
}

#[test]
fn image_lists_what_the_guest_needs_and_is_cached_by_content() {
    let Some(bb) = common::busybox("initramfs") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let Some(k) = fake_kernel(t.path()) else {
        return;
    };
    let mut inputs = Inputs::new(bb.clone());
    inputs.host_tools.clear();
    let cache = t.path().join("cache");
    let img = initramfs::build(&k, &inputs, "#!/bin/sh\necho hi\n", &cache).unwrap();
    assert!(img.rebuilt);
    assert_eq!(
        img.modules,
        ["failover", "net_failover", "virtio_net", "veth"]
    );
    assert!(img.missing.contains(&"sch_netem".to_string()));

    let listing = initramfs::list(&std::fs::read(&img.path).unwrap()).unwrap();
    let names: Vec<&str> = listing.iter().map(|e| e.0.as_str()).collect();
    for want in [
        "init",
        "bin/busybox",
        "bin/zcsafe",
        "bin/sh",
        "lib/modules/virtio_net.ko",
        "lib/modules/load-order",
        "dev",
        "proc",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    // Directories come before their contents, as the kernel's unpacker needs.
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(pos("lib/modules") < pos("lib/modules/veth.ko"));
    // The xz module went in decompressed.
    let ko = listing
        .iter()
        .find(|e| e.0 == "lib/modules/virtio_net.ko")
        .unwrap();
    assert!(ko.2 > 20 && ko.2 < 200, "{ko:?}");

    // Same inputs: same file, not rebuilt. Another init: another image.
    let again = initramfs::build(&k, &inputs, "#!/bin/sh\necho hi\n", &cache).unwrap();
    assert_eq!(again.path, img.path);
    assert!(!again.rebuilt);
    let other = initramfs::build(&k, &inputs, "#!/bin/sh\necho bye\n", &cache).unwrap();
    assert_ne!(other.path, img.path);
    assert!(other.rebuilt);
}

#[test]
fn a_dynamic_guest_binary_brings_its_loader_and_libraries() {
    let Some(bb) = common::busybox("dynamic guest") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let Some(k) = fake_kernel(t.path()) else {
        return;
    };
    // /bin/ls stands in for a dynamically linked zcsafe; /bin/cat for a carried sender.
    let ls = std::fs::read("/bin/ls").unwrap();
    let initramfs::Program::DynamicElf { interpreter } = initramfs::classify(&ls) else {
        panic!("/bin/ls is dynamically linked on Debian");
    };
    let mut inputs = Inputs::new("/bin/ls".into());
    inputs.busybox = bb;
    inputs.extra = vec!["/bin/cat".into()];
    let img = initramfs::build(&k, &inputs, "#!/bin/sh\n", t.path()).unwrap();
    let listing = initramfs::list(&std::fs::read(&img.path).unwrap()).unwrap();
    let names: Vec<&str> = listing.iter().map(|e| e.0.as_str()).collect();
    let once = |n: &str| {
        assert_eq!(
            names.iter().filter(|x| **x == n).count(),
            1,
            "{n} once in {names:?}"
        )
    };
    once("bin/zcsafe");
    once("opt/zcsafe/bin/cat");
    once(interpreter.trim_start_matches('/'));
    let libc: Vec<&&str> = names.iter().filter(|n| n.ends_with("/libc.so.6")).collect();
    assert_eq!(
        libc.len(),
        1,
        "libc once, shared by ls, cat and the host tools: {names:?}"
    );
    // Under the name the loader asks for (a symlink on the host), with the file's content.
    let size = listing.iter().find(|e| e.0 == *libc[0]).unwrap().2;
    assert_eq!(
        size as u64,
        std::fs::metadata(format!("/{}", libc[0])).unwrap().len()
    );
    // Every directory precedes what is in it, for the kernel's unpacker.
    for (i, n) in names.iter().enumerate() {
        if let Some(parent) = std::path::Path::new(n)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            let p = names.iter().position(|x| std::path::Path::new(x) == parent);
            assert!(p.is_some_and(|p| p < i), "{n} before its directory");
        }
    }

    // A script for another interpreter cannot run in the guest: a clear error.
    let py = t.path().join("sender.py");
    std::fs::write(&py, "#!/usr/bin/env python3\nprint('hi')\n").unwrap();
    inputs.extra = vec![py];
    let e = initramfs::build(&k, &inputs, "#!/bin/sh\n", t.path()).unwrap_err();
    assert!(
        e.to_string().contains("/usr/bin/env python3") && e.to_string().contains("#!/bin/sh"),
        "{e}"
    );
    // A path that names no file would have no name in the guest: a typed error.
    inputs.extra = vec![t.path().join("..")];
    let e = initramfs::build(&k, &inputs, "#!/bin/sh\n", t.path()).unwrap_err();
    assert!(matches!(e, zcsafe_vm::VmError::NotCarriable { .. }), "{e}");
    assert!(e.to_string().ends_with("not a file to carry"), "{e}");
}

/// Threads of one process (the matrix's jobs) build the same image into one cache at once:
/// every build succeeds, the image is whole, and no temporary file is left behind.
#[test]
fn concurrent_builds_of_one_image_all_succeed() {
    let Some(bb) = common::busybox("initramfs_concurrent") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let Some(k) = fake_kernel(t.path()) else {
        return;
    };
    let mut inputs = Inputs::new(bb);
    inputs.host_tools.clear();
    let cache = t.path().join("cache");
    let images: Vec<_> = std::thread::scope(|s| {
        let builds: Vec<_> = (0..8)
            .map(|_| s.spawn(|| initramfs::build(&k, &inputs, "#!/bin/sh\n", &cache)))
            .collect();
        builds.into_iter().map(|b| b.join().unwrap()).collect()
    });
    let paths: Vec<_> = images
        .into_iter()
        .map(|i| i.expect("a concurrent build of the same image").path)
        .collect();
    assert!(paths.windows(2).all(|w| w[0] == w[1]), "{paths:?}");
    let listed = initramfs::list(&std::fs::read(&paths[0]).unwrap()).unwrap();
    assert!(listed.iter().any(|(n, _, _)| n == "init"), "{listed:?}");
    let left: Vec<_> = std::fs::read_dir(cache.join("initramfs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}
