//! Helpers shared by the integration tests: skips are printed and counted, and
//! `ZCSAFE_REQUIRE_VM=1` (CI) turns a skip into a failure.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Records a skipped test with its reason; panics instead when VMs are required.
pub fn skip(test: &str, reason: &str) {
    zcsafe_vm::skip::skipped(test, reason);
}

/// Records a skip that CI accepts even with `ZCSAFE_REQUIRE_VM=1` (an optional artefact
/// such as the VM agent was not built).
pub fn skip_optional(test: &str, reason: &str) {
    zcsafe_vm::skip::skipped_optional(test, reason);
}

/// The 5.10 cloud kernel (fastest to boot), fetched into the user's cache if needed.
pub fn kernel(test: &str) -> Option<zcsafe_vm::Kernel> {
    if zcsafe_vm::skip::skip(test) {
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

pub use zcsafe_vm::skip::which;

/// One package of a local test repository ([`local_repo`]).
pub struct FakeDeb<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub depends: &'a [&'a str],
    /// Path inside the package (no leading `/`) and contents.
    pub files: &'a [(&'a str, &'a [u8])],
}

/// A flat apt repository (`deb [trusted=yes] file:… ./`) in `dir/repo`: each package built
/// with `dpkg-deb`, the `Packages` index written here (no dpkg-dev needed). `None`, after a
/// counted skip, when apt-get or dpkg-deb is missing.
pub fn local_repo(test: &str, dir: &Path, debs: &[FakeDeb<'_>]) -> Option<PathBuf> {
    use sha2::{Digest, Sha256};
    for tool in ["apt-get", "apt-cache", "dpkg-deb"] {
        if which(tool).is_none() {
            skip(
                test,
                &format!("{tool} is not installed (apt-get install apt dpkg)"),
            );
            return None;
        }
    }
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let mut index = String::new();
    for d in debs {
        let pkg = dir.join("build").join(d.name);
        std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
        for (path, data) in d.files {
            let p = pkg.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        let depends = if d.depends.is_empty() {
            String::new()
        } else {
            format!("Depends: {}\n", d.depends.join(", "))
        };
        let fields = format!(
            "Package: {}\nVersion: {}\nArchitecture: amd64\nMaintainer: zcsafe tests <t@example.org>\n{depends}",
            d.name, d.version
        );
        let description = "Description: zcsafe test package\n";
        let control = format!("{fields}{description}");
        std::fs::write(pkg.join("DEBIAN/control"), &control).unwrap();
        let file = format!("{}_{}_amd64.deb", d.name, d.version);
        let out = Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "--build"])
            .arg(&pkg)
            .arg(repo.join(&file))
            .output()
            .expect("dpkg-deb runs");
        assert!(
            out.status.success(),
            "dpkg-deb --build {}: {}",
            d.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(repo.join(&file)).unwrap();
        index.push_str(&format!(
            "{fields}Filename: ./{file}\nSize: {}\nSHA256: {:x}\n{description}\n",
            bytes.len(),
            Sha256::digest(&bytes)
        ));
    }
    std::fs::write(repo.join("Packages"), index).unwrap();
    Some(repo)
}
