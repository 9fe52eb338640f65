//! Seeing io_uring system calls that never pass through libc.
//!
//! liburing 2.3 (Debian's) issues `io_uring_setup`, `io_uring_enter` and
//! `io_uring_register` — and its `mmap` and `close` — with an inline `syscall`
//! instruction, so symbol interposition cannot see them. A seccomp filter installed by
//! the constructor answers `SECCOMP_RET_TRAP` for those three calls unless they come from
//! the runtime's own trampoline (`seccomp_data.instruction_pointer` inside its page): the
//! kernel then raises `SIGSYS` (`seccomp_send_sigsys` → `force_sig_seccomp`: `si_code`
//! `SYS_SECCOMP`, `si_syscall`, the registers as they were, the instruction pointer past
//! the `syscall`), and [`on_sys`] learns what the call does, makes it through the
//! trampoline, and writes the result into the interrupted context's `rax`.
//!
//! A seccomp filter outlives `execve`. The trampoline therefore lives at a fixed address
//! ([`TRAMPOLINE`]), so that the filter of a sanitized parent image still lets the child
//! image's runtime through; a probe ([`PROBE_MAGIC`], answered with [`PROBE_ERRNO`] by
//! the filter itself) tells a runtime that a filter is already there, so exec chains do
//! not stack filters. See docs/design.md §8 for what this costs and its limits.

use crate::runtime;
use std::sync::atomic::{AtomicBool, Ordering};

/// The trampoline's page: fixed, so it is the same in every image the filter outlives.
pub const TRAMPOLINE: u64 = 0x6e5a_c000_0000;
/// `args[5]` of the probe `io_uring_register(-1, …)`.
pub const PROBE_MAGIC: u32 = 0x7a5c_afe0;
/// The errno the filter answers the probe with.
pub const PROBE_ERRNO: u32 = 4000;

const SYS_SETUP: u32 = libc::SYS_io_uring_setup as u32;
const SYS_ENTER: u32 = libc::SYS_io_uring_enter as u32;
const SYS_REGISTER: u32 = libc::SYS_io_uring_register as u32;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const SECCOMP_RET_TRAP: u32 = 0x0003_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
/// `si_code` of a seccomp `SIGSYS`.
const SYS_SECCOMP: i32 = 1;

/// Whether the filter is in place (this image's or an earlier one's).
pub static TRAPPING: AtomicBool = AtomicBool::new(false);

/// The trampoline's code: `syscall(nr, a0, …, a5)` in the System V convention of libc's
/// `syscall`: rdi → rax, rsi → rdi, rdx → rsi, rcx → rdx, r8 → r10, r9 → r8, the 7th
/// argument (stack) → r9.
const CODE: [u8; 26] = [
    0x48, 0x89, 0xf8, // mov rax, rdi
    0x48, 0x89, 0xf7, // mov rdi, rsi
    0x48, 0x89, 0xd6, // mov rsi, rdx
    0x48, 0x89, 0xca, // mov rdx, rcx
    0x4d, 0x89, 0xc2, // mov r10, r8
    0x4d, 0x89, 0xc8, // mov r8, r9
    0x4c, 0x8b, 0x4c, 0x24, 0x08, // mov r9, [rsp + 8]
    0x0f, 0x05, // syscall
    0xc3, // ret
];

type Trampoline = unsafe extern "C" fn(i64, i64, i64, i64, i64, i64, i64) -> i64;

/// Makes a system call through the trampoline (the filter lets it through). Returns
/// the kernel's result: `-errno` on failure.
///
/// # Safety
/// As for the system call.
pub unsafe fn syscall(nr: i64, a: [i64; 6]) -> i64 {
    // SAFETY: the page holds CODE (mapped by `map_trampoline` before TRAPPING is set).
    let f: Trampoline = unsafe { std::mem::transmute(TRAMPOLINE as usize) };
    // SAFETY: the caller's contract.
    unsafe { f(nr, a[0], a[1], a[2], a[3], a[4], a[5]) }
}

fn map_trampoline() -> bool {
    // SAFETY: a new private mapping at a fixed address only if nothing is there
    // (MAP_FIXED_NOREPLACE), written, then made executable.
    unsafe {
        let p = libc::mmap(
            TRAMPOLINE as *mut libc::c_void,
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        );
        if p as u64 != TRAMPOLINE {
            if p != libc::MAP_FAILED {
                libc::munmap(p, 4096);
            }
            return false;
        }
        std::ptr::copy_nonoverlapping(CODE.as_ptr(), p as *mut u8, CODE.len());
        libc::mprotect(p, 4096, libc::PROT_READ | libc::PROT_EXEC) == 0
    }
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter: the three io_uring calls trap unless made from the trampoline's page; the
/// probe is answered with [`PROBE_ERRNO`]; everything else is allowed.
fn filter() -> Vec<libc::sock_filter> {
    // classic BPF opcodes (include/uapi/linux/filter.h, bpf_common.h)
    const LD: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const AND: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
    const RET: u16 = 0x06; // BPF_RET | BPF_K
                           // struct seccomp_data: nr @0, arch @4, instruction_pointer @8, args[6] @16
                           // (include/uapi/linux/seccomp.h); x86-64 is little-endian. Jumps are relative to the
                           // next instruction.
    vec![
        /* 0 */ stmt(LD, 4),
        /* 1 */ jump(JEQ, AUDIT_ARCH_X86_64, 0, 16), // other arch → 18 allow
        /* 2 */ stmt(LD, 0),
        /* 3 */ jump(JEQ, SYS_REGISTER, 0, 2), // → 4 / 6
        /* 4 */ stmt(LD, 16 + 8 * 5),
        /* 5 */ jump(JEQ, PROBE_MAGIC, 10, 0), // → 16 probe / 6
        /* 6 */ stmt(LD, 0),
        /* 7 */ jump(JEQ, SYS_SETUP, 3, 0), // → 11
        /* 8 */ jump(JEQ, SYS_ENTER, 2, 0), // → 11
        /* 9 */ jump(JEQ, SYS_REGISTER, 1, 0), // → 11
        /* 10 */ stmt(RET, SECCOMP_RET_ALLOW),
        /* 11 */ stmt(LD, 12),
        /* 12 */ jump(JEQ, (TRAMPOLINE >> 32) as u32, 0, 4), // → 13 / 17 trap
        /* 13 */ stmt(LD, 8),
        /* 14 */ stmt(AND, 0xffff_f000),
        /* 15 */ jump(JEQ, TRAMPOLINE as u32, 2, 1), // → 18 allow / 17 trap
        /* 16 */ stmt(RET, SECCOMP_RET_ERRNO | PROBE_ERRNO),
        /* 17 */ stmt(RET, SECCOMP_RET_TRAP),
        /* 18 */ stmt(RET, SECCOMP_RET_ALLOW),
    ]
}

/// Whether a filter answering the probe is already installed (an earlier image's).
fn probed() -> bool {
    // SAFETY: io_uring_register(-1, 0, NULL, 0) fails with EBADF without the filter.
    let r = unsafe {
        syscall(
            libc::SYS_io_uring_register,
            [-1, 0, 0, 0, 0, PROBE_MAGIC as i64],
        )
    };
    r == -(PROBE_ERRNO as i64)
}

/// Maps the trampoline and installs the filter (once per process image chain); returns
/// why it could not.
pub fn install() -> Result<(), &'static str> {
    if !map_trampoline() {
        return Err("the trampoline's fixed page is taken");
    }
    if probed() {
        TRAPPING.store(true, Ordering::Release);
        return Ok(());
    }
    let f = filter();
    let prog = libc::sock_fprog {
        len: f.len() as u16,
        filter: f.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl and seccomp with a filter program that lives across the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err("PR_SET_NO_NEW_PRIVS failed");
        }
        // TSYNC: threads started before the constructor (another preloaded library's)
        // get the filter too; without it if the kernel refuses (a thread with another
        // filter history).
        let set = |flags: libc::c_ulong| {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &prog as *const libc::sock_fprog,
            ) == 0
        };
        if !set(libc::SECCOMP_FILTER_FLAG_TSYNC) && !set(0) {
            return Err("seccomp(SECCOMP_SET_MODE_FILTER) failed");
        }
    }
    if !probed() {
        return Err("the installed filter does not answer its probe");
    }
    TRAPPING.store(true, Ordering::Release);
    Ok(())
}

/// The raw `_sigsys` fields of a `SIGSYS` siginfo (include/uapi/asm-generic/siginfo.h:
/// `_call_addr` at 16, `_syscall` at 24, `_arch` at 28).
fn sigsys_fields(info: *const libc::siginfo_t) -> (i32, i32) {
    // SAFETY: the kernel's siginfo: 128 bytes.
    unsafe {
        let b = info as *const u8;
        (
            (*info).si_code,
            std::ptr::read_unaligned(b.add(24) as *const i32),
        )
    }
}

/// The `SIGSYS` handler: an io_uring call the filter trapped; `false` if it is not one
/// (the caller chains the program's handler).
pub fn on_sys(info: *mut libc::siginfo_t, ctx: *mut libc::c_void) -> bool {
    let (code, nr) = sigsys_fields(info);
    if code != SYS_SECCOMP {
        return false;
    }
    let nr = nr as i64;
    if ![
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ]
    .contains(&nr)
    {
        return false;
    }
    // SAFETY: the kernel passes a ucontext_t to SA_SIGINFO handlers; the registers of
    // the trapped call (arguments in rdi, rsi, rdx, r10, r8, r9).
    let g = unsafe { &mut (*(ctx as *mut libc::ucontext_t)).uc_mcontext.gregs };
    let a = [
        g[libc::REG_RDI as usize],
        g[libc::REG_RSI as usize],
        g[libc::REG_RDX as usize],
        g[libc::REG_R10 as usize],
        g[libc::REG_R8 as usize],
        g[libc::REG_R9 as usize],
    ];
    g[libc::REG_RAX as usize] = runtime::uring_call(nr, a);
    true
}
