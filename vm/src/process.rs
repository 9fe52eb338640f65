//! Child processes with deadlines, and Ctrl-C: nothing zcsafe starts may outlive it.

use crate::error::{Result, VmError};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs a SIGINT/SIGTERM handler that only raises a flag; every wait loop in this crate
/// polls it, kills its child and returns [`VmError::Interrupted`], so temp dirs are dropped
/// on the normal path. Safe to call more than once.
pub fn install_interrupt_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    });
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Makes the child die with its parent (PR_SET_PDEATHSIG), even when zcsafe is SIGKILLed.
pub(crate) fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Runs `cmd` to completion with a deadline; stdout/stderr are captured.
pub(crate) fn run(mut cmd: Command, timeout: Duration, what: &str) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            VmError::MissingTool {
                tool: program.clone(),
                package: package_of(&program).to_string(),
                message: e.to_string(),
            }
        } else {
            VmError::Command {
                command: what.to_string(),
                status: "spawn failed".into(),
                stderr: e.to_string(),
            }
        }
    })?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_deadline(&mut child, timeout, what)?;
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Like [`run`], but a non-zero exit is an error carrying stderr.
pub(crate) fn run_ok(cmd: Command, timeout: Duration, what: &str) -> Result<Output> {
    let out = run(cmd, timeout, what)?;
    if !out.status.success() {
        return Err(VmError::Command {
            command: what.to_string(),
            status: out.status.to_string(),
            stderr: tail(&String::from_utf8_lossy(&out.stderr), 2000),
        });
    }
    Ok(out)
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    })
}

/// Waits for `child`, killing it on timeout or interrupt.
pub(crate) fn wait_deadline(
    child: &mut Child,
    timeout: Duration,
    what: &str,
) -> Result<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().map_err(|e| VmError::Command {
            command: what.into(),
            status: "wait failed".into(),
            stderr: e.to_string(),
        })? {
            return Ok(st);
        }
        if interrupted() {
            kill(child);
            return Err(VmError::Interrupted);
        }
        if start.elapsed() >= timeout {
            kill(child);
            return Err(VmError::Timeout {
                what: what.to_string(),
                seconds: timeout.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The last `max` bytes of `s`, cut at a char boundary.
pub fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

/// The Debian package that provides a tool, for "install X" hints.
pub(crate) fn package_of(tool: &str) -> &'static str {
    match tool.rsplit('/').next().unwrap_or(tool) {
        "apt-get" | "apt-cache" => "apt",
        "dpkg-deb" => "dpkg",
        "xz" => "xz-utils",
        "zstd" => "zstd",
        t if t.starts_with("qemu-system") => "qemu-system-x86",
        "busybox" => "busybox-static",
        "tc" => "iproute2",
        _ => "the package providing it",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_kills_the_child() {
        let mut c = Command::new("sleep");
        c.arg("30");
        let t = Instant::now();
        let e = run(c, Duration::from_millis(300), "sleep").unwrap_err();
        assert!(matches!(e, VmError::Timeout { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn missing_tool_names_the_package() {
        let e = run(
            Command::new("zcsafe-no-such-tool"),
            Duration::from_secs(5),
            "x",
        )
        .unwrap_err();
        assert!(matches!(e, VmError::MissingTool { .. }), "{e}");
    }

    #[test]
    fn tail_respects_char_boundaries() {
        assert_eq!(tail("héllo", 4), "llo");
        assert_eq!(tail("abc", 10), "abc");
    }
}
