//! The seccomp filter on the real kernel, in a child process (a filter cannot be removed,
//! so the test binary runs itself with `ZCSAFE_TRAP_CHILD` set): io_uring calls from
//! anywhere but the trampoline raise `SIGSYS` with the call's number, calls through the
//! trampoline reach the kernel, other calls are untouched, and after an `execve` the new
//! image's install finds the inherited filter by its probe instead of stacking another.

use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use zcsafe_sanitizer::trap;

const CHILD: &str = "ZCSAFE_TRAP_CHILD";

static TRAPPED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_sys(_: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel's SIGSYS siginfo (`_syscall` at 24) and ucontext.
    unsafe {
        let nr = std::ptr::read_unaligned((info as *const u8).add(24) as *const i32);
        TRAPPED.store(nr, Ordering::SeqCst);
        let g = &mut (*(ctx as *mut libc::ucontext_t)).uc_mcontext.gregs;
        g[libc::REG_RAX as usize] = -(libc::ENOSYS as i64);
    }
}

fn filters() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp_filters:"))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn child() -> i32 {
    let before = filters();
    if trap::install().is_err() {
        return 10;
    }
    if filters() != before + 1 {
        return 11;
    }
    // SAFETY: installs a SA_SIGINFO handler of the right signature.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_sys as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO;
        libc::sigaction(libc::SIGSYS, &act, std::ptr::null_mut());
    }
    // a raw syscall instruction outside the trampoline (as liburing makes it): trapped, the
    // handler's -ENOSYS comes back (libc's syscall(2) is the runtime's own in this binary)
    let r: i64;
    // SAFETY: io_uring_setup(0, NULL) fails whatever happens; rcx and r11 are clobbered.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") libc::SYS_io_uring_setup => r,
            in("rdi") 0,
            in("rsi") 0,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    if TRAPPED.load(Ordering::SeqCst) != libc::SYS_io_uring_setup as i32
        || r != -(libc::ENOSYS as i64)
    {
        return 12;
    }
    TRAPPED.store(0, Ordering::SeqCst);
    // through the trampoline: the kernel itself refuses 0 entries
    // SAFETY: as above.
    let r = unsafe { trap::syscall(libc::SYS_io_uring_setup, [0, 0, 0, 0, 0, 0]) };
    if TRAPPED.load(Ordering::SeqCst) != 0
        || !(r == -(libc::EINVAL as i64) || r == -(libc::EFAULT as i64))
    {
        return 13;
    }
    // another call is untouched
    // SAFETY: getpid.
    if unsafe { libc::syscall(libc::SYS_getpid) } != std::process::id() as i64
        || TRAPPED.load(Ordering::SeqCst) != 0
    {
        return 14;
    }
    // in this image the trampoline's page is taken: a second install is refused
    if trap::install().is_ok() {
        return 15;
    }
    // after an exec the filter stays; the new image's trampoline, at the same address,
    // gets through it, and its install finds it by the probe instead of stacking another
    let st = Command::new(std::env::current_exe().unwrap())
        .args(ARGS)
        .env(CHILD, "exec")
        .status()
        .unwrap();
    st.code().unwrap_or(99)
}

fn after_exec() -> i32 {
    let before = filters();
    if before == 0 {
        return 20;
    }
    if trap::install().is_err() || filters() != before {
        return 21;
    }
    // SAFETY: as in `child`.
    let r = unsafe { trap::syscall(libc::SYS_io_uring_setup, [0, 0, 0, 0, 0, 0]) };
    if !(r == -(libc::EINVAL as i64) || r == -(libc::EFAULT as i64)) {
        return 22;
    }
    0
}

const ARGS: [&str; 3] = [
    "--exact",
    "the_filter_traps_io_uring_calls_except_from_the_trampoline",
    "--test-threads=1",
];

#[test]
fn the_filter_traps_io_uring_calls_except_from_the_trampoline() {
    match std::env::var(CHILD).as_deref() {
        Ok("exec") => std::process::exit(after_exec()),
        Ok(_) => std::process::exit(child()),
        Err(_) => {}
    }
    let st = Command::new(std::env::current_exe().unwrap())
        .args(ARGS)
        .env(CHILD, "1")
        .status()
        .unwrap();
    assert_eq!(
        st.code(),
        Some(0),
        "the child's check failed (its exit code names it)"
    );
}
