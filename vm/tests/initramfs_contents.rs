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
fn a_dynamic_guest_binary_is_refused_with_the_build_command() {
    let Some(bb) = common::busybox("dynamic guest") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let Some(k) = fake_kernel(t.path()) else {
        return;
    };
    let mut inputs = Inputs::new("/bin/ls".into());
    inputs.busybox = bb;
    let e = initramfs::build(&k, &inputs, "#!/bin/sh\n", t.path()).unwrap_err();
    assert!(e.to_string().contains("crt-static"), "{e}");
}
