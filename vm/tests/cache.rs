//! The kernel cache under concurrency and crashes: two processes filling one empty cache
//! both succeed with one download, a waiter names the holder and gives up with a clear
//! error, and a fetch SIGKILLed at each named point leaves nothing that looks complete and
//! is repaired by the next run.
//!
//! The fetchers are real processes (this test binary re-run as a child, see
//! [`fetch_child`]) running the real apt-get and dpkg-deb against a local flat repository
//! holding a fake kernel, so the tests are fast and offline. `apt-get` is reached through a
//! logging shim on `PATH`: the number of `apt-get download` runs is observed, not inferred
//! from zcsafe's own messages. A fetch is stopped at a named point with the fetcher's
//! `ZCSAFE_TEST_FETCH_PAUSE` hook, which announces itself on stderr: no sleeping and hoping.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use zcsafe_vm::kernel::PAUSE_ENV;
use zcsafe_vm::{Catalogue, Fetcher, KernelEntry};

const RELEASE: &str = "9.9.9-1-cloud-amd64";
const IMAGE_PKG: &str = "linux-image-9.9.9-1-cloud-amd64";
const MODULES_PKG: &str = "linux-modules-9.9.9-1-cloud-amd64";
const VMLINUZ: &[u8] = b"not really a kernel image, but a file where one belongs\n";
/// Marks the environment of a child started by [`Run::spawn`].
const CHILD_ENV: &str = "ZCSAFE_CACHE_TEST_CHILD";
const REPO_ENV: &str = "ZCSAFE_CACHE_TEST_REPO";
const APT_LOG_ENV: &str = "ZCSAFE_CACHE_TEST_APT_LOG";
const ENTRY_ENV: &str = "ZCSAFE_CACHE_TEST_ENTRY";
/// How long any one step of these tests may take before it counts as hung.
const STEP: Duration = Duration::from_secs(90);

/// The catalogue entry of the fake kernel: a meta package resolved through `Depends`.
fn entry() -> KernelEntry {
    KernelEntry {
        name: "fake".into(),
        suite: "./".into(),
        series: "9.9".into(),
        meta: Some("linux-image-cloud-amd64".into()),
        packages: vec![],
        rt: false,
        default: false,
    }
}

/// A second catalogue kernel of the same suite (so the same apt root): pinned packages.
fn pinned_entry() -> KernelEntry {
    KernelEntry {
        name: "fake-pinned".into(),
        meta: None,
        packages: vec![IMAGE_PKG.into(), MODULES_PKG.into()],
        ..entry()
    }
}

/// The entry a child fetches: `ZCSAFE_CACHE_TEST_ENTRY=pinned` selects [`pinned_entry`].
fn child_entry() -> KernelEntry {
    match std::env::var(ENTRY_ENV).as_deref() {
        Ok("pinned") => pinned_entry(),
        _ => entry(),
    }
}

fn fetcher(cache: &Path, repo: &Path) -> Fetcher {
    let cat = Catalogue {
        mirror: format!("file://{}", repo.display()),
        check_valid_until: false,
        kernels: vec![entry(), pinned_entry()],
    };
    let mut f = Fetcher::new(cache.to_path_buf(), &cat);
    f.mirror = cat.mirror.clone(); // not ZCSAFE_DEBIAN_MIRROR
    f.trusted = true; // the local repository is unsigned
    f
}

/// Not a test: the fetcher process the tests start (`--ignored --exact fetch_child`).
/// Prints `KERNEL <json>` on success; exits 3 with `FETCH-ERROR: …` on failure.
#[test]
#[ignore = "a child process of the cache tests, started by them"]
fn fetch_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let cache = PathBuf::from(std::env::var_os("ZCSAFE_CACHE_DIR").unwrap());
    let repo = PathBuf::from(std::env::var_os(REPO_ENV).unwrap());
    match fetcher(&cache, &repo).fetch(&child_entry()) {
        Ok(k) => println!("KERNEL {}", serde_json::to_string(&k).unwrap()),
        Err(e) => {
            println!("FETCH-ERROR: {e}");
            std::process::exit(3);
        }
    }
}

/// A repository with the fake kernel, and an `apt-get` shim that logs its arguments.
struct Fixture {
    dir: tempfile::TempDir,
    repo: PathBuf,
    shim: PathBuf,
}

impl Fixture {
    fn new(test: &str) -> Option<Fixture> {
        let dir = tempfile::tempdir().unwrap();
        let modules_file = format!("lib/modules/{RELEASE}/kernel/drivers/net/fake.ko");
        let vmlinuz = format!("boot/vmlinuz-{RELEASE}");
        let builtin = format!("lib/modules/{RELEASE}/modules.builtin");
        let repo = common::local_repo(
            test,
            dir.path(),
            &[
                common::FakeDeb {
                    name: "linux-image-cloud-amd64",
                    version: "9.9.9+1",
                    depends: &[IMAGE_PKG, MODULES_PKG],
                    files: &[],
                },
                // The image alone is not a kernel tree (no lib/modules/<r>/kernel): a fetch
                // that published after the first .deb would be caught by the tests.
                common::FakeDeb {
                    name: IMAGE_PKG,
                    version: "9.9.9-1",
                    depends: &[],
                    files: &[(&vmlinuz, VMLINUZ), (&builtin, b"")],
                },
                common::FakeDeb {
                    name: MODULES_PKG,
                    version: "9.9.9-1",
                    depends: &[],
                    files: &[(&modules_file, b"fake module")],
                },
            ],
        )?;
        let real = common::which("apt-get").expect("checked by local_repo");
        let shim_dir = dir.path().join("bin");
        std::fs::create_dir_all(&shim_dir).unwrap();
        let shim = shim_dir.join("apt-get");
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\necho \"$PPID $*\" >> \"${APT_LOG_ENV}\"\nexec {} \"$@\"\n",
                real.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        Some(Fixture { dir, repo, shim })
    }

    /// A fresh, empty cache directory (and its apt-get log) inside the fixture.
    fn cache(&self, name: &str) -> PathBuf {
        let c = self.dir.path().join(name);
        assert!(!c.exists());
        c
    }

    fn apt_log(cache: &Path) -> PathBuf {
        cache.with_extension("apt-get.log")
    }

    /// The `apt-get` runs of the fetchers of `cache`: (fetcher pid, arguments).
    fn apt_runs(cache: &Path) -> Vec<(u32, String)> {
        std::fs::read_to_string(Self::apt_log(cache))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(pid, args)| (pid.parse().unwrap(), args.to_string()))
            .collect()
    }

    /// How many `apt-get download` runs the fetchers of `cache` made.
    fn downloads(cache: &Path) -> usize {
        Self::apt_runs(cache)
            .iter()
            .filter(|(_, a)| a.split_whitespace().any(|w| w == "download"))
            .count()
    }

    fn fetcher(&self, cache: &Path) -> Fetcher {
        fetcher(cache, &self.repo)
    }
}

/// A fetcher process, its stderr read line by line as it comes.
struct Run {
    child: Child,
    lines: Receiver<String>,
    stderr: Vec<String>,
}

impl Run {
    fn spawn(fx: &Fixture, cache: &Path, env: &[(&str, String)]) -> Run {
        let path = format!(
            "{}:{}",
            fx.shim.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args([
            "--ignored",
            "--exact",
            "fetch_child",
            "--nocapture",
            "--quiet",
        ])
        .env(CHILD_ENV, "1")
        .env("ZCSAFE_CACHE_DIR", cache)
        .env(REPO_ENV, &fx.repo)
        .env(APT_LOG_ENV, Fixture::apt_log(cache))
        .env("PATH", path)
        .env_remove(PAUSE_ENV)
        .env_remove(zcsafe_vm::lock::TIMEOUT_ENV)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("re-running the test binary");
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Run {
            child,
            lines,
            stderr: vec![],
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the child prints a stderr line containing `pat`; fails if it exits first.
    fn wait_for(&mut self, pat: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) => {
                    self.stderr.push(l.clone());
                    if l.contains(pat) {
                        return l;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no `{pat}` on stderr within {STEP:?}: {:#?}", self.stderr)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("exited before printing `{pat}`: {:#?}", self.stderr)
                }
            }
        }
    }

    /// Waits (bounded) for the exit; returns the status, stdout and all of stderr.
    fn finish(mut self) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + STEP;
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("fetcher {} hung: {:#?}", self.pid(), self.stderr);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        use std::io::Read;
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        // The reader thread ends at EOF, which the exit has caused.
        self.stderr.extend(self.lines.iter());
        (status, out, self.stderr.join("\n"))
    }

    /// Like [`Run::finish`], but the fetch must have succeeded; returns its kernel.
    fn kernel(self) -> (zcsafe_vm::Kernel, String) {
        let pid = self.pid();
        let (st, out, err) = self.finish();
        assert!(st.success(), "fetcher {pid} failed ({st}):\n{out}\n{err}");
        let json = out
            .lines()
            .find_map(|l| l.strip_prefix("KERNEL "))
            .unwrap_or_else(|| panic!("no KERNEL line:\n{out}\n{err}"));
        (serde_json::from_str(json).unwrap(), err)
    }
}

fn pause(point: &str, release: &Path) -> (&'static str, String) {
    (PAUSE_ENV, format!("{point}:{}", release.display()))
}

/// The kernel is complete and bootable-looking, and the directory holds no leftovers.
fn assert_complete(fx: &Fixture, cache: &Path, k: &zcsafe_vm::Kernel) {
    assert_eq!(k.release, RELEASE);
    assert_eq!(std::fs::read(&k.vmlinuz).unwrap(), VMLINUZ, "{k:?}");
    assert!(
        k.modules.join("kernel/drivers/net/fake.ko").is_file(),
        "{k:?}"
    );
    assert_eq!(k.packages, [IMAGE_PKG, MODULES_PKG]);
    let f = fx.fetcher(cache);
    assert_eq!(f.cached(&entry()).as_ref(), Some(k), "cached() agrees");
    let leftovers: Vec<_> = std::fs::read_dir(f.kernel_dir(&entry()))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n == "debs")
        .collect();
    assert!(leftovers.is_empty(), "left over: {leftovers:?}");
}

#[test]
fn two_processes_fill_one_empty_cache_with_one_download() {
    let test = "two_processes_fill_one_empty_cache_with_one_download";
    let Some(fx) = Fixture::new(test) else {
        return;
    };

    // Forced overlap: A stops holding the kernel's lock with its .debs downloaded.
    let cache = fx.cache("overlap");
    let go = fx.dir.path().join("go");
    let mut a = Run::spawn(&fx, &cache, &[pause("downloaded", &go)]);
    a.wait_for("test pause at downloaded");

    // A waiter with a short timeout gives up with a typed error naming A.
    let impatient = Run::spawn(&fx, &cache, &[(zcsafe_vm::lock::TIMEOUT_ENV, "0.5".into())]);
    let (st, out, err) = impatient.finish();
    assert_eq!(st.code(), Some(3), "{out}\n{err}");
    let a_pid = format!("pid {}", a.pid());
    assert!(out.contains("gave up after"), "{out}");
    assert!(out.contains("kernel fake"), "{out}");
    assert!(out.contains(&a_pid), "names the holder: {out}");
    assert!(
        out.contains("ZCSAFE_LOCK_TIMEOUT_SECS"),
        "says what to do: {out}"
    );
    assert!(err.contains("waiting for kernel fake"), "{err}");

    // A patient waiter says once whom it waits for, then finds the kernel A fetched.
    let mut b = Run::spawn(&fx, &cache, &[]);
    let b_pid = b.pid();
    let waiting = b.wait_for("waiting for kernel fake");
    assert!(waiting.contains(&a_pid), "{waiting}");
    std::fs::write(&go, "").unwrap();
    let ka_pid = a.pid();
    let (ka, _) = a.kernel();
    let (kb, err_b) = b.kernel();
    assert_eq!(ka, kb);
    assert_eq!(err_b.matches("waiting for").count(), 1, "{err_b}");
    assert!(
        !err_b.contains("fetching kernel"),
        "B fetched again: {err_b}"
    );
    assert_eq!(Fixture::downloads(&cache), 1, "one download for both");
    let runs = Fixture::apt_runs(&cache);
    assert!(
        !runs.iter().any(|(pid, _)| *pid == b_pid),
        "B found the kernel cached after the wait, without apt: {runs:?}"
    );
    assert!(runs.iter().all(|(pid, _)| *pid == ka_pid), "{runs:?}");
    assert_complete(&fx, &cache, &ka);

    // Unforced: two fetchers started together on an empty cache.
    let cache = fx.cache("together");
    let runs = [Run::spawn(&fx, &cache, &[]), Run::spawn(&fx, &cache, &[])];
    let [k1, k2] = runs.map(|r| r.kernel().0);
    assert_eq!(k1, k2);
    assert_eq!(Fixture::downloads(&cache), 1, "one download for both");
    assert_complete(&fx, &cache, &k1);
}

#[test]
fn a_fetch_killed_at_any_point_is_repaired_by_the_next_run() {
    let test = "a_fetch_killed_at_any_point_is_repaired_by_the_next_run";
    let Some(fx) = Fixture::new(test) else {
        return;
    };
    let never = fx.dir.path().join("never-created");
    // (pause point, `apt-get download` runs once the next run has repaired the cache)
    let points = [
        ("downloaded", 2),
        ("unpacking", 2),
        ("published", 1),
        ("current-written", 1),
    ];
    for (point, downloads) in points {
        let cache = fx.cache(point);
        let f = fx.fetcher(&cache);
        let dir = f.kernel_dir(&entry());
        let mut a = Run::spawn(&fx, &cache, &[pause(point, &never)]);
        a.wait_for(&format!("test pause at {point}"));
        a.child.kill().unwrap(); // SIGKILL
        let (st, _, _) = a.finish();
        assert!(!st.success());
        assert!(
            killed_at(point, &dir),
            "{point}: the kill was not midway: {:?}",
            list(&dir)
        );
        assert_eq!(
            f.cached(&entry()),
            None,
            "{point}: looks complete: {:?}",
            list(&dir)
        );

        let (k, err) = Run::spawn(&fx, &cache, &[]).kernel();
        assert_complete(&fx, &cache, &k);
        assert_eq!(Fixture::downloads(&cache), downloads, "{point}: {err}");
        assert!(
            err.contains("left by an interrupted fetch"),
            "{point}: {err}"
        );
    }

    // A torn current.json (as from an older, non-atomic writer) is rewritten, no download.
    let cache = fx.dir.path().join("current-written");
    let f = fx.fetcher(&cache);
    std::fs::write(
        f.kernel_dir(&entry()).join("current.json"),
        "{\"name\": \"fa",
    )
    .unwrap();
    assert_eq!(f.cached(&entry()), None);
    let (k, _) = Run::spawn(&fx, &cache, &[]).kernel();
    assert_complete(&fx, &cache, &k);
    assert_eq!(Fixture::downloads(&cache), 1);
}

/// What a fetch killed at `point` must have left in its kernel directory: proof that the
/// kill was midway, not before or after the fetch.
fn killed_at(point: &str, dir: &Path) -> bool {
    match point {
        "downloaded" => dir.join("debs").read_dir().is_ok_and(|d| d.count() == 2),
        "unpacking" => has_entry(dir, ".partial-unpack-"),
        "published" => has_entry(dir, "linux-image-") && !dir.join("current.json").exists(),
        "current-written" => {
            has_entry(dir, ".partial-current.json-") && !dir.join("current.json").exists()
        }
        _ => unreachable!("{point}"),
    }
}

fn has_entry(dir: &Path, prefix: &str) -> bool {
    list(dir).iter().any(|n| n.starts_with(prefix))
}

fn list(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn two_kernels_of_one_suite_take_turns_in_its_apt_root() {
    // The bug of a cold CI: a second `apt-get update` in the same root died on apt's lock.
    let test = "two_kernels_of_one_suite_take_turns_in_its_apt_root";
    let Some(fx) = Fixture::new(test) else {
        return;
    };
    let cache = fx.cache("suite");
    let go = fx.dir.path().join("go");
    let mut a = Run::spawn(&fx, &cache, &[pause("apt-locked", &go)]);
    a.wait_for("test pause at apt-locked");
    let mut b = Run::spawn(&fx, &cache, &[(ENTRY_ENV, "pinned".into())]);
    let waiting = b.wait_for("waiting for the apt root");
    assert!(waiting.contains(&format!("pid {}", a.pid())), "{waiting}");
    std::fs::write(&go, "").unwrap();
    let (ka, _) = a.kernel();
    let (kb, _) = b.kernel();
    assert_complete(&fx, &cache, &ka);
    assert_eq!(kb.name, "fake-pinned");
    assert_eq!(std::fs::read(&kb.vmlinuz).unwrap(), VMLINUZ);
    assert_eq!(Fixture::downloads(&cache), 2, "one per kernel");
}
