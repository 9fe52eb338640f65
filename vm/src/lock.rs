//! Advisory lock files, so that one piece of the cache is filled by one fetch at a time.
//!
//! Why: the kernel cache is shared by every zcsafe process of a user (two `zcsafe matrix`
//! runs, the threads of `cargo test`), and apt refuses to run twice in one root ("Could not
//! get lock …/lists/lock"), while two unpacks of the same kernel into one directory would
//! race. So the cache takes an exclusive `flock(2)` on a small file before touching a
//! shared directory, and a second fetcher *waits* instead of failing:
//!
//! - `flock` belongs to the open file description: every [`acquire`] opens the file itself,
//!   so two threads of one process exclude each other exactly like two processes do;
//! - the kernel drops the lock when its holder dies (even by SIGKILL), so a lock can never
//!   be left stale; the file's *contents* (who holds it) are rewritten by each new holder and
//!   only ever used for the waiter's message, never to decide anything;
//! - the file is opened close-on-exec, so children (apt-get, dpkg-deb) never inherit it and
//!   cannot keep it held after zcsafe is gone;
//! - waiting is bounded ([`timeout`], `ZCSAFE_LOCK_TIMEOUT_SECS`) and interruptible (Ctrl-C),
//!   and a waiter says once, on stderr, which process it is waiting for.

use crate::error::{IoContext, Result, VmError};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Environment variable overriding [`DEFAULT_TIMEOUT`], in seconds (tests use small values).
pub const TIMEOUT_ENV: &str = "ZCSAFE_LOCK_TIMEOUT_SECS";

/// How long a waiter waits by default: longer than a holder can legitimately keep a lock,
/// since every step it runs under the lock has its own deadline (apt-get update 5 min,
/// download 15 min, unpack 10 min, queries). A waiter that gives up earlier would fail a
/// run that was only slow; one that never gives up would hang behind a stuck process.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(35 * 60);

/// How often a waiter retries; cheap, and short next to any fetch.
const POLL: Duration = Duration::from_millis(100);

/// After this long without learning the holder's name, the waiter speaks anyway.
const ANNOUNCE_AFTER: Duration = Duration::from_secs(1);

/// The wait limit: `ZCSAFE_LOCK_TIMEOUT_SECS` if set and valid, else [`DEFAULT_TIMEOUT`].
pub fn timeout() -> Duration {
    std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// A held lock; released when dropped (the file is closed). The file itself stays.
#[derive(Debug)]
#[must_use = "the lock is released as soon as this value is dropped"]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Closing the file releases the lock; unlock first anyway so the release does not
        // wait for the last duplicate of the descriptor (there are none, but be explicit).
        // SAFETY: flock touches no memory; `self.file` keeps the descriptor open for the call.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Who holds a lock, as its holder wrote it into the lock file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<u32>,
    pub command: String,
    /// Unix time at which the holder took the lock.
    pub since: Option<u64>,
}

impl Holder {
    fn me() -> Holder {
        let command = std::fs::read("/proc/self/cmdline")
            .map(|b| {
                b.split(|c| *c == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        Holder {
            pid: Some(std::process::id()),
            command: crate::process::tail(&command, 300),
            since: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs()),
        }
    }

    fn render(&self) -> String {
        format!(
            "pid={}\ncommand={}\nsince={}\n",
            self.pid.map(|p| p.to_string()).unwrap_or_default(),
            self.command.replace('\n', " "),
            self.since.map(|s| s.to_string()).unwrap_or_default(),
        )
    }

    /// Parses what `Holder::render` wrote; `None` while the file is empty or torn.
    pub fn parse(text: &str) -> Option<Holder> {
        let mut h = Holder::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("pid", v)) => h.pid = v.trim().parse().ok(),
                Some(("command", v)) => h.command = v.to_string(),
                Some(("since", v)) => h.since = v.trim().parse().ok(),
                _ => {}
            }
        }
        h.pid.is_some().then_some(h)
    }

    fn read(file: &mut File) -> Option<Holder> {
        let mut text = String::new();
        file.rewind().ok()?;
        file.read_to_string(&mut text).ok()?;
        Holder::parse(&text)
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) if pid == std::process::id() => {
                write!(f, "pid {pid} (this process, another thread)")?
            }
            Some(pid) => write!(f, "pid {pid} ({})", self.command)?,
            None => write!(f, "an unknown process")?,
        }
        if let Some(since) = self.since {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(since);
            write!(f, ", for {} s so far", now.saturating_sub(since))?;
        }
        Ok(())
    }
}

/// Takes the exclusive lock on `path` (created if missing), waiting up to `timeout`.
///
/// `what` names the protected thing in messages ("kernel 5.10", "apt root …"). A waiter
/// prints once to stderr whom it waits for; on timeout it returns
/// [`VmError::LockTimeout`]; on Ctrl-C, [`VmError::Interrupted`].
pub fn acquire(path: &Path, what: &str, timeout: Duration) -> Result<FileLock> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    // std opens with O_CLOEXEC: children never inherit the lock.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at(path)?;
    let start = Instant::now();
    let mut announced = false;
    loop {
        // SAFETY: flock touches no memory; `file` keeps the descriptor open for the call
        // (LOCK_NB: it returns at once, the loop does the waiting, with its deadline).
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => {}
            Some(libc::EINTR) => continue,
            _ => return Err(err).at(path),
        }
        let waited = start.elapsed();
        let holder = Holder::read(&mut file);
        if !announced && (holder.is_some() || waited >= ANNOUNCE_AFTER.min(timeout)) {
            announced = true;
            eprintln!(
                "zcsafe: waiting for {what}: {} is held by {}; giving up after {} s ({TIMEOUT_ENV})",
                path.display(),
                holder.clone().unwrap_or_default(),
                timeout.as_secs()
            );
        }
        if crate::process::interrupted() {
            return Err(VmError::Interrupted);
        }
        if waited >= timeout {
            return Err(VmError::LockTimeout {
                what: what.to_string(),
                path: path.to_path_buf(),
                holder: holder.unwrap_or_default().to_string(),
                waited_secs: waited.as_secs(),
            });
        }
        std::thread::sleep(
            POLL.min(timeout.saturating_sub(waited))
                .max(Duration::from_millis(1)),
        );
    }
    // Ours now. Whatever the file says is a previous (possibly dead) holder's: replace it.
    let text = Holder::me().render();
    file.set_len(0).at(path)?;
    file.rewind().at(path)?;
    file.write_all(text.as_bytes()).at(path)?;
    Ok(FileLock {
        file,
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_exclude_each_other_and_the_waiter_names_the_holder() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("sub/x.lock");
        let held = acquire(&p, "the test thing", Duration::from_secs(5)).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let h = Holder::parse(&text).expect("the holder wrote itself");
        assert_eq!(h.pid, Some(std::process::id()));

        // Another thread (its own open file description) cannot take it and times out.
        let p2 = p.clone();
        let e = std::thread::spawn(move || {
            acquire(&p2, "the test thing", Duration::from_millis(300)).unwrap_err()
        })
        .join()
        .unwrap();
        let msg = e.to_string();
        assert!(matches!(e, VmError::LockTimeout { .. }), "{msg}");
        assert!(msg.contains("the test thing"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains(TIMEOUT_ENV), "{msg}");

        // Released on drop: a waiter that started before the release gets it.
        let p3 = p.clone();
        let waiter = std::thread::spawn(move || acquire(&p3, "x", Duration::from_secs(10)));
        drop(held);
        let again = waiter.join().unwrap().expect("acquired after the release");
        assert_eq!(again.path(), p);
    }

    #[test]
    fn stale_or_torn_contents_do_not_matter() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x.lock");
        std::fs::write(
            &p,
            "pid=1\ncommand=a long gone process with a much longer name\n",
        )
        .unwrap();
        let l = acquire(&p, "x", Duration::from_millis(100)).unwrap();
        let h = Holder::parse(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(h.pid, Some(std::process::id()));
        assert!(!h.command.contains("long gone"));
        drop(l);
        assert_eq!(Holder::parse("pid=\ngarbage"), None);
    }
}
