//! A private apt configuration: one suite, its own sources, lists, cache and state.
//!
//! The host's apt sources must never see another Debian suite: a plain `apt-get install`
//! would then upgrade libc and half the system. So every apt call here runs with
//! `APT_CONFIG` pointing at a file that redirects *every* directory apt writes (lists,
//! cache, state, logs, lock files) into `root`, and ignores `/etc/apt/apt.conf.d` and
//! `/etc/apt/sources.list.d`. Signatures are checked by apt against the
//! `signed-by=` keyring; nothing is ever installed, only downloaded.
//!
//! apt takes its own locks and *fails* when another apt holds them, and [`AptRoot::prepare`]
//! rewrites the configuration every apt call reads. So each apt operation of a root
//! (update, show, download) runs under the root's own lock file, `zcsafe-apt.lock`
//! ([`crate::lock`]): a second process or thread waits its turn instead of failing.

use crate::error::{IoContext, Result, VmError};
use crate::lock::{self, FileLock};
use crate::process;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The Debian archive keyring (package `debian-archive-keyring`).
pub const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

const UPDATE_TIMEOUT: Duration = Duration::from_secs(300);
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(900);
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// One private apt root for one suite.
#[derive(Clone, Debug)]
pub struct AptRoot {
    pub root: PathBuf,
    pub suite: String,
    pub mirror: String,
    pub keyring: PathBuf,
    /// Skip signature checks: only for tests with a local `file:` repository.
    pub trusted: bool,
    pub check_valid_until: bool,
    /// How long to wait for another apt call on this root ([`lock::timeout`]).
    pub lock_timeout: Duration,
}

impl AptRoot {
    pub fn new(root: impl Into<PathBuf>, suite: &str, mirror: &str) -> AptRoot {
        AptRoot {
            root: root.into(),
            suite: suite.to_string(),
            mirror: mirror.trim_end_matches('/').to_string(),
            keyring: std::env::var_os("ZCSAFE_APT_KEYRING")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING)),
            trusted: false,
            check_valid_until: true,
            lock_timeout: lock::timeout(),
        }
    }

    /// The lock file serialising apt calls on this root.
    pub fn lock_path(&self) -> PathBuf {
        self.p("zcsafe-apt.lock")
    }

    /// Waits for the other apt calls on this root (threads and processes) to finish.
    fn lock(&self) -> Result<FileLock> {
        lock::acquire(
            &self.lock_path(),
            &format!("the apt root {} ({})", self.root.display(), self.suite),
            self.lock_timeout,
        )
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The sources list: one line, this suite only.
    pub fn sources_line(&self) -> String {
        let opt = if self.trusted {
            "trusted=yes".to_string()
        } else {
            format!("signed-by={}", self.keyring.display())
        };
        if self.suite == "./" {
            // A flat repository (tests).
            format!("deb [{opt}] {} ./\n", self.mirror)
        } else {
            format!(
                "deb [arch=amd64 {opt}] {} {} main\n",
                self.mirror, self.suite
            )
        }
    }

    /// The apt.conf that confines apt to `root`. Every `Dir::` apt writes is listed.
    pub fn config_text(&self) -> String {
        let d = |rel: &str| self.p(rel).display().to_string();
        let user = current_user();
        format!(
            r#"Dir "/";
Dir::Etc "{etc}";
Dir::Etc::main "{etc}/apt.conf";
Dir::Etc::Parts "{etc}/apt.conf.d";
Dir::Etc::SourceList "{etc}/sources.list";
Dir::Etc::SourceParts "{etc}/sources.list.d";
Dir::Etc::Preferences "{etc}/preferences";
Dir::Etc::PreferencesParts "{etc}/preferences.d";
Dir::Etc::Trusted "{etc}/trusted.gpg";
Dir::Etc::TrustedParts "{etc}/trusted.gpg.d";
Dir::State "{state}";
Dir::State::Lists "{state}/lists";
Dir::State::status "{state}/status";
Dir::State::extended_states "{state}/extended_states";
Dir::Cache "{cache}";
Dir::Cache::archives "{cache}/archives";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Dir::Log "{log}";
Dir::Bin::dpkg "/bin/false";
APT::Architecture "amd64";
APT::Architectures {{ "amd64"; }};
APT::Sandbox::User "{user}";
Acquire::Languages "none";
Acquire::PDiffs "false";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled "false";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
Acquire::Retries "2";
Acquire::Check-Valid-Until "{valid}";
Acquire::http::Timeout "30";
Binary::apt-get::Acquire::AllowInsecureRepositories "false";
"#,
            etc = d("etc"),
            state = d("state"),
            cache = d("cache"),
            log = d("log"),
            valid = self.check_valid_until,
        )
    }

    /// The directories the configuration points at; apt writes nowhere else.
    pub fn owned_dirs(&self) -> Vec<PathBuf> {
        [
            "etc/apt.conf.d",
            "etc/sources.list.d",
            "etc/preferences.d",
            "etc/trusted.gpg.d",
            "state/lists/partial",
            "cache/archives/partial",
            "log",
            "download",
        ]
        .iter()
        .map(|r| self.p(r))
        .collect()
    }

    /// Writes the configuration files (idempotent).
    pub fn prepare(&self) -> Result<()> {
        for d in self.owned_dirs() {
            std::fs::create_dir_all(&d).at(&d)?;
        }
        let write = |rel: &str, text: &str| -> Result<()> {
            let p = self.p(rel);
            std::fs::write(&p, text).at(&p)
        };
        write("etc/apt.conf", &self.config_text())?;
        write("etc/sources.list", &self.sources_line())?;
        let status = self.p("state/status");
        if !status.exists() {
            write("state/status", "")?;
        }
        Ok(())
    }

    fn command(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        c.env("APT_CONFIG", self.p("etc/apt.conf"))
            .env("LC_ALL", "C")
            .current_dir(self.p("download"));
        c
    }

    /// `apt-get update` into the private lists.
    pub fn update(&self) -> Result<()> {
        let _lock = self.lock()?;
        crate::kernel::pause_point("apt-locked");
        self.prepare()?;
        let mut c = self.command("apt-get");
        c.args(["-q", "update"]);
        let out = process::run(c, UPDATE_TIMEOUT, "apt-get update")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // apt-get update exits 0 on some fetch failures; treat W:/E: about our source as fatal.
        let bad = stderr
            .lines()
            .filter(|l| {
                l.starts_with("E:") || (l.starts_with("W:") && l.contains("Failed to fetch"))
            })
            .collect::<Vec<_>>();
        if !out.status.success() || !bad.is_empty() {
            return Err(VmError::Command {
                command: format!("apt-get update ({})", self.suite),
                status: out.status.to_string(),
                stderr: if bad.is_empty() {
                    process::tail(&stderr, 2000)
                } else {
                    process::tail(&bad.join("\n"), 2000)
                },
            });
        }
        Ok(())
    }

    /// Whether `update` ran at least once (lists present).
    pub fn has_lists(&self) -> bool {
        std::fs::read_dir(self.p("state/lists"))
            .map(|d| {
                d.flatten().any(|e| {
                    e.file_name().to_string_lossy().ends_with("Packages")
                        || e.file_name().to_string_lossy().contains("_Packages")
                })
            })
            .unwrap_or(false)
    }

    /// The `Depends:` of `package` (first alternative of each, without versions) and its version.
    pub fn show(&self, package: &str) -> Result<PackageInfo> {
        let _lock = self.lock()?;
        let mut c = self.command("apt-cache");
        c.args(["show", "--no-all-versions", package]);
        let out = process::run(c, QUERY_TIMEOUT, "apt-cache show")?;
        if !out.status.success() {
            return Err(VmError::NoSuchPackage {
                package: package.to_string(),
                suite: self.suite.clone(),
                message: process::tail(String::from_utf8_lossy(&out.stderr).trim(), 500),
            });
        }
        Ok(PackageInfo::parse(
            package,
            &String::from_utf8_lossy(&out.stdout),
        ))
    }

    /// `apt-get download` into `dir`; returns the `.deb` paths.
    pub fn download(&self, packages: &[String], dir: &Path) -> Result<Vec<PathBuf>> {
        let _lock = self.lock()?;
        std::fs::create_dir_all(dir).at(dir)?;
        let mut c = self.command("apt-get");
        c.args(["-q", "download"]).args(packages).current_dir(dir);
        process::run_ok(
            c,
            DOWNLOAD_TIMEOUT,
            &format!("apt-get download {}", packages.join(" ")),
        )?;
        let mut debs = Vec::new();
        for e in std::fs::read_dir(dir).at(dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".deb") && packages.iter().any(|p| name.starts_with(&format!("{p}_")))
            {
                debs.push(e.path());
            }
        }
        debs.sort();
        Ok(debs)
    }
}

/// What `apt-cache show` tells about one package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageInfo {
    pub name: String,
    pub version: String,
    pub depends: Vec<String>,
}

impl PackageInfo {
    pub fn parse(name: &str, text: &str) -> PackageInfo {
        let mut version = String::new();
        let mut depends = Vec::new();
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("Version: ") {
                if version.is_empty() {
                    version = v.trim().to_string();
                }
            } else if let Some(d) = line.strip_prefix("Depends: ") {
                if depends.is_empty() {
                    depends = d
                        .split(',')
                        .filter_map(|alt| alt.split('|').next())
                        .filter_map(|p| p.split_whitespace().next())
                        .map(str::to_string)
                        .collect();
                }
            } else if line.is_empty() && !version.is_empty() {
                break;
            }
        }
        PackageInfo {
            name: name.to_string(),
            version,
            depends,
        }
    }
}

/// Is this a package carrying a kernel image or its modules (`linux-image-5.10.0-32-…`,
/// `linux-binary-7.2.13+deb14-…`, `linux-modules-…`) rather than a meta or helper package?
pub fn is_kernel_payload(name: &str) -> bool {
    ["linux-image-", "linux-binary-", "linux-modules-"]
        .iter()
        .any(|p| {
            name.strip_prefix(p)
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        && !name.ends_with("-dbg")
}

fn current_user() -> String {
    // SAFETY: geteuid has no preconditions. getpwuid returns NULL or a pointer into libc's
    // static passwd entry, whose pw_name is NUL-terminated; it is copied out before any
    // other getpw* call of ours could overwrite it (none runs on another thread).
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() {
            return "root".into();
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configured_dir_is_inside_the_root() {
        let a = AptRoot::new(
            "/tmp/zc-apt-root",
            "bullseye",
            "http://deb.debian.org/debian/",
        );
        for line in a.config_text().lines() {
            if line.starts_with("Dir")
                && !line.starts_with("Dir \"/\"")
                && !line.contains("\"\"")
                && !line.contains("/bin/false")
            {
                assert!(
                    line.contains("\"/tmp/zc-apt-root/"),
                    "escapes the root: {line}"
                );
            }
        }
        assert!(a.sources_line().contains("signed-by=/"));
        assert!(a.sources_line().contains(" bullseye main"));
        assert!(!a.sources_line().contains("debian/ "));
    }

    #[test]
    fn package_info_takes_first_alternatives() {
        let t = "Package: linux-image-7.2.13+deb14-cloud-amd64\nVersion: 7.2.13-1\nDepends: dracut | initramfs-tools (>= 0.120+deb8u2), linux-binary-7.2.13+deb14-cloud-amd64 (= 7.2.13-1), linux-modules-7.2.13+deb14-cloud-amd64 (= 7.2.13-1)\n\n";
        let i = PackageInfo::parse("x", t);
        assert_eq!(i.version, "7.2.13-1");
        assert_eq!(
            i.depends,
            [
                "dracut",
                "linux-binary-7.2.13+deb14-cloud-amd64",
                "linux-modules-7.2.13+deb14-cloud-amd64"
            ]
        );
        assert!(is_kernel_payload("linux-binary-7.2.13+deb14-cloud-amd64"));
        assert!(is_kernel_payload("linux-image-5.10.0-32-cloud-amd64"));
        assert!(!is_kernel_payload("linux-image-cloud-amd64"));
        assert!(!is_kernel_payload("linux-base-cloud-amd64"));
    }
}
