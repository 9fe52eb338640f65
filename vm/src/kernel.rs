//! Fetching a catalogue kernel: resolve its packages, download them with the private apt
//! root, unpack them with `dpkg-deb -x`, and find the image and the modules.

use crate::apt::{is_kernel_payload, AptRoot};
use crate::catalogue::{Catalogue, KernelEntry};
use crate::error::{IoContext, Result, VmError};
use crate::process;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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
}

impl Fetcher {
    pub fn new(cache: PathBuf, catalogue: &Catalogue) -> Fetcher {
        Fetcher {
            cache,
            mirror: catalogue.effective_mirror(),
            refresh: false,
            check_valid_until: catalogue.check_valid_until,
        }
    }

    pub fn apt_root(&self, suite: &str) -> AptRoot {
        let mut a = AptRoot::new(self.cache.join("apt").join(suite), suite, &self.mirror);
        a.check_valid_until = self.check_valid_until;
        a
    }

    fn kernel_dir(&self, entry: &KernelEntry) -> PathBuf {
        self.cache.join("kernels").join(&entry.name)
    }

    /// The cached kernel of `entry`, if one was fetched before (no network needed).
    pub fn cached(&self, entry: &KernelEntry) -> Option<Kernel> {
        let p = self.kernel_dir(entry).join("current.json");
        let k: Kernel = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
        (k.vmlinuz.is_file() && k.modules.is_dir()).then_some(k)
    }

    /// Returns the kernel, fetching it if it is not cached (or `refresh` is set).
    pub fn fetch(&self, entry: &KernelEntry) -> Result<Kernel> {
        if !self.refresh {
            if let Some(k) = self.cached(entry) {
                return Ok(k);
            }
        }
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
        let unpacked = dir.join(sanitize(&format!("{}_{}", packages[0], version)));
        if !unpacked.join(".complete").exists() {
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
            let tmp = dir.join(format!(".unpack-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).at(&tmp)?;
            for deb in &debs {
                let mut c = Command::new("dpkg-deb");
                c.arg("-x").arg(deb).arg(&tmp);
                process::run_ok(
                    c,
                    Duration::from_secs(600),
                    &format!("dpkg-deb -x {}", deb.display()),
                )?;
            }
            std::fs::write(tmp.join(".complete"), "").at(&tmp)?;
            let _ = std::fs::remove_dir_all(&unpacked);
            std::fs::rename(&tmp, &unpacked).at(&unpacked)?;
            // The .debs are no longer needed: the unpacked tree is the cache.
            let _ = std::fs::remove_dir_all(&debs_dir);
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
        let cur = dir.join("current.json");
        std::fs::write(&cur, serde_json::to_vec_pretty(&k).expect("serialisable")).at(&cur)?;
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
