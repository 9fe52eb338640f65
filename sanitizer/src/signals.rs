//! The fault handlers, and the program's own handlers behind them.
//!
//! A store to a protected page raises `SIGSEGV` (`SEGV_ACCERR`). If the page is the
//! runtime's, the store is reported when an in-flight range holds the address, then the
//! page is made writable, the x86 trap flag is set in the interrupted context, and the
//! store executes as one single step; the `SIGTRAP` after it protects the page again.
//! (A `rep` string instruction traps after each iteration: while the instruction pointer
//! stays on it, the page stays writable.) Every other fault, and every `SIGTRAP` the
//! runtime did not cause, goes to the handler the program installed — its `sigaction`
//! and `signal` calls for these two signals are recorded here, not given to the kernel —
//! or gets the default action.

use crate::lock::SpinLock;
use crate::pages::page_of;
use crate::real;
use crate::runtime::{self, Os, ABORT, ACTIVE, STATE};
use crate::tracker::Range;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use zcsafe_sanitizer_events::Writer;

const TRAP_FLAG: i64 = 0x100;
/// `si_code` of a fault on a page whose protection forbids the access.
const SEGV_ACCERR: i32 = 2;
const MAX_STEP_PAGES: usize = 4;

/// The handlers the program asked for (SIGSEGV, SIGTRAP, SIGSYS).
static PROGRAM: SpinLock<Option<[libc::sigaction; 3]>> = SpinLock::new(None);

/// Whether the runtime's handlers are installed.
pub static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The store a thread is single-stepping.
#[derive(Clone, Copy)]
struct Step {
    pages: [u64; MAX_STEP_PAGES],
    n: usize,
    ip: u64,
    /// Made writable without the tracker (the runtime itself faulted under its lock).
    raw: bool,
}

const NO_STEP: Step = Step {
    pages: [0; MAX_STEP_PAGES],
    n: 0,
    ip: 0,
    raw: false,
};

thread_local! {
    static STEP: Cell<Step> = const { Cell::new(NO_STEP) };
}

fn slot(sig: i32) -> Option<usize> {
    match sig {
        libc::SIGSEGV => Some(0),
        libc::SIGTRAP => Some(1),
        libc::SIGSYS => Some(2),
        _ => None,
    }
}

/// Installs the runtime's handlers; what was installed before becomes the program's.
pub fn install() {
    let mut prev = [unsafe_zeroed(), unsafe_zeroed(), unsafe_zeroed()];
    for (i, (sig, h)) in [
        (libc::SIGSEGV, on_segv as *const () as usize),
        (libc::SIGTRAP, on_trap as *const () as usize),
        (libc::SIGSYS, on_sys as *const () as usize),
    ]
    .into_iter()
    .enumerate()
    {
        let mut act = unsafe_zeroed();
        act.sa_sigaction = h;
        // Not SA_ONSTACK (SIGSYS included): the program's alternate stack (Rust's runtime gives each thread
        // one of a few KiB for its stack-overflow message) is too small for an AVX-512
        // signal frame plus this handler, and overflowing it killed the program with
        // SIGSEGV. The faults handled here are stores to protected pages, with the
        // thread's own stack intact. The cost: a program's real stack overflow can no
        // longer reach its own handler on its alternate stack, so it dies of SIGSEGV
        // without its message (docs/design.md §8).
        act.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_RESTART;
        // SAFETY: installs a handler of the SA_SIGINFO signature; prev is ours to fill.
        unsafe { real::sigaction(sig, &act, &mut prev[i]) };
    }
    *PROGRAM.lock() = Some(prev);
    INSTALLED.store(true, Ordering::Release);
}

fn unsafe_zeroed() -> libc::sigaction {
    // SAFETY: sigaction is plain data; all-zero is SIG_DFL with an empty mask.
    unsafe { std::mem::zeroed() }
}

/// The program's `sigaction` for a signal the runtime handles: recorded, not installed.
/// Returns `None` for other signals (the caller passes them on).
pub fn program_sigaction(sig: i32, act: Option<&libc::sigaction>) -> Option<libc::sigaction> {
    let i = slot(sig)?;
    if !INSTALLED.load(Ordering::Acquire) {
        return None;
    }
    let mut g = PROGRAM.lock();
    let h = g.as_mut()?;
    let old = h[i];
    if let Some(a) = act {
        h[i] = *a;
    }
    Some(old)
}

/// Whether a mask operation must keep these signals deliverable: a fault while they are
/// blocked would kill the program.
pub fn must_stay_unblocked(sig: i32) -> bool {
    INSTALLED.load(Ordering::Relaxed) && slot(sig).is_some()
}

type Ctx = libc::ucontext_t;

fn regs(ctx: *mut libc::c_void) -> *mut [i64; 23] {
    // SAFETY: the kernel passes a ucontext_t as the third argument of SA_SIGINFO handlers.
    unsafe { &mut (*(ctx as *mut Ctx)).uc_mcontext.gregs as *mut [i64; 23] }
}

fn ip_of(ctx: *mut libc::c_void) -> u64 {
    // SAFETY: see regs.
    unsafe { (*regs(ctx))[libc::REG_RIP as usize] as u64 }
}

fn set_trap(ctx: *mut libc::c_void, on: bool) {
    // SAFETY: see regs; the flags register is restored by sigreturn, TF included.
    unsafe {
        let efl = &mut (*regs(ctx))[libc::REG_EFL as usize];
        if on {
            *efl |= TRAP_FLAG;
        } else {
            *efl &= !TRAP_FLAG;
        }
    }
}

fn push_step(page: u64, ip: u64, raw: bool) -> bool {
    STEP.with(|s| {
        let mut st = s.get();
        if st.pages[..st.n].contains(&page) {
            return true;
        }
        if st.n == MAX_STEP_PAGES {
            return false;
        }
        st.pages[st.n] = page;
        st.n += 1;
        st.ip = ip;
        st.raw |= raw;
        s.set(st);
        true
    })
}

extern "C" fn on_segv(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: errno of this thread, restored before returning to the interrupted code.
    let errno = unsafe { *libc::__errno_location() };
    let handled = ours(info, ctx);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
    if !handled {
        chain(sig, info, ctx);
    }
}

/// Handles the fault if the runtime caused it.
fn ours(info: *mut libc::siginfo_t, ctx: *mut libc::c_void) -> bool {
    // SAFETY: the kernel's siginfo for a SIGSEGV.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as u64) };
    if code != SEGV_ACCERR || !ACTIVE.load(Ordering::Acquire) {
        return false;
    }
    let page = page_of(addr);
    let ip = ip_of(ctx);
    if STATE.held_by_me() {
        // The runtime itself stored to a protected page under its lock (it never
        // should): let the store through without touching the tracker.
        let ok = push_step(page, ip, true)
            // SAFETY: one page the runtime protected.
            && unsafe {
                libc::mprotect(page as *mut _, 4096, libc::PROT_READ | libc::PROT_WRITE) == 0
            };
        if ok {
            set_trap(ctx, true);
        }
        return ok;
    }
    let mut g = STATE.lock();
    let Some(rt) = g.as_mut() else {
        return false;
    };
    let before = rt.tracker.pages.get(page).copied();
    // a NOTIF the program reaped (or the kernel posted) without a system call
    rt.look_rings();
    let Some(e) = rt.tracker.pages.get(page).copied() else {
        // released just now: the store is retried on a writable page
        return before.is_some_and(|b| b.protected && b.writable_prot.is_some());
    };
    if e.writable_prot.is_none() {
        return false; // a page the program made read-only: its fault
    }
    if !e.protected {
        return true; // another thread made it writable meanwhile: retry the store
    }
    if let Some(h) = rt.tracker.holder(Range {
        start: addr,
        len: 1,
    }) {
        if rt.premature(&h, ip) {
            let maps = crate::maps::read();
            let m = crate::maps::find(&maps, ip);
            let writer = Writer::Instruction {
                ip,
                module: m.map(|m| m.path.as_str().into()),
                module_offset: m.map_or(ip, |m| crate::maps::file_offset(m, ip)),
            };
            crate::report::emit(&runtime::premature_event(&h, writer));
        }
        if ABORT.load(Ordering::Relaxed) {
            drop(g);
            // Stop at the store: default action, and the store faults again.
            let dfl = unsafe_zeroed();
            // SAFETY: installs SIG_DFL.
            unsafe { real::sigaction(libc::SIGSEGV, &dfl, std::ptr::null_mut()) };
            return true;
        }
        // The store proceeds; the page stays writable until a new range pins it.
        rt.tracker.pages.reported(page, &mut Os::new());
        return true;
    } else {
        rt.tracker.summary.other_writes += 1;
    }
    if !push_step(page, ip, false) {
        return false;
    }
    rt.tracker.pages.step_begin(page, &mut Os::new());
    set_trap(ctx, true);
    true
}

/// `SIGSYS`: an io_uring call the seccomp filter trapped ([`crate::trap`]), or the
/// program's own.
extern "C" fn on_sys(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: errno of this thread, restored before returning to the interrupted code.
    let errno = unsafe { *libc::__errno_location() };
    let handled = crate::trap::on_sys(info, ctx);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
    if !handled {
        chain(sig, info, ctx);
    }
}

extern "C" fn on_trap(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let st = STEP.with(|s| s.get());
    if st.n == 0 {
        chain(sig, info, ctx);
        return;
    }
    if ip_of(ctx) == st.ip {
        return; // a rep string instruction between two iterations: keep stepping
    }
    set_trap(ctx, false);
    STEP.with(|s| s.set(NO_STEP));
    // SAFETY: errno of this thread, restored below.
    let errno = unsafe { *libc::__errno_location() };
    if st.raw {
        for &pg in &st.pages[..st.n] {
            // SAFETY: protects again the page the runtime made writable for this store.
            unsafe { libc::mprotect(pg as *mut _, 4096, libc::PROT_READ) };
        }
    } else {
        let mut g = STATE.lock();
        if let Some(rt) = g.as_mut() {
            for &pg in &st.pages[..st.n] {
                rt.tracker.pages.step_end(pg, &mut Os::new());
            }
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Gives a signal the runtime did not cause to the program's handler, or its default.
fn chain(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let Some(i) = slot(sig) else { return };
    let act = PROGRAM.lock().map(|h| h[i]);
    let Some(act) = act else { return };
    let h = act.sa_sigaction;
    if h == libc::SIG_DFL || (h == libc::SIG_IGN && sig == libc::SIGSEGV) {
        // The default action: restore it; a fault repeats at once, a trap is raised again.
        let dfl = unsafe_zeroed();
        // SAFETY: installs SIG_DFL and re-raises to this thread.
        unsafe {
            real::sigaction(sig, &dfl, std::ptr::null_mut());
            if sig == libc::SIGTRAP || sig == libc::SIGSYS {
                libc::syscall(libc::SYS_tgkill, libc::getpid(), crate::lock::tid(), sig);
            }
        }
        return;
    }
    if h == libc::SIG_IGN {
        return;
    }
    if act.sa_flags & libc::SA_RESETHAND != 0 {
        if let Some(hs) = PROGRAM.lock().as_mut() {
            hs[i] = unsafe_zeroed();
        }
    }
    // SAFETY: the program installed this handler for this signal with these flags.
    unsafe {
        if act.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(h);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(i32) = std::mem::transmute(h);
            f(sig);
        }
    }
}
