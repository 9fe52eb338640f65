//! Named network namespaces that are always removed.
//!
//! Names are `zcs-<pid>-<starttime>-<n>-<role>`: the owning process and its start time
//! (field 22 of `/proc/<pid>/stat`), so a later run can tell a leftover of a dead process
//! (SIGKILL, power loss) from a namespace of a live one, even if the pid was reused.
//! A namespace is removed by `Drop` (normal exit, error, panic unwinding), by a signal
//! thread on SIGINT/SIGTERM/SIGHUP, and otherwise by [`cleanup_stale`] in the next run.
//! Interfaces live only inside the namespaces, so removing them removes the veth pair
//! (`veth_dellink` runs when either end's namespace goes away).

use crate::error::KernelError;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};

/// Common prefix of every namespace zcsafe creates.
pub const PREFIX: &str = "zcs-";
/// Where `ip netns` keeps its bind mounts.
pub const NETNS_DIR: &str = "/run/netns";

static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());
static COUNTER: AtomicU32 = AtomicU32::new(0);
static SIGNALS: Once = Once::new();
/// The longest an `ip`/`tc`/`nft` invocation may take.
const CMD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Start time of a process in clock ticks since boot, if it exists.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // rest starts with field 3 (state); starttime is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn owner_prefix() -> String {
    let pid = std::process::id();
    let start = process_start_time(pid).unwrap_or(0);
    format!("{PREFIX}{pid}-{start}-")
}

/// A namespace name that nobody else uses: `zcs-<pid>-<start>-<n>-<role>`.
pub fn unique_name(role: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}{n}-{role}", owner_prefix())
}

/// Whether the process that created namespace `name` is gone.
pub fn owner_is_dead(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    let mut parts = rest.split('-');
    let (Some(pid), Some(start)) = (parts.next(), parts.next()) else {
        return true; // not our format: an old or broken leftover
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return true;
    };
    process_start_time(pid) != Some(start)
}

/// The namespaces with our prefix that exist now.
pub fn list() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut v: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(PREFIX))
        .collect();
    v.sort();
    v
}

/// Removes the namespaces left behind by dead zcsafe processes; returns their names.
/// Namespaces of live processes (a concurrent run) are left alone.
pub fn cleanup_stale() -> Vec<String> {
    let mut removed = Vec::new();
    for name in list() {
        if owner_is_dead(&name) && remove(&name).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// Detaches and unlinks `/run/netns/<name>` (what `ip netns del` does). The namespace
/// itself dies when its last user (socket, process) is gone.
pub fn remove(name: &str) -> std::io::Result<()> {
    let path = Path::new(NETNS_DIR).join(name);
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is NUL-terminated and outlives the call; umount2 only reads it.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } < 0 {
        let e = std::io::Error::last_os_error();
        // EINVAL: not a mount point (half-created); still unlink it.
        if e.raw_os_error() != Some(libc::EINVAL) && e.raw_os_error() != Some(libc::ENOENT) {
            return Err(e);
        }
    }
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes every namespace this process still owns (signal path).
fn remove_all_live() {
    let names = match LIVE.lock() {
        Ok(mut g) => std::mem::take(&mut *g),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    };
    for n in names {
        let _ = remove(&n);
    }
}

/// On SIGINT/SIGTERM/SIGHUP: remove our namespaces, then die of the signal as usual.
fn install_signal_cleanup() {
    SIGNALS.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        if let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
            let _ = std::thread::Builder::new()
                .name("zcsafe-netns-cleanup".into())
                .spawn(move || {
                    if let Some(sig) = signals.forever().next() {
                        remove_all_live();
                        let _ = signal_hook::low_level::emulate_default_handler(sig);
                        std::process::exit(128 + sig);
                    }
                });
        }
    });
}

/// Runs a command (ip, tc, nft) and returns its stdout, or its stderr as the error.
pub(crate) fn run_cmd(args: &[&str], stdin: Option<&str>) -> Result<String, KernelError> {
    use std::io::Write;
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        });
    let mut child = cmd
        .spawn()
        .map_err(|e| KernelError::io(format!("running {}", args[0]), e))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(text.as_bytes());
    }
    // ip/tc/nft return at once; a hung one (a wedged netlink socket) must not hang the run.
    let deadline = std::time::Instant::now() + CMD_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(KernelError::Timeout {
                    what: args.join(" "),
                    secs: CMD_TIMEOUT.as_secs_f64(),
                });
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(2)),
            Err(e) => return Err(KernelError::io(format!("waiting for {}", args[0]), e)),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| KernelError::io(format!("waiting for {}", args[0]), e))?;
    if !out.status.success() {
        return Err(KernelError::Command {
            command: args.join(" "),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Finds an executable in `PATH` (and the sbin directories, which root's PATH may lack).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// A named network namespace owned by this process; removed on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `zcs-…-<role>` with `ip netns add` (it sets up the shared `/run/netns`
    /// mount) after removing stale leftovers of dead runs.
    pub fn create(role: &str) -> Result<Netns, KernelError> {
        install_signal_cleanup();
        cleanup_stale();
        let name = unique_name(role);
        // Register first: a signal between `ip netns add` and registration must not leak it.
        LIVE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.clone());
        let ns = Netns { name };
        run_cmd(&["ip", "netns", "add", &ns.name], None)?;
        run_cmd(&["ip", "-n", &ns.name, "link", "set", "lo", "up"], None)?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// An fd of the namespace, for `setns(2)` (in a thread, or in a child before exec).
    pub fn open(&self) -> Result<OwnedFd, KernelError> {
        std::fs::File::open(self.path())
            .map(OwnedFd::from)
            .map_err(|e| KernelError::io(format!("opening {}", self.path().display()), e))
    }

    /// Runs `f` on a thread that has entered this namespace; sockets it creates belong
    /// to the namespace for their whole life, whichever thread uses them later.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, KernelError> {
        run_in(&self.path(), f)
    }
}

/// Runs `f` on a thread that has entered the network namespace at `path` (a
/// `/run/netns` entry or `/proc/<pid>/ns/net`).
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> Result<T, KernelError> {
    let fd: OwnedFd = std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|e| KernelError::io(format!("opening {}", path.display()), e))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(&fd)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// `setns(fd, CLONE_NEWNET)` for the calling thread only.
pub(crate) fn enter(fd: &OwnedFd) -> Result<(), KernelError> {
    // SAFETY: setns touches no memory of ours; the borrowed fd is open for the call. It
    // moves only the calling thread (CLONE_NEWNET), which is what callers ask for.
    if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(KernelError::last("setns(CLONE_NEWNET)"));
    }
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = remove(&self.name);
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|n| n != &self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_a_live_owner() {
        let n = unique_name("snd");
        assert!(n.starts_with(PREFIX) && n.ends_with("-snd"));
        assert!(!owner_is_dead(&n), "this process is alive");
        // Same pid, other start time: a reused pid, so the owner is dead.
        let other = format!("{PREFIX}{}-1-0-snd", std::process::id());
        assert!(owner_is_dead(&other));
        assert!(owner_is_dead(&format!("{PREFIX}garbage")));
        assert!(!owner_is_dead("not-ours"));
    }
}
