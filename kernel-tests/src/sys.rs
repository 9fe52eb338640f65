//! Thin wrappers over libc: errno handling, polling with deadlines, socket options, and
//! every data-moving call the executor and the probe make (`send`, `recv`, `read`,
//! `vmsplice`, `splice`, `sendfile`, `fcntl(F_SETPIPE_SZ)`, `mmap`/`munmap`).
//!
//! Why one module: the executor (a policy's operations) and the probe (the kernel's
//! profile) make the same calls, and each `unsafe` block, errno check and pointer cast
//! should exist once, next to the man page that defines it. The wrappers are as thin as
//! rustix's: same arguments as the C call, `io::Result` instead of `-1` and `errno`, no
//! retries (see `retry_eintr`). Everything that can block takes a deadline or runs on a
//! socket with `SO_SNDTIMEO`, so no run can hang.
//!
//! Several calls hand our pages to the kernel by reference (`send` with `MSG_ZEROCOPY`,
//! `vmsplice`): the kernel may read them after the call returns, so later writes to
//! them show in what is sent. That is what zcsafe measures; the kernel reads them as a
//! device would, not through a Rust reference.

use crate::error::KernelError;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// `-1` → the thread's `errno` as an [`io::Error`]; else the count.
fn cvt(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Calls `call` again while it fails with `EINTR` (a signal arrived before any data
/// moved): the one restart loop of every blocking call here.
pub(crate) fn retry_eintr<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// `EOPNOTSUPP (Operation not supported (os error 95))`: the symbolic name the policy
/// contract uses, then the C library's text.
pub(crate) fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{} ({e})", zcsafe_policy::Errno::from_raw(n)),
        None => e.to_string(),
    }
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
    // SAFETY: geteuid has no preconditions, touches no memory and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Milliseconds left until `deadline`, for poll(2); 0 when past.
pub(crate) fn ms_left(deadline: Instant) -> i32 {
    let left = deadline.saturating_duration_since(Instant::now());
    left.as_millis().min(i32::MAX as u128) as i32
}

/// `poll(&[{fd, events}], 1, ms)` until `deadline` — [poll(2)]. Waits until `fd`
/// reports one of `events` (or POLLERR/POLLHUP). Returns the revents, or `None` on
/// timeout.
///
/// [poll(2)]: https://man7.org/linux/man-pages/man2/poll.2.html
pub(crate) fn poll_until(fd: RawFd, events: i16, deadline: Instant) -> io::Result<Option<i16>> {
    loop {
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let r = retry_eintr(|| {
            // SAFETY: one pollfd on our stack, and we pass its count.
            cvt(unsafe { libc::poll(&mut p, 1, ms_left(deadline)) } as isize)
        })?;
        if r == 0 {
            if Instant::now() >= deadline {
                return Ok(None);
            }
            continue;
        }
        return Ok(Some(p.revents));
    }
}

/// `setsockopt(fd, level, name, &value, sizeof(int))` — [setsockopt(2)].
///
/// [setsockopt(2)]: https://man7.org/linux/man-pages/man2/setsockopt.2.html
pub(crate) fn set_int_opt(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
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
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `setsockopt(fd, SOL_SOCKET, name, &timeval, ..)` for `SO_SNDTIMEO`/`SO_RCVTIMEO` —
/// [setsockopt(2)], [socket(7)].
///
/// [setsockopt(2)]: https://man7.org/linux/man-pages/man2/setsockopt.2.html
/// [socket(7)]: https://man7.org/linux/man-pages/man7/socket.7.html
pub(crate) fn set_timeout_opt(fd: RawFd, name: i32, d: Duration) -> io::Result<()> {
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
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `pipe2(fds, O_CLOEXEC)` — [pipe(2)]. Returns (read end, write end).
///
/// [pipe(2)]: https://man7.org/linux/man-pages/man2/pipe.2.html
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), KernelError> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(KernelError::last("pipe2"));
    }
    // SAFETY: pipe2 returned two fresh descriptors we now own.
    unsafe { Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))) }
}

/// `ioctl(fd, FIONREAD, &n)`: bytes readable from a pipe or socket — [ioctl(2)],
/// [tcp(7)].
///
/// [ioctl(2)]: https://man7.org/linux/man-pages/man2/ioctl.2.html
/// [tcp(7)]: https://man7.org/linux/man-pages/man7/tcp.7.html
pub(crate) fn fionread(fd: &impl AsRawFd) -> io::Result<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as u64)
}

/// `ioctl(fd, SIOCOUTQ, &n)`: bytes written but not acknowledged (`tcp_ioctl`:
/// write_seq − snd_una) — [tcp(7)].
///
/// [tcp(7)]: https://man7.org/linux/man-pages/man7/tcp.7.html
pub(crate) fn siocoutq(fd: RawFd) -> io::Result<u64> {
    let mut n: libc::c_int = 0;
    // SIOCOUTQ == TIOCOUTQ on Linux.
    // SAFETY: TIOCOUTQ writes one int.
    if unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as u64)
}

/// `ioctl(fd, SIOCOUTQNSD, &n)`: bytes written but not yet sent (`tcp_ioctl`:
/// write_seq − snd_nxt) — [tcp(7)].
///
/// [tcp(7)]: https://man7.org/linux/man-pages/man7/tcp.7.html
pub(crate) fn siocoutqnsd(fd: RawFd) -> io::Result<u64> {
    const SIOCOUTQNSD: libc::c_ulong = 0x894B;
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQNSD writes one int.
    if unsafe { libc::ioctl(fd, SIOCOUTQNSD, &mut n) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as u64)
}

/// `getsockopt(fd, level, name, &int, ..)` — [getsockopt(2)].
///
/// [getsockopt(2)]: https://man7.org/linux/man-pages/man2/getsockopt.2.html
pub(crate) fn get_int_opt(fd: RawFd, level: i32, name: i32) -> io::Result<i32> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: passes a live i32 and its size; the kernel writes at most `len` bytes.
    let r = unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut i32).cast(), &mut len) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v)
}

/// `getsockopt(fd, IPPROTO_TCP, TCP_INFO)`: the connection's state as `tcp_get_info`
/// reports it — [tcp(7)].
///
/// [tcp(7)]: https://man7.org/linux/man-pages/man7/tcp.7.html
pub(crate) fn tcp_info(fd: RawFd) -> io::Result<libc::tcp_info> {
    // SAFETY: tcp_info is plain data; all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: passes a live tcp_info and its size; the kernel writes at most `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

/// [`tcp_info`]'s `tcpi_rcv_ssthresh`: the window the receiver is willing to advertise
/// now.
pub(crate) fn tcp_rcv_ssthresh(fd: RawFd) -> io::Result<u32> {
    tcp_info(fd).map(|i| i.tcpi_rcv_ssthresh)
}

/// `send(fd, buf, len, flags)` — [send(2)]. With `MSG_ZEROCOPY` the kernel keeps
/// referencing `buf`'s pages until the error-queue notification ([`crate::errqueue`]).
///
/// [send(2)]: https://man7.org/linux/man-pages/man2/send.2.html
pub(crate) fn send(fd: RawFd, buf: &[u8], flags: i32) -> io::Result<usize> {
    // SAFETY: `buf` is live and readable for `buf.len()` bytes.
    cvt(unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) })
}

/// `recv(fd, buf, len, flags)` — [recv(2)]. `Ok(0)`: the peer shut its side down.
///
/// [recv(2)]: https://man7.org/linux/man-pages/man2/recv.2.html
pub(crate) fn recv(fd: RawFd, buf: &mut [u8], flags: i32) -> io::Result<usize> {
    // SAFETY: `buf` is live and writable for `buf.len()` bytes.
    cvt(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) })
}

/// `read(fd, buf, len)` — [read(2)]. `Ok(0)`: end of file.
///
/// [read(2)]: https://man7.org/linux/man-pages/man2/read.2.html
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is live and writable for `buf.len()` bytes.
    cvt(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// `vmsplice(pipe, &iovec{buf}, 1, flags)` — [vmsplice(2)]: one iovec into the write end
/// of a pipe. Unless the kernel copies (a 2026 vfs series makes it), the pipe holds
/// references to `buf`'s pages (`iter_to_pipe`), so writes to `buf` before the pipe is
/// read show in what comes out.
///
/// [vmsplice(2)]: https://man7.org/linux/man-pages/man2/vmsplice.2.html
pub(crate) fn vmsplice(pipe: RawFd, buf: &[u8], flags: u32) -> io::Result<usize> {
    let iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: one iovec over `buf`, which is live; writing to a pipe only reads it.
    cvt(unsafe { libc::vmsplice(pipe, &iov, 1, flags) })
}

/// `splice(fd_in, off_in, fd_out, NULL, len, flags)` — [splice(2)]. `off_in` is the
/// file offset to read at (advanced by the call), `None` for a pipe or socket; the
/// output side never has an offset here (a pipe or a socket).
///
/// [splice(2)]: https://man7.org/linux/man-pages/man2/splice.2.html
pub(crate) fn splice(
    fd_in: RawFd,
    off_in: Option<&mut libc::loff_t>,
    fd_out: RawFd,
    len: usize,
    flags: u32,
) -> io::Result<usize> {
    let off_in = off_in.map_or(std::ptr::null_mut(), |o| o as *mut libc::loff_t);
    // SAFETY: `off_in` is null or points to a live loff_t; no output offset.
    cvt(unsafe { libc::splice(fd_in, off_in, fd_out, std::ptr::null_mut(), len, flags) })
}

/// `sendfile(out_fd, in_fd, &offset, count)` — [sendfile(2)]. Reads the file at
/// `offset` and advances it by what was sent.
///
/// [sendfile(2)]: https://man7.org/linux/man-pages/man2/sendfile.2.html
pub(crate) fn sendfile(
    out_fd: RawFd,
    in_fd: RawFd,
    offset: &mut libc::off_t,
    count: usize,
) -> io::Result<usize> {
    // SAFETY: `offset` points to a live off_t.
    cvt(unsafe { libc::sendfile(out_fd, in_fd, offset, count) })
}

/// `fcntl(pipe, F_SETPIPE_SZ, size)` — [fcntl(2)], [pipe(7)]. Returns the size the
/// kernel chose (a power-of-two number of pages, at least `size`).
///
/// [fcntl(2)]: https://man7.org/linux/man-pages/man2/fcntl.2.html
/// [pipe(7)]: https://man7.org/linux/man-pages/man7/pipe.7.html
pub(crate) fn set_pipe_size(pipe: RawFd, size: i32) -> io::Result<usize> {
    // SAFETY: F_SETPIPE_SZ takes an int and touches no memory of ours.
    cvt(unsafe { libc::fcntl(pipe, libc::F_SETPIPE_SZ, size) } as isize)
}

/// An anonymous private mapping, unmapped on drop.
pub(crate) struct Mapping {
    pub ptr: *mut u8,
    pub len: usize,
}

// SAFETY: the raw pointer is all that keeps Mapping from being Send. A mapping belongs
// to the process, not to a thread, and this value is its only owner (no Clone, slices
// borrow it), so moving it to another thread moves exclusive access with it.
unsafe impl Send for Mapping {}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)` —
    /// [mmap(2)].
    ///
    /// [mmap(2)]: https://man7.org/linux/man-pages/man2/mmap.2.html
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

    /// The bytes `[off, off + len)`, read-only; the caller has checked the range.
    pub fn slice(&self, off: usize, len: usize) -> &[u8] {
        assert!(off + len <= self.len);
        // SAFETY: within the mapping, which is readable while mapped.
        unsafe { std::slice::from_raw_parts(self.ptr.add(off), len) }
    }

    /// The bytes `[off, off + len)`; the caller has checked the range.
    pub fn slice_mut(&mut self, off: usize, len: usize) -> &mut [u8] {
        assert!(off + len <= self.len);
        // SAFETY: within the mapping, which is readable and writable while mapped.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(off), len) }
    }

    /// `munmap(ptr + off, len)` — [munmap(2)]: leaves a hole in the mapping (the kernel
    /// keeps pages it still references).
    ///
    /// # Safety
    ///
    /// `[off, off + len)` lies inside the mapping and is page-aligned, and the caller
    /// takes no slice of it until [`Mapping::map_fixed`] maps it again (the executor's
    /// page table does that bookkeeping).
    ///
    /// [munmap(2)]: https://man7.org/linux/man-pages/man2/munmap.2.html
    pub unsafe fn unmap(&mut self, off: usize, len: usize) -> io::Result<()> {
        assert!(off + len <= self.len);
        // SAFETY: inside our mapping (asserted), page alignment is the caller's.
        cvt(unsafe { libc::munmap(self.ptr.add(off).cast(), len) } as isize).map(|_| ())
    }

    /// `mmap(ptr + off, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
    /// MAP_FIXED, -1, 0)` — [mmap(2)]: fresh zeroed pages at the same addresses.
    ///
    /// [mmap(2)]: https://man7.org/linux/man-pages/man2/mmap.2.html
    pub fn map_fixed(&mut self, off: usize, len: usize) -> io::Result<()> {
        assert!(off + len <= self.len);
        // SAFETY: MAP_FIXED replaces only pages inside our own reservation (asserted),
        // which no one else maps; slices of them see fresh zeroed memory.
        let p = unsafe {
            libc::mmap(
                self.ptr.add(off).cast(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(())
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
