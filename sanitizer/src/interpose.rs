//! The libc functions the runtime interposes (exported by the cdylib, found first
//! through `LD_PRELOAD`). Each calls the next definition and tells the runtime what it
//! learned; the program sees the same results and `errno`.

use crate::real;
use crate::runtime::{self, ACTIVE};
use crate::signals;
use crate::tracker::{prefix, Range};
use libc::{
    c_int, c_uint, c_void, iovec, mmsghdr, msghdr, off_t, sigset_t, size_t, sockaddr, socklen_t,
    ssize_t,
};
use std::sync::atomic::Ordering;
use zcsafe_sanitizer_events::SendCall;

fn range(p: *const c_void, len: usize) -> Range {
    Range {
        start: p as u64,
        len: len as u64,
    }
}

/// The buffers of an iovec array.
///
/// # Safety
/// `iov` points to `n` iovecs (or is null with `n` 0).
unsafe fn iovs(iov: *const iovec, n: usize) -> Vec<Range> {
    if iov.is_null() {
        return Vec::new();
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(iov, n) }
        .iter()
        .map(|v| range(v.iov_base, v.iov_len))
        .collect()
}

fn preserving_errno(f: impl FnOnce()) {
    // SAFETY: this thread's errno.
    let e = unsafe { *libc::__errno_location() };
    f();
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = e };
}

fn zerocopy(flags: c_int) -> bool {
    flags & libc::MSG_ZEROCOPY != 0 && ACTIVE.load(Ordering::Relaxed)
}

/// `send(2)`.
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t {
    // SAFETY: passed through.
    let r = unsafe { real::send(fd, buf, len, flags) };
    if zerocopy(flags) && r > 0 {
        preserving_errno(|| runtime::sent(fd, SendCall::Send, &[range(buf, len)], r as i64));
    }
    r
}

/// `sendto(2)`.
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    to: *const sockaddr,
    tolen: socklen_t,
) -> ssize_t {
    // SAFETY: passed through.
    let r = unsafe { real::sendto(fd, buf, len, flags, to, tolen) };
    if zerocopy(flags) && r > 0 {
        preserving_errno(|| runtime::sent(fd, SendCall::Sendto, &[range(buf, len)], r as i64));
    }
    r
}

/// `sendmsg(2)`.
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    // SAFETY: passed through.
    let r = unsafe { real::sendmsg(fd, msg, flags) };
    if zerocopy(flags) && r > 0 && !msg.is_null() {
        // SAFETY: the kernel just read this msghdr and its iovecs.
        let bufs = unsafe { iovs((*msg).msg_iov, (*msg).msg_iovlen) };
        preserving_errno(|| runtime::sent(fd, SendCall::Sendmsg, &bufs, r as i64));
    }
    r
}

/// `sendmmsg(2)`: each message is one `tcp_sendmsg` call, one id if it sent bytes.
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn sendmmsg(fd: c_int, msgs: *mut mmsghdr, n: c_uint, flags: c_int) -> c_int {
    // SAFETY: passed through.
    let r = unsafe { real::sendmmsg(fd, msgs, n, flags) };
    if zerocopy(flags) && r > 0 {
        preserving_errno(|| {
            for i in 0..r as usize {
                // SAFETY: the kernel filled msg_len of the first r messages.
                let (hdr, sent) = unsafe { ((*msgs.add(i)).msg_hdr, (*msgs.add(i)).msg_len) };
                // SAFETY: as above.
                let bufs = unsafe { iovs(hdr.msg_iov, hdr.msg_iovlen) };
                runtime::sent(fd, SendCall::Sendmmsg, &bufs, sent as i64);
            }
        });
    }
    r
}

/// `recv(2)`.
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    let bufs = [range(buf, len)];
    // SAFETY: passed through.
    runtime::lifted(
        "recv",
        &bufs,
        || unsafe { real::recv(fd, buf, len, flags) },
        |r| prefix(&bufs, r as i64),
    )
}

/// `recvfrom(2)`.
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    from: *mut sockaddr,
    fromlen: *mut socklen_t,
) -> ssize_t {
    let mut bufs = vec![range(buf, len)];
    if !from.is_null() && !fromlen.is_null() {
        // SAFETY: the caller passes a valid length for `from`.
        bufs.push(range(from.cast(), unsafe { *fromlen } as usize));
        bufs.push(range(fromlen.cast(), std::mem::size_of::<socklen_t>()));
    }
    runtime::lifted(
        "recvfrom",
        &bufs,
        // SAFETY: passed through.
        || unsafe { real::recvfrom(fd, buf, len, flags, from, fromlen) },
        |r| prefix(&bufs[..1], r as i64),
    )
}

/// `recvmsg(2)`; with `MSG_ERRQUEUE`, its zero-copy notifications release submissions.
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    if msg.is_null() {
        // SAFETY: passed through (the kernel answers EFAULT).
        return unsafe { real::recvmsg(fd, msg, flags) };
    }
    // SAFETY: the caller's msghdr, read before the kernel writes it.
    let (data, mut bufs) = unsafe {
        let m = &*msg;
        let data = iovs(m.msg_iov, m.msg_iovlen);
        let mut all = data.clone();
        all.push(range(msg.cast(), std::mem::size_of::<msghdr>()));
        all.push(range(m.msg_name, m.msg_namelen as usize));
        all.push(range(m.msg_control, m.msg_controllen));
        (data, all)
    };
    bufs.retain(|b| b.start != 0);
    let r = runtime::lifted(
        "recvmsg",
        &bufs,
        // SAFETY: passed through.
        || unsafe { real::recvmsg(fd, msg, flags) },
        |r| prefix(&data, r as i64),
    );
    if r >= 0 && flags & libc::MSG_ERRQUEUE != 0 && ACTIVE.load(Ordering::Relaxed) {
        // SAFETY: recvmsg returned ≥ 0: the kernel filled msg.
        preserving_errno(|| unsafe { runtime::errqueue(fd, msg) });
    }
    r
}

/// `read(2)`.
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t {
    let bufs = [range(buf, len)];
    // SAFETY: passed through.
    runtime::lifted(
        "read",
        &bufs,
        || unsafe { real::read(fd, buf, len) },
        |r| prefix(&bufs, r as i64),
    )
}

/// `readv(2)`.
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    // SAFETY: the caller's iovecs.
    let bufs = unsafe { iovs(iov, n.max(0) as usize) };
    // SAFETY: passed through.
    runtime::lifted(
        "readv",
        &bufs,
        || unsafe { real::readv(fd, iov, n) },
        |r| prefix(&bufs, r as i64),
    )
}

/// `pread(2)`.
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn pread(fd: c_int, buf: *mut c_void, len: size_t, off: off_t) -> ssize_t {
    let bufs = [range(buf, len)];
    // SAFETY: passed through.
    runtime::lifted(
        "pread",
        &bufs,
        || unsafe { real::pread(fd, buf, len, off) },
        |r| prefix(&bufs, r as i64),
    )
}

/// `pread64(2)` (the same call on x86-64).
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn pread64(fd: c_int, buf: *mut c_void, len: size_t, off: off_t) -> ssize_t {
    let bufs = [range(buf, len)];
    // SAFETY: passed through.
    runtime::lifted(
        "pread64",
        &bufs,
        || unsafe { real::pread64(fd, buf, len, off) },
        |r| prefix(&bufs, r as i64),
    )
}

/// `close(2)`: a socket's submissions are released (their notifications are gone); the
/// report file stays open.
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if crate::report::is_report_fd(fd) {
        return 0;
    }
    // SAFETY: passed through.
    let r = unsafe { real::close(fd) };
    if r == 0 {
        preserving_errno(|| runtime::closed(fd));
    }
    r
}

/// `sigaction(2)`: SIGSEGV, SIGTRAP and SIGSYS are recorded as the program's, the runtime's
/// handlers stay installed and pass on what is not theirs.
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    // SAFETY: the caller's pointers, each null or valid.
    unsafe {
        if let Some(prev) = signals::program_sigaction(sig, act.as_ref()) {
            if !old.is_null() {
                *old = prev;
            }
            return 0;
        }
        real::sigaction(sig, act, old)
    }
}

/// `signal(2)`, as glibc's (BSD semantics), on top of the interposed `sigaction`.
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    // SAFETY: plain data, then sigaction with our own structs.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = handler;
        act.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaddset(&mut act.sa_mask, sig);
        let mut old: libc::sigaction = std::mem::zeroed();
        if sigaction(sig, &act, &mut old) < 0 {
            return libc::SIG_ERR;
        }
        old.sa_sigaction
    }
}

/// A signal mask without SIGSEGV, SIGTRAP and SIGSYS: blocked, a fault (or a trapped
/// io_uring call: `force_sig_info_to_task` resets a blocked SIGSYS to its default) would
/// kill the program.
///
/// # Safety
/// `set` is null or valid.
unsafe fn deliverable(how: c_int, set: *const sigset_t) -> Option<sigset_t> {
    if set.is_null() || how == libc::SIG_UNBLOCK || !signals::must_stay_unblocked(libc::SIGSEGV) {
        return None;
    }
    // SAFETY: copies the caller's set and edits the copy.
    unsafe {
        let mut s = *set;
        libc::sigdelset(&mut s, libc::SIGSEGV);
        libc::sigdelset(&mut s, libc::SIGTRAP);
        libc::sigdelset(&mut s, libc::SIGSYS);
        Some(s)
    }
}

/// `sigprocmask(2)`, keeping SIGSEGV, SIGTRAP and SIGSYS deliverable.
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn sigprocmask(
    how: c_int,
    set: *const sigset_t,
    old: *mut sigset_t,
) -> c_int {
    // SAFETY: passed through, with the edited copy.
    unsafe {
        match deliverable(how, set) {
            Some(s) => real::sigprocmask(how, &s, old),
            None => real::sigprocmask(how, set, old),
        }
    }
}

/// `pthread_sigmask(3)`, keeping SIGSEGV, SIGTRAP and SIGSYS deliverable.
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn pthread_sigmask(
    how: c_int,
    set: *const sigset_t,
    old: *mut sigset_t,
) -> c_int {
    // SAFETY: passed through, with the edited copy.
    unsafe {
        match deliverable(how, set) {
            Some(s) => real::pthread_sigmask(how, &s, old),
            None => real::pthread_sigmask(how, set, old),
        }
    }
}

/// `_exit(2)`: the summary first (`exit` writes it from `atexit`).
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn _exit(status: c_int) -> ! {
    runtime::summary();
    // SAFETY: passed through.
    unsafe { real::_exit(status) };
    unreachable_exit(status)
}

/// `_Exit(3)`: as `_exit`.
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn _Exit(status: c_int) -> ! {
    runtime::summary();
    // SAFETY: passed through.
    unsafe { real::_Exit(status) };
    unreachable_exit(status)
}

fn unreachable_exit(status: c_int) -> ! {
    // SAFETY: exit_group does not return.
    unsafe { libc::syscall(libc::SYS_exit_group, status) };
    loop {
        std::hint::spin_loop();
    }
}

/// Silences "unused" for the offset type on targets where pread64 aliases pread.
pub type Offset = off_t;

/// A system call made here, as glibc's `syscall` makes it (the instruction is not in the
/// trampoline's page, so the filter traps the io_uring calls: they never come here).
///
/// # Safety
/// As for the system call.
unsafe fn raw_syscall(nr: i64, a: [i64; 6]) -> i64 {
    let r: i64;
    // SAFETY: the caller's contract; the kernel clobbers rcx and r11.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr => r,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    r
}

/// `syscall(2)`: the io_uring calls a program makes through it (the io-uring crate does)
/// go to the runtime directly, without the `SIGSYS` round trip the seccomp filter would
/// cost (about 5 µs here, docs/design.md §8); every other call is made as glibc makes it.
/// Declared with seven integer arguments: on x86-64 a variadic call passes them in the
/// same registers (and the stack slot of the seventh is the caller's, always mapped).
///
/// # Safety
/// As for libc's.
#[no_mangle]
pub unsafe extern "C" fn syscall(
    nr: libc::c_long,
    a1: libc::c_long,
    a2: libc::c_long,
    a3: libc::c_long,
    a4: libc::c_long,
    a5: libc::c_long,
    a6: libc::c_long,
) -> libc::c_long {
    let a = [a1, a2, a3, a4, a5, a6];
    let uring = matches!(
        nr,
        libc::SYS_io_uring_setup | libc::SYS_io_uring_enter | libc::SYS_io_uring_register
    );
    let r = if uring && crate::trap::TRAPPING.load(Ordering::Acquire) {
        runtime::uring_call(nr, a)
    } else {
        // SAFETY: the caller's call, passed through.
        unsafe { raw_syscall(nr, a) }
    };
    if (-4095..0).contains(&r) {
        // SAFETY: this thread's errno.
        unsafe { *libc::__errno_location() = -r as c_int };
        -1
    } else {
        r
    }
}
