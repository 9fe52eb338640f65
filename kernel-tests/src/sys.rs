//! Thin wrappers over libc: errno handling, polling with deadlines, socket options.
//! Everything that can block takes a deadline, so no run can hang.

use crate::error::KernelError;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `uname -r` of the running kernel.
pub fn kernel_release() -> String {
    // SAFETY: utsname is plain old data; uname fills it.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return "unknown".into();
        }
        std::ffi::CStr::from_ptr(u.release.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

/// Whether the process may create namespaces and interfaces.
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Milliseconds left until `deadline`, for poll(2); 0 when past.
pub(crate) fn ms_left(deadline: Instant) -> i32 {
    let left = deadline.saturating_duration_since(Instant::now());
    left.as_millis().min(i32::MAX as u128) as i32
}

/// Waits until `fd` reports one of `events` (or POLLERR/POLLHUP). Returns the revents,
/// or `None` on timeout.
pub(crate) fn poll_until(
    fd: RawFd,
    events: i16,
    deadline: Instant,
) -> std::io::Result<Option<i16>> {
    loop {
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms_left(deadline)) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            if Instant::now() >= deadline {
                return Ok(None);
            }
            continue;
        }
        return Ok(Some(p.revents));
    }
}

pub(crate) fn set_int_opt(fd: RawFd, level: i32, name: i32, value: i32) -> std::io::Result<()> {
    // SAFETY: passes a pointer to a live i32 with its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub(crate) fn set_timeout_opt(fd: RawFd, name: i32, d: Duration) -> std::io::Result<()> {
    let tv = libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: passes a pointer to a live timeval with its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `pipe2(O_CLOEXEC)`.
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), KernelError> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(KernelError::last("pipe2"));
    }
    // SAFETY: pipe2 returned two fresh descriptors we now own.
    unsafe { Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))) }
}

/// Bytes readable from a pipe or socket (`FIONREAD`).
pub(crate) fn fionread(fd: &impl AsRawFd) -> std::io::Result<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as u64)
}

/// `ioctl(SIOCOUTQ)`: bytes written but not acknowledged (`tcp_ioctl`: write_seq − snd_una).
pub(crate) fn siocoutq(fd: RawFd) -> std::io::Result<u64> {
    let mut n: libc::c_int = 0;
    // SIOCOUTQ == TIOCOUTQ on Linux.
    // SAFETY: TIOCOUTQ writes one int.
    if unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as u64)
}

/// An anonymous private mapping, unmapped on drop.
pub(crate) struct Mapping {
    pub ptr: *mut u8,
    pub len: usize,
}

// SAFETY: the mapping is plain memory owned by this value.
unsafe impl Send for Mapping {}

impl Mapping {
    pub fn new(len: usize) -> Result<Mapping, KernelError> {
        // SAFETY: a fresh anonymous mapping; the kernel picks the address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(KernelError::last(format!("mmap {len} bytes")));
        }
        Ok(Mapping {
            ptr: ptr as *mut u8,
            len,
        })
    }

    /// The bytes `[off, off + len)`; the caller has checked the range.
    pub fn slice_mut(&mut self, off: usize, len: usize) -> &mut [u8] {
        assert!(off + len <= self.len);
        // SAFETY: within the mapping, which is readable and writable while mapped.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(off), len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what new() mapped (holes made by Munmap are fine).
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.len);
        }
    }
}
