//! Runs one VM to its end, whatever the guest does: the result port is read as it grows,
//! and a hung, silent or panicking guest is killed and reported with its console tail.

use crate::error::{Result, VmError};
use crate::guest::Event;
use crate::process;
use crate::qemu::VmSpec;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Deadlines of one VM.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// From QEMU start to the guest's `boot` marker.
    pub boot: Duration,
    /// One cell, from `cell-begin` to `cell-end` (the guest enforces it too, a bit earlier).
    pub cell: Duration,
    /// The whole VM.
    pub total: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            boot: Duration::from_secs(120),
            cell: Duration::from_secs(300),
            total: Duration::from_secs(3600),
        }
    }
}

/// How a VM ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The guest said `done` and powered off.
    Completed,
    /// QEMU exited before `done`: a panic (`panic=-1`), a crash, or a QEMU error.
    Exited(String),
    /// A deadline passed; QEMU was killed.
    Timeout(String),
}

/// Everything a VM produced.
#[derive(Clone, Debug)]
pub struct Run {
    pub end: End,
    pub events: Vec<(Duration, Event)>,
    /// Seconds from QEMU start to the `boot` marker (host clock).
    pub boot_seconds: Option<f64>,
    pub seconds: f64,
    /// The last 4 KiB of the console (kernel log and commands' stderr) and QEMU's stderr.
    pub console_tail: String,
}

impl Run {
    pub fn release(&self) -> Option<&str> {
        self.events.iter().find_map(|(_, e)| match e {
            Event::Boot { release, .. } => Some(release.as_str()),
            _ => None,
        })
    }
}

/// Boots `spec` and watches it. Errors only for things that prevent a boot (QEMU missing)
/// or an interrupt; every guest failure is an [`End`].
pub fn run(
    spec: &VmSpec,
    limits: Limits,
    mut on_event: impl FnMut(Duration, &Event),
) -> Result<Run> {
    let _ = std::fs::write(&spec.console_log, "");
    let _ = std::fs::write(&spec.results_log, "");
    let mut cmd = spec.command();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    process::die_with_parent(&mut cmd);
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| VmError::MissingTool {
        tool: spec.qemu.display().to_string(),
        package: "qemu-system-x86".into(),
        message: e.to_string(),
    })?;
    let mut stderr = child.stderr.take();
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });

    let mut events = Vec::new();
    let mut pos = 0u64;
    let mut partial = Vec::new();
    let mut boot_at = None;
    let mut cell_started: Option<Instant> = None;
    let mut done = false;
    let end = loop {
        let exited = child.try_wait().ok().flatten();
        // Read what the guest wrote since last time (also after exit, to get the tail).
        if let Ok(mut f) = std::fs::File::open(&spec.results_log) {
            use std::io::Seek;
            if f.seek(std::io::SeekFrom::Start(pos)).is_ok() {
                let mut buf = Vec::new();
                if f.read_to_end(&mut buf).is_ok() {
                    pos += buf.len() as u64;
                    partial.extend_from_slice(&buf);
                }
            }
        }
        while let Some(nl) = partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = partial.drain(..=nl).collect();
            let ev = Event::parse(&String::from_utf8_lossy(&line));
            if matches!(ev, Event::Line(ref l) if l.trim().is_empty()) {
                continue;
            }
            let t = start.elapsed();
            match &ev {
                Event::Boot { .. } => boot_at = Some(t),
                Event::CellBegin(_) => cell_started = Some(Instant::now()),
                Event::CellEnd { .. } => cell_started = None,
                Event::Done => done = true,
                _ => {}
            }
            on_event(t, &ev);
            events.push((t, ev));
        }
        if let Some(st) = exited {
            break if done {
                End::Completed
            } else {
                End::Exited(format!("QEMU exited ({st}) before the guest finished"))
            };
        }
        if process::interrupted() {
            process::kill(&mut child);
            return Err(VmError::Interrupted);
        }
        let el = start.elapsed();
        let timeout = if el >= limits.total {
            Some(format!(
                "the VM ran longer than {} s",
                limits.total.as_secs()
            ))
        } else if boot_at.is_none() && el >= limits.boot {
            Some(format!(
                "the guest did not reach userspace within {} s",
                limits.boot.as_secs()
            ))
        } else {
            cell_started
                .filter(|c| c.elapsed() >= limits.cell + Duration::from_secs(15))
                .map(|_| {
                    format!(
                        "a cell ran longer than {} s and the guest did not stop it",
                        limits.cell.as_secs()
                    )
                })
        };
        if let Some(why) = timeout {
            process::kill(&mut child);
            break End::Timeout(why);
        }
        if done {
            // The guest is powering off; give it a moment, then stop waiting.
            if let Some(t) = events.last().map(|(t, _)| *t) {
                if el > t + Duration::from_secs(10) {
                    process::kill(&mut child);
                    break End::Completed;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let qemu_err = stderr_reader.join().unwrap_or_default();
    let console = std::fs::read(&spec.console_log).unwrap_or_default();
    let mut console_tail = process::tail(&String::from_utf8_lossy(&console), 4096);
    if !qemu_err.trim().is_empty() {
        console_tail += "\n[qemu stderr] ";
        console_tail += &process::tail(qemu_err.trim(), 1024);
    }
    let end = match end {
        End::Exited(m) => End::Exited(match diagnose(&String::from_utf8_lossy(&console)) {
            Some(d) => format!("{m}: {d}"),
            None => m,
        }),
        e => e,
    };
    Ok(Run {
        end,
        events,
        boot_seconds: boot_at.map(|t| t.as_secs_f64()),
        seconds: start.elapsed().as_secs_f64(),
        console_tail,
    })
}

/// The first line of the console that says why a kernel died, if any.
pub fn diagnose(console: &str) -> Option<String> {
    let keys = [
        "Kernel panic - not syncing",
        "BUG: ",
        "Oops: ",
        "general protection fault",
    ];
    let line = console
        .lines()
        .find(|l| keys[0..1].iter().any(|k| l.contains(k)))
        .or_else(|| console.lines().find(|l| keys.iter().any(|k| l.contains(k))))?;
    // Drop the "[    2.694555] " timestamp.
    let text = line.split_once("] ").map(|(_, r)| r).unwrap_or(line).trim();
    Some(format!("kernel died: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnose_finds_the_panic_line() {
        let c = "[    1.0] hello\n[    2.6] BUG: kernel NULL pointer dereference, address: 0000000000000008\n[    2.7] Kernel panic - not syncing: Fatal exception\n";
        assert_eq!(
            diagnose(c).unwrap(),
            "kernel died: Kernel panic - not syncing: Fatal exception"
        );
        assert_eq!(diagnose("all fine"), None);
    }
}
