//! The runtime of `zcsafe sanitize`, preloaded into a program with `LD_PRELOAD`.
//!
//! For every `MSG_ZEROCOPY` send on a TCP socket with `SO_ZEROCOPY`, it mirrors the
//! notification id the kernel assigns ([`tracker`]), write-protects the pages of the
//! bytes the kernel holds ([`pages`]), and lifts the protection when the program's own
//! `recvmsg(MSG_ERRQUEUE)` returns a notification covering them. A store to a held byte
//! is a premature write: reported, then executed as a single step ([`signals`]) — or,
//! with `ZCSAFE_SANITIZE_ABORT=1`, the program stops there. System calls that write
//! user memory get their pages writable for their duration ([`interpose`]), so the
//! program never sees the `EFAULT` a protected page would cause. Reports go to the file
//! named by `ZCSAFE_SANITIZE_REPORT` as `zcsafe_sanitizer_events::Event` lines.
//!
//! io_uring `SEND_ZC` and `SENDMSG_ZC` requests are tracked the same way, read from the
//! rings at each `io_uring_enter` and released by their NOTIF CQEs ([`uring`]); the
//! io_uring system calls, which liburing makes with a raw `syscall` instruction, reach
//! the runtime through a seccomp filter that traps them ([`trap`]), or through the
//! interposed `syscall(2)`.
//!
//! Without that variable the runtime passes every call through and does nothing else.
//! Design and limits: docs/design.md §8.

#![warn(missing_docs)]

#[cfg(not(target_arch = "x86_64"))]
compile_error!("the sanitizer single-steps stores with the x86 trap flag: x86-64 only");

pub mod arena;
#[cfg(not(test))]
pub mod interpose;
pub mod lock;
pub mod maps;
pub mod pages;
pub mod real;
pub mod report;
pub mod runtime;
pub mod signals;
pub mod tracker;
pub mod trap;
pub mod uring;

/// The runtime's allocator (see [`arena`]).
#[cfg(not(test))]
#[global_allocator]
static ARENA: arena::Arena = arena::Arena::new();

/// Writes `msg` to stderr and exits (a libc function the runtime needs is missing).
pub fn die(msg: &str) -> ! {
    // SAFETY: raw write of a static message, then exit_group.
    unsafe {
        libc::syscall(libc::SYS_write, 2, msg.as_ptr(), msg.len());
        libc::syscall(libc::SYS_exit_group, 127);
    }
    unreachable!()
}

#[cfg(not(test))]
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;

#[cfg(not(test))]
extern "C" fn init() {
    use zcsafe_sanitizer_events::{ABORT_ENV, REPORT_ENV};
    let Some(path) = std::env::var_os(REPORT_ENV) else {
        return;
    };
    let abort = std::env::var_os(ABORT_ENV).is_some_and(|v| v == "1");
    runtime::start(&path, abort);
    if !runtime::ACTIVE.load(std::sync::atomic::Ordering::Acquire) {
        return;
    }
    signals::install();
    if let Err(why) = trap::install() {
        // io_uring goes unseen; say so once (the summary's counts show nothing tracked)
        let msg = format!("zcsafe-sanitizer: io_uring not followed: {why}\n");
        // SAFETY: a raw write of our own buffer.
        unsafe { libc::syscall(libc::SYS_write, 2, msg.as_ptr(), msg.len()) };
    }
    // SAFETY: registers plain extern "C" functions with no arguments.
    unsafe {
        libc::pthread_atfork(
            Some(before_fork),
            Some(after_fork_parent),
            Some(after_fork_child),
        );
        libc::atexit(at_exit);
    }
}

#[cfg(not(test))]
extern "C" fn before_fork() {
    runtime::STATE.lock_raw();
    ARENA.lock_for_fork();
}

#[cfg(not(test))]
extern "C" fn after_fork_parent() {
    // SAFETY: locked by before_fork in this thread.
    unsafe {
        ARENA.unlock_after_fork();
        runtime::STATE.unlock_raw();
    }
}

#[cfg(not(test))]
extern "C" fn after_fork_child() {
    // SAFETY: locked by before_fork in the thread that forked (the child's only one).
    unsafe {
        ARENA.unlock_after_fork();
        runtime::STATE.unlock_raw();
    }
    runtime::forked_child();
}

#[cfg(not(test))]
extern "C" fn at_exit() {
    runtime::summary();
}
