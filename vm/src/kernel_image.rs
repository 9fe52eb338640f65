//! The user's own kernel (`zcsafe matrix --kernel-image PATH [--modules DIR]`): the
//! matrix on a kernel a developer built or a Debian package they have, instead of a
//! catalogue kernel. Its profile is probed in the guest like any other's (`zcsafe run`
//! there probes the kernel it runs on); its cells are named after its `uname -r`.
//!
//! What `PATH` may be ([`Source`]):
//!
//! - a kernel image file (`bzImage`, `vmlinuz-*`), with `--modules DIR` for its modules
//!   (`lib/modules/<release>`, or an `INSTALL_MOD_PATH` root that holds it) or none (a
//!   kernel with virtio and veth built in);
//! - a `linux-image-*.deb`: unpacked once into the cache (`<cache>/kernel-images/`,
//!   under the hash of the file, published by a rename as the catalogue's kernels are);
//! - a kernel build tree (`arch/x86/boot/bzImage`): its modules are `--modules DIR`, else
//!   installed with `make modules_install INSTALL_MOD_PATH=…` into the cache when the
//!   tree built any (`modules.order` is not empty);
//! - an unpacked package tree (`boot/vmlinuz-<release>` + `lib/modules/<release>`).
//!
//! The release is read from the image's boot-protocol header (`kernel_version`,
//! Documentation/arch/x86/boot.rst), so a `--modules` directory of another release is
//! refused before anything boots: its modules would not load.

use crate::error::{IoContext, Result, VmError};
use crate::kernel::{locate, Kernel};
use crate::process;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Deadline of unpacking a `.deb` or of `make modules_install`.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

/// What the user gave, as [`classify`] recognised it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A bootable image file.
    Image(PathBuf),
    /// A Debian kernel package.
    Deb(PathBuf),
    /// A kernel build tree: `arch/x86/boot/bzImage` inside.
    BuildTree(PathBuf),
    /// An unpacked kernel package (or an `INSTALL_PATH` + `INSTALL_MOD_PATH` root).
    Unpacked(PathBuf),
}

/// The error for `path`: what is wrong, and what to give instead.
fn bad(path: &Path, problem: impl Into<String>) -> VmError {
    VmError::KernelImage {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Recognises what `path` is; an error that says what it should be otherwise.
pub fn classify(path: &Path) -> Result<Source> {
    let md = std::fs::metadata(path).map_err(|e| bad(path, e.to_string()))?;
    if md.is_dir() {
        if path.join("arch/x86/boot/bzImage").is_file() {
            return Ok(Source::BuildTree(path.to_path_buf()));
        }
        if locate(path).is_ok() {
            return Ok(Source::Unpacked(path.to_path_buf()));
        }
        return Err(bad(
            path,
            "a directory, but neither a kernel build tree (no arch/x86/boot/bzImage: run `make bzImage modules` first) \
             nor an unpacked kernel package (no boot/vmlinuz-<release> with lib/modules/<release>)",
        ));
    }
    if path.extension().is_some_and(|e| e == "deb") {
        return Ok(Source::Deb(path.to_path_buf()));
    }
    let bytes = std::fs::read(path).at(path)?;
    match release_of_image(&bytes) {
        Some(_) => Ok(Source::Image(path.to_path_buf())),
        None => Err(bad(
            path,
            "not an x86 Linux kernel image (no boot-protocol header `HdrS` with a kernel version): \
             give a bzImage/vmlinuz, a linux-image .deb or a kernel build tree",
        )),
    }
}

/// The `uname -r` of a bzImage, from its setup header: the `HdrS` magic at 0x202 and, at
/// 0x20E, the offset (from 0x200) of a NUL-terminated "release (builder) #1 SMP …" line.
pub fn release_of_image(image: &[u8]) -> Option<String> {
    if image.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let at = u16::from_le_bytes([*image.get(0x20E)?, *image.get(0x20F)?]) as usize + 0x200;
    let line = image.get(at..at.checked_add(256)?.min(image.len()))?;
    let end = line.iter().position(|&b| b == 0 || b == b' ')?;
    let release = std::str::from_utf8(&line[..end]).ok()?;
    let ok = !release.is_empty()
        && release.chars().next()?.is_ascii_digit()
        && release.chars().all(|c| c.is_ascii_graphic());
    ok.then(|| release.to_string())
}

/// The kernel `path` (and `modules`) name, ready to boot; a `.deb` is unpacked and a build
/// tree's modules are installed under `cache` first. Errors say what is wrong with which
/// path, before anything boots.
pub fn resolve(path: &Path, modules: Option<&Path>, cache: &Path) -> Result<Kernel> {
    let (vmlinuz, found_modules, version, packages) = match classify(path)? {
        Source::Image(p) => (p, None, String::new(), vec![]),
        Source::BuildTree(t) => {
            let image = t.join("arch/x86/boot/bzImage");
            let installed = match modules {
                Some(_) => None,
                None => install_tree_modules(&t, &image, cache)?,
            };
            (image, installed, String::new(), vec![])
        }
        Source::Unpacked(d) => {
            let (v, m, _) = locate(&d)?;
            (v, Some(m), String::new(), vec![])
        }
        Source::Deb(deb) => {
            let root = unpack_deb(&deb, cache)?;
            let (v, m, _) = locate(&root).map_err(|_| {
                bad(
                    &deb,
                    "the package holds no kernel (no boot/vmlinuz-<release> with lib/modules/<release>): \
                     give the linux-image-<release> package, not a meta or headers package",
                )
            })?;
            let field = |f: &str| deb_field(&deb, f).unwrap_or_default();
            (v, Some(m), field("Version"), vec![field("Package")])
        }
    };
    let bytes = std::fs::read(&vmlinuz).at(&vmlinuz)?;
    let release = release_of_image(&bytes).ok_or_else(|| {
        bad(
            &vmlinuz,
            "not an x86 Linux kernel image (no boot-protocol header `HdrS`)",
        )
    })?;
    let modules = match modules {
        Some(m) => Some(modules_dir(m, &release)?),
        None => found_modules,
    };
    if let Some(m) = &modules {
        let named = m.file_name().map(|n| n.to_string_lossy().into_owned());
        if named.as_deref() != Some(release.as_str()) {
            return Err(bad(
                m,
                format!(
                    "modules for release {}, but the image is {release}: its modules would not load \
                     (give lib/modules/{release}, or the INSTALL_MOD_PATH it was installed into)",
                    named.unwrap_or_default()
                ),
            ));
        }
    }
    Ok(Kernel {
        name: release.clone(),
        suite: "local".into(),
        release,
        version,
        packages,
        vmlinuz,
        modules: modules.unwrap_or_default(),
    })
}

/// `--modules DIR`: `lib/modules/<release>` itself, or a root (`INSTALL_MOD_PATH`) that
/// holds `lib/modules/<release>` (or `usr/lib/modules/<release>`).
fn modules_dir(dir: &Path, release: &str) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(bad(dir, "the modules directory does not exist"));
    }
    if dir.join("kernel").is_dir() || dir.join("modules.order").is_file() {
        return Ok(dir.to_path_buf());
    }
    for base in ["lib/modules", "usr/lib/modules"] {
        let d = dir.join(base).join(release);
        if d.is_dir() {
            return Ok(d);
        }
    }
    Err(bad(
        dir,
        format!(
            "no modules of {release} here: give lib/modules/{release} (with kernel/ inside) or the \
             INSTALL_MOD_PATH of `make modules_install`"
        ),
    ))
}

/// `<cache>/kernel-images/<sha256 of key, 16 hex digits>`.
fn cache_entry(cache: &Path, key: &[u8]) -> PathBuf {
    let hash = Sha256::digest(key);
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    cache.join("kernel-images").join(hex)
}

/// Fills `dir` once with `fill` (into a `.partial-` sibling, published by a rename with a
/// `.complete` marker, so a killed run never leaves a tree that looks complete).
fn publish(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    if dir.join(".complete").is_file() {
        return Ok(dir.to_path_buf());
    }
    let parent = dir.parent().expect("cache entries have a parent");
    std::fs::create_dir_all(parent).at(parent)?;
    let name = dir.file_name().expect("named").to_string_lossy();
    let tmp = parent.join(format!(".partial-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).at(&tmp)?;
    let filled = fill(&tmp).and_then(|()| std::fs::write(tmp.join(".complete"), "").at(&tmp));
    if let Err(e) = filled {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir).at(dir)?;
    Ok(dir.to_path_buf())
}

/// Unpacks `deb` (`dpkg-deb -x`) into the cache, once per content.
fn unpack_deb(deb: &Path, cache: &Path) -> Result<PathBuf> {
    let bytes = std::fs::read(deb).at(deb)?;
    if !bytes.starts_with(b"!<arch>\n") {
        return Err(bad(
            deb,
            "not a Debian package (no `!<arch>` header): give a linux-image-<release>_<version>_amd64.deb",
        ));
    }
    let dir = cache_entry(cache, &bytes);
    publish(&dir, |tmp| {
        let mut c = Command::new("dpkg-deb");
        c.arg("-x").arg(deb).arg(tmp);
        process::run_ok(
            c,
            INSTALL_TIMEOUT,
            &format!("dpkg-deb -x {}", deb.display()),
        )
        .map(|_| ())
    })
}

/// One control field of `deb` (`dpkg-deb -f`).
fn deb_field(deb: &Path, field: &str) -> Option<String> {
    let mut c = Command::new("dpkg-deb");
    c.arg("-f").arg(deb).arg(field);
    let out = process::run_ok(c, Duration::from_secs(60), "dpkg-deb -f").ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A build tree's modules, installed with `make modules_install` into the cache (keyed on
/// the tree and its image's size and time, so a rebuilt kernel installs again); `None`
/// for a tree that built no modules.
fn install_tree_modules(tree: &Path, image: &Path, cache: &Path) -> Result<Option<PathBuf>> {
    let order = std::fs::read_to_string(tree.join("modules.order")).unwrap_or_default();
    if order.trim().is_empty() {
        return Ok(None);
    }
    let md = std::fs::metadata(image).at(image)?;
    let key = format!(
        "{} {} {:?}",
        tree.canonicalize().at(tree)?.display(),
        md.len(),
        md.modified().ok()
    );
    let root = publish(&cache_entry(cache, key.as_bytes()), |tmp| {
        let mut c = Command::new("make");
        c.arg("-C")
            .arg(tree)
            .arg("modules_install")
            .arg(format!("INSTALL_MOD_PATH={}", tmp.display()))
            .arg("DEPMOD=true");
        process::run_ok(
            c,
            INSTALL_TIMEOUT,
            &format!("make -C {} modules_install", tree.display()),
        )
        .map(|_| ())
    })?;
    let release = release_of_image(&std::fs::read(image).at(image)?)
        .ok_or_else(|| bad(image, "not an x86 Linux kernel image"))?;
    modules_dir(&root, &release).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A setup header as the kernel's build writes it (arch/x86/boot/header.S).
    fn header(version: &[u8]) -> Vec<u8> {
        let mut img = vec![0u8; 0x400];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x20E..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        img[0x300..0x300 + version.len()].copy_from_slice(version);
        img
    }

    #[test]
    fn the_release_is_read_from_the_setup_header() {
        let img = header(b"5.10.0-32-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP\0");
        assert_eq!(
            release_of_image(&img).as_deref(),
            Some("5.10.0-32-cloud-amd64")
        );
        let mut no_magic = img.clone();
        no_magic[0x202] = b'X';
        assert_eq!(release_of_image(&no_magic), None);
        assert_eq!(release_of_image(&img[..0x210]), None, "truncated");
        assert_eq!(release_of_image(&header(b"\0")), None, "empty version");
        assert_eq!(release_of_image(b"#!/bin/sh\n"), None);
    }

    #[test]
    fn bad_paths_say_what_to_give_instead() {
        let t = tempfile::tempdir().unwrap();
        let msg = |p: &Path| resolve(p, None, t.path()).unwrap_err().to_string();
        assert!(msg(&t.path().join("nope")).contains("No such file"));
        let text = t.path().join("vmlinuz");
        std::fs::write(&text, "not a kernel").unwrap();
        assert!(
            msg(&text).contains("not an x86 Linux kernel image"),
            "{}",
            msg(&text)
        );
        let deb = t.path().join("x.deb");
        std::fs::write(&deb, "junk").unwrap();
        assert!(msg(&deb).contains("not a Debian package"));
        assert!(msg(t.path()).contains("neither a kernel build tree"));
        // An image whose modules are of another release.
        let img = t.path().join("bzImage");
        std::fs::write(&img, header(b"6.19.0-rc1 (me@host) #1\0")).unwrap();
        let mods = t.path().join("lib/modules/6.18.0/kernel");
        std::fs::create_dir_all(&mods).unwrap();
        let err = resolve(&img, Some(t.path()), t.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no modules of 6.19.0-rc1"), "{err}");
        let err = resolve(&img, Some(mods.parent().unwrap()), t.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("modules for release 6.18.0, but the image is 6.19.0-rc1"),
            "{err}"
        );
        // The same image alone: a monolithic kernel named after its release.
        let k = resolve(&img, None, t.path()).unwrap();
        assert_eq!(
            (k.name.as_str(), k.release.as_str()),
            ("6.19.0-rc1", "6.19.0-rc1")
        );
        assert_eq!(k.modules, PathBuf::new());
    }
}
