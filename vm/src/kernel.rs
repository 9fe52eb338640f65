//! Fetching a catalogue kernel: resolve its packages, download them with the private apt
//! root, unpack them with `dpkg-deb -x`, and find the image and the modules.
//!
//! # The cache, and why it is safe to share
//!
//! One cache ([`cache_dir`]) serves every zcsafe process of a user at once: two `zcsafe
//! matrix` runs, the test threads of `cargo test`, a run killed by SIGKILL or a power cut of
//! the terminal. Its layout:
//!
//! ```text
//! <cache>/apt/<suite>/              private apt root (crate::apt), its own zcsafe-apt.lock
//! <cache>/kernels/<name>/fetch.lock held for a whole fetch of kernel <name>
//! <cache>/kernels/<name>/<pkg>_<version>/  an unpacked kernel, with a .complete marker
//! <cache>/kernels/<name>/current.json      which unpacked kernel `<name>` means now
//! <cache>/kernels/<name>/debs/             the .debs, only while a fetch runs
//! <cache>/kernels/<name>/.partial-*        a fetch's work in progress
//! ```
//!
//! - **One fetch per kernel at a time.** A fetch holds `fetch.lock` ([`crate::lock`]) from
//!   its cache check to its `current.json`; a second fetcher waits (saying for whom), then
//!   checks the cache *again*, so the kernel is downloaded once however many wait.
//! - **Nothing incomplete looks complete.** A kernel is unpacked into `.partial-unpack-*`
//!   and renamed to `<pkg>_<version>` only with its `.complete` marker inside; `current.json`
//!   is written to a `.partial-` file and renamed over the old one. A rename is atomic, so
//!   a fetch killed at any instant leaves either the old state or the new one, plus
//!   garbage whose names say it is garbage.
//! - **The next fetch repairs.** Only the lock holder writes in `kernels/<name>`, so
//!   whatever `.partial-*`, `debs/` or marker-less tree the holder finds belongs to a dead
//!   fetch, and it deletes it before starting. Complete trees are never modified, so
//!   [`Fetcher::cached`] may read them without the lock (the warm path takes no lock).

use crate::apt::{is_kernel_payload, AptRoot};
use crate::catalogue::{Catalogue, KernelEntry};
use crate::error::{IoContext, Result, VmError};
use crate::{lock, process};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Deadline of one `dpkg-deb -x`.
const UNPACK_TIMEOUT: Duration = Duration::from_secs(600);

/// Marks an unpacked tree as complete; it is written before the rename that publishes it.
const COMPLETE: &str = ".complete";

/// Prefix of every temporary entry in a kernel directory: garbage unless its writer holds
/// the lock.
const PARTIAL: &str = ".partial-";

/// Test hook: `ZCSAFE_TEST_FETCH_PAUSE=<point>:<file>` makes a fetch stop at `<point>`
/// (see `pause_point`), say so on stderr and wait (at most 2 min) until `<file>` exists,
/// so tests can kill or race a fetch at a named moment instead of sleeping and hoping.
pub const PAUSE_ENV: &str = "ZCSAFE_TEST_FETCH_PAUSE";

/// A kernel ready to boot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Kernel {
    /// Catalogue name (`5.10`), or `custom` for `--vmlinuz`.
    pub name: String,
    pub suite: String,
    /// `uname -r` of the kernel (directory name under `lib/modules`).
    pub release: String,
    /// Debian package version (`5.10.223-1`).
    pub version: String,
    pub packages: Vec<String>,
    pub vmlinuz: PathBuf,
    /// `…/lib/modules/<release>`; may be empty of modules for a monolithic kernel.
    pub modules: PathBuf,
}

/// The user's cache: `$ZCSAFE_CACHE_DIR`, `$XDG_CACHE_HOME/zcsafe` or `~/.cache/zcsafe`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ZCSAFE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("zcsafe");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache").join("zcsafe")
}

/// Fetches kernels into a cache directory.
#[derive(Clone, Debug)]
pub struct Fetcher {
    pub cache: PathBuf,
    pub mirror: String,
    /// Run `apt-get update` even when a kernel is cached (pick up a newer ABI).
    pub refresh: bool,
    pub check_valid_until: bool,
    /// Skip signature checks: only for tests with a local unsigned `file:` repository.
    pub trusted: bool,
    /// How long to wait for another fetch of the same kernel ([`lock::timeout`]).
    pub lock_timeout: Duration,
}

impl Fetcher {
    pub fn new(cache: PathBuf, catalogue: &Catalogue) -> Fetcher {
        Fetcher {
            cache,
            mirror: catalogue.effective_mirror(),
            refresh: false,
            check_valid_until: catalogue.check_valid_until,
            trusted: false,
            lock_timeout: lock::timeout(),
        }
    }

    pub fn apt_root(&self, suite: &str) -> AptRoot {
        let mut a = AptRoot::new(self.cache.join("apt").join(suite), suite, &self.mirror);
        a.check_valid_until = self.check_valid_until;
        a.trusted = self.trusted;
        a.lock_timeout = self.lock_timeout;
        a
    }

    /// `<cache>/kernels/<name>`: everything of one catalogue kernel (see the module docs).
    pub fn kernel_dir(&self, entry: &KernelEntry) -> PathBuf {
        self.cache.join("kernels").join(&entry.name)
    }

    /// The lock file held for a whole fetch of `entry`.
    pub fn lock_path(&self, entry: &KernelEntry) -> PathBuf {
        self.kernel_dir(entry).join("fetch.lock")
    }

    /// Where the packages `package`…, version `version`, are unpacked.
    fn unpack_dir(&self, entry: &KernelEntry, package: &str, version: &str) -> PathBuf {
        self.kernel_dir(entry)
            .join(sanitize(&format!("{package}_{version}")))
    }

    /// The cached kernel of `entry`, if one was fetched before (no network, no lock): its
    /// `current.json` parses and names files inside a tree marked complete.
    pub fn cached(&self, entry: &KernelEntry) -> Option<Kernel> {
        let p = self.kernel_dir(entry).join("current.json");
        let k: Kernel = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
        let tree = self.unpack_dir(entry, k.packages.first()?, &k.version);
        (tree.join(COMPLETE).is_file()
            && k.vmlinuz.starts_with(&tree)
            && k.vmlinuz.is_file()
            && k.modules.is_dir())
        .then_some(k)
    }

    /// Returns the kernel, fetching it if it is not cached (or `refresh` is set).
    ///
    /// Safe to call from many threads and processes at once on one cache: they fetch one
    /// after the other, and all but the first find the kernel cached (module docs).
    pub fn fetch(&self, entry: &KernelEntry) -> Result<Kernel> {
        if !self.refresh {
            if let Some(k) = self.cached(entry) {
                return Ok(k);
            }
        }
        let _lock = lock::acquire(
            &self.lock_path(entry),
            &format!("kernel {}", entry.name),
            self.lock_timeout,
        )?;
        // Whoever held the lock before us may have fetched it meanwhile.
        if !self.refresh {
            if let Some(k) = self.cached(entry) {
                return Ok(k);
            }
        }
        repair(&self.kernel_dir(entry))?;
        self.fetch_locked(entry)
    }

    /// The fetch proper; the caller holds the kernel's lock and has repaired its directory.
    fn fetch_locked(&self, entry: &KernelEntry) -> Result<Kernel> {
        let started = Instant::now();
        let fetch_err = |package: &str, message: String| VmError::Fetch {
            kernel: entry.name.clone(),
            package: package.to_string(),
            suite: entry.suite.clone(),
            mirror: self.mirror.clone(),
            message,
        };
        let apt = self.apt_root(&entry.suite);
        let first = entry
            .meta
            .clone()
            .unwrap_or_else(|| entry.packages[0].clone());
        if self.cached(entry).is_none() {
            eprintln!(
                "zcsafe: fetching kernel {} ({}, {first}) from {} into {}...",
                entry.name,
                entry.suite,
                self.mirror,
                self.kernel_dir(entry).display()
            );
        }
        if let Err(e) = apt.update() {
            // A refresh that fails offline keeps the cached kernel.
            if let Some(k) = self.cached(entry) {
                eprintln!(
                    "zcsafe: apt-get update for {} failed, using the cached kernel {}: {e}",
                    entry.suite, k.release
                );
                return Ok(k);
            }
            return Err(fetch_err(&first, e.to_string()));
        }
        let packages = self.resolve(&apt, entry)?;
        let version = apt.show(&packages[0])?.version;
        let dir = self.kernel_dir(entry);
        let unpacked = self.unpack_dir(entry, &packages[0], &version);
        let downloaded = !unpacked.join(COMPLETE).is_file();
        if downloaded {
            let debs_dir = dir.join("debs");
            let debs = apt
                .download(&packages, &debs_dir)
                .map_err(|e| fetch_err(&packages.join(" "), e.to_string()))?;
            if debs.len() < packages.len() {
                return Err(fetch_err(
                    &packages.join(" "),
                    format!("apt-get download left only {debs:?}"),
                ));
            }
            pause_point("downloaded");
            let tmp = dir.join(format!("{PARTIAL}unpack-{}", std::process::id()));
            remove_any(&tmp)?;
            std::fs::create_dir_all(&tmp).at(&tmp)?;
            for (i, deb) in debs.iter().enumerate() {
                if i == 1 {
                    pause_point("unpacking");
                }
                let mut c = Command::new("dpkg-deb");
                c.arg("-x").arg(deb).arg(&tmp);
                process::run_ok(c, UNPACK_TIMEOUT, &format!("dpkg-deb -x {}", deb.display()))?;
            }
            // Fail before publishing if the tree is not a kernel: a published tree is final.
            locate(&tmp)?;
            std::fs::write(tmp.join(COMPLETE), "").at(&tmp)?;
            remove_any(&unpacked)?;
            std::fs::rename(&tmp, &unpacked).at(&unpacked)?;
            pause_point("published");
            // The .debs are no longer needed: the unpacked tree is the cache.
            remove_any(&debs_dir)?;
        }
        let (vmlinuz, modules, release) = locate(&unpacked)?;
        let k = Kernel {
            name: entry.name.clone(),
            suite: entry.suite.clone(),
            release,
            version,
            packages,
            vmlinuz,
            modules,
        };
        write_atomic(
            &dir.join("current.json"),
            &serde_json::to_vec_pretty(&k).expect("serialisable"),
        )?;
        if downloaded {
            eprintln!(
                "zcsafe: kernel {} fetched: {} {} ({}) in {:.0} s",
                entry.name,
                k.packages.join(" "),
                k.version,
                k.release,
                started.elapsed().as_secs_f64()
            );
        }
        Ok(k)
    }

    /// The concrete packages of an entry: pinned ones, or the kernel payload packages
    /// reachable from the meta package through `Depends` (two levels cover every suite).
    pub fn resolve(&self, apt: &AptRoot, entry: &KernelEntry) -> Result<Vec<String>> {
        if !entry.packages.is_empty() {
            for p in &entry.packages {
                apt.show(p)?;
            }
            return Ok(entry.packages.clone());
        }
        let meta = entry.meta.as_deref().expect("validated: meta or packages");
        let mut out = Vec::new();
        let mut frontier = vec![meta.to_string()];
        for _depth in 0..3 {
            let mut next = Vec::new();
            for p in frontier {
                for d in apt.show(&p)?.depends {
                    if is_kernel_payload(&d) && !out.contains(&d) {
                        out.push(d.clone());
                        next.push(d);
                    }
                }
            }
            frontier = next;
        }
        if out.is_empty() {
            return Err(VmError::NoSuchPackage {
                package: meta.to_string(),
                suite: entry.suite.clone(),
                message: "it depends on no linux-image-<version>/linux-binary-<version> package"
                    .into(),
            });
        }
        Ok(out)
    }
}

/// Deletes what a dead fetch left in a kernel directory: `.partial-*` entries (and the
/// `.unpack-*` of older versions), the `debs/` directory (a `.deb` may be truncated), and any
/// tree without its `.complete` marker. The caller holds the kernel's lock, so none of these
/// can belong to a live fetch; complete trees and `current.json` are kept.
fn repair(dir: &Path) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let garbage = name.starts_with(PARTIAL)
            || name.starts_with(".unpack-")
            || name == "debs"
            || (path.is_dir() && !name.starts_with('.') && !path.join(COMPLETE).is_file());
        if garbage {
            eprintln!(
                "zcsafe: removing {} left by an interrupted fetch",
                path.display()
            );
            remove_any(&path)?;
        }
    }
    Ok(())
}

/// Removes a file or a directory tree; absent is fine.
fn remove_any(path: &Path) -> Result<()> {
    let r = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(md) if md.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r.at(path),
    }
}

/// Replaces `path` with `data` so that readers see the old or the new content, never a mix
/// (a `.partial-` sibling, then a rename over `path`).
fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        "{PARTIAL}{}-{}",
        name.unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, data).at(&tmp)?;
    pause_point("current-written");
    std::fs::rename(&tmp, path).at(path)
}

/// The test hook of [`PAUSE_ENV`]. Points, in fetch order: `apt-locked` (`apt-get update`
/// is about to run under the apt root's lock), `downloaded` (the .debs are in
/// `debs/`), `unpacking` (the first of several .debs is unpacked in `.partial-unpack-*`),
/// `published` (the tree is renamed into place, `current.json` not yet written),
/// `current-written` (the new `current.json` is written, not yet renamed).
pub(crate) fn pause_point(point: &str) {
    let Ok(spec) = std::env::var(PAUSE_ENV) else {
        return;
    };
    let Some((at, file)) = spec.split_once(':') else {
        return;
    };
    if at != point {
        return;
    }
    eprintln!(
        "zcsafe: test pause at {point} (pid {}) until {file} exists",
        std::process::id()
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while !Path::new(file).exists() && Instant::now() < deadline && !process::interrupted() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Finds the image, the modules directory and the release in an unpacked kernel
/// (`boot/vmlinuz-*` + `lib/modules/<r>`, or sid's `usr/lib/modules/<r>/vmlinuz`).
pub fn locate(root: &Path) -> Result<(PathBuf, PathBuf, String)> {
    for base in ["lib/modules", "usr/lib/modules"] {
        let Ok(rd) = std::fs::read_dir(root.join(base)) else {
            continue;
        };
        for e in rd.flatten() {
            let dir = e.path();
            if !dir.join("kernel").is_dir() && !dir.join("vmlinuz").is_file() {
                continue;
            }
            let release = e.file_name().to_string_lossy().into_owned();
            let candidates = [
                dir.join("vmlinuz"),
                root.join("boot").join(format!("vmlinuz-{release}")),
            ];
            if let Some(v) = candidates.into_iter().find(|p| p.is_file()) {
                // Modules may come from a separate package unpacked into the other base.
                let modules = ["lib/modules", "usr/lib/modules"]
                    .iter()
                    .map(|b| root.join(b).join(&release))
                    .find(|d| d.join("kernel").is_dir())
                    .unwrap_or(dir.clone());
                return Ok((v, modules, release));
            }
        }
    }
    Err(VmError::BadKernel {
        dir: root.to_path_buf(),
        what: "boot/vmlinuz-<release> or usr/lib/modules/<release>/vmlinuz".into(),
    })
}

/// A kernel from a local image (`--vmlinuz PATH [--modules DIR]`), e.g. a self-built one.
pub fn custom(vmlinuz: &Path, modules: Option<&Path>) -> Result<Kernel> {
    if !vmlinuz.is_file() {
        return Err(VmError::BadKernel {
            dir: vmlinuz.to_path_buf(),
            what: "kernel image file".into(),
        });
    }
    let modules = modules.map(Path::to_path_buf).unwrap_or_default();
    let release = modules
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "custom".into());
    Ok(Kernel {
        name: "custom".into(),
        suite: "local".into(),
        release,
        version: String::new(),
        packages: vec![],
        vmlinuz: vmlinuz.to_path_buf(),
        modules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_handles_both_layouts() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        std::fs::create_dir_all(a.join("lib/modules/5.10.0-32-cloud-amd64/kernel")).unwrap();
        std::fs::create_dir_all(a.join("boot")).unwrap();
        std::fs::write(a.join("boot/vmlinuz-5.10.0-32-cloud-amd64"), "x").unwrap();
        let (v, m, r) = locate(&a).unwrap();
        assert_eq!(r, "5.10.0-32-cloud-amd64");
        assert!(v.ends_with("boot/vmlinuz-5.10.0-32-cloud-amd64"));
        assert!(m.ends_with("lib/modules/5.10.0-32-cloud-amd64"));

        let b = t.path().join("b");
        let rel = "7.2.13+deb14-cloud-amd64";
        std::fs::create_dir_all(b.join("usr/lib/modules").join(rel).join("kernel")).unwrap();
        std::fs::write(b.join("usr/lib/modules").join(rel).join("vmlinuz"), "x").unwrap();
        let (v, _, r) = locate(&b).unwrap();
        assert_eq!(r, rel);
        assert!(v.ends_with("vmlinuz"));

        assert!(matches!(locate(t.path()), Err(VmError::BadKernel { .. })));
    }

    #[test]
    fn cache_dir_honours_the_environment_order() {
        // Only checks the shape; the environment is process-global, so no mutation here.
        assert!(cache_dir().ends_with("zcsafe") || std::env::var_os("ZCSAFE_CACHE_DIR").is_some());
    }
}
