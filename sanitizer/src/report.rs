//! Writes [`Event`]s to the report file, one line per `write(2)` (atomic under
//! `O_APPEND`, so lines of several processes never interleave).

use std::sync::atomic::{AtomicI32, Ordering};
use zcsafe_sanitizer_events::Event;

/// The report file's descriptor (-1: the runtime is inactive).
pub static FD: AtomicI32 = AtomicI32::new(-1);

/// The descriptor number the report file is moved to, above what programs use.
const HIGH_FD: i32 = 1000;

/// Opens `path` for appending; returns whether the runtime is active.
pub fn open(path: &std::ffi::OsStr) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let mut p = path.as_bytes().to_vec();
    p.push(0);
    // SAFETY: raw openat with a NUL-terminated path, then fcntl/close on our own fd.
    unsafe {
        let fd = libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            p.as_ptr(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC,
            0o600,
        ) as i32;
        if fd < 0 {
            return false;
        }
        let high = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, HIGH_FD);
        let fd = if high >= 0 {
            libc::syscall(libc::SYS_close, fd);
            high
        } else {
            fd
        };
        FD.store(fd, Ordering::Relaxed);
    }
    true
}

/// Whether `fd` is the report file (the program may not close it).
pub fn is_report_fd(fd: i32) -> bool {
    fd >= 0 && fd == FD.load(Ordering::Relaxed)
}

/// Writes one event line; a line that cannot be written is dropped (the summary's
/// absence then tells zcsafe that the report is incomplete).
pub fn emit(ev: &Event<'_>) {
    let fd = FD.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    let Ok(mut line) = serde_json::to_vec(ev) else {
        return;
    };
    line.push(b'\n');
    let mut off = 0;
    while off < line.len() {
        // SAFETY: a raw write of our own buffer.
        let n = unsafe {
            libc::syscall(
                libc::SYS_write,
                fd,
                line.as_ptr().add(off),
                line.len() - off,
            )
        };
        if n <= 0 {
            return;
        }
        off += n as usize;
    }
}
