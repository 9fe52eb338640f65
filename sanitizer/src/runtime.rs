//! The process-wide state: the tracker behind one lock, the operating system's side of
//! [`Protect`], and what each interposed call does with what it learned.

use crate::lock::SpinLock;
use crate::maps::{self, Mapping};
use crate::pages::{page_of, Protect};
use crate::report;
use crate::tracker::{Holder, Range, Tracker};
use crate::uring::{Params, RingMap, Sqe};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use zcsafe_sanitizer_events::{Event, PrematureWrite, SendCall, Start, Writer};

/// Everything the runtime follows.
pub struct Runtime {
    /// Sockets, submissions, pages.
    pub tracker: Tracker,
    /// Premature writes already reported: (submission seq, instruction or call).
    seen: HashSet<(u64, u64)>,
    /// The io_uring rings the runtime mapped, by descriptor ([`crate::uring`]).
    pub rings: HashMap<i32, RingMap>,
    /// Ring descriptors registered with `IORING_REGISTER_RING_FDS`: offset → descriptor
    /// (`io_uring_enter` with `IORING_ENTER_REGISTERED_RING` names the offset).
    pub registered: HashMap<u32, i32>,
    /// io_uring requests that write memory, with their pages lifted until their last CQE:
    /// (ring, user_data, buffers).
    pub uring_lifts: Vec<(i32, u64, Vec<Range>)>,
}

/// The runtime's state; `None` until the constructor ran with a report file.
pub static STATE: SpinLock<Option<Runtime>> = SpinLock::new(None);

/// Whether the runtime reports (the program was started by `zcsafe sanitize`).
pub static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether the first premature write stops the program.
pub static ABORT: AtomicBool = AtomicBool::new(false);

/// Whether some page is tracked (the interposed reads skip the lock otherwise).
pub static BUSY: AtomicBool = AtomicBool::new(false);

/// How many pages a lifted system call marks eagerly (see [`crate::pages::Pages::lift`]).
const EAGER_LIFT_PAGES: u64 = 256;

/// A page this far around the calling thread's stack pointer is never protected: its
/// own calls would fault, and the kernel could not write a signal frame there.
const STACK_GUARD: u64 = 1 << 20;

/// `mprotect` and the original protections from `/proc/self/maps`, read once per call.
pub struct Os {
    maps: Option<Vec<Mapping>>,
    sp: u64,
}

impl Os {
    /// For one operation of the calling thread.
    pub fn new() -> Os {
        let here = 0u8;
        Os {
            maps: None,
            sp: &here as *const u8 as u64,
        }
    }
}

impl Default for Os {
    fn default() -> Self {
        Os::new()
    }
}

impl Protect for Os {
    fn protect(&mut self, page: u64, prot: i32) -> bool {
        // SAFETY: changes the protection of one page of this process that the tracker
        // knows is mapped; never of the runtime's own memory.
        unsafe { libc::mprotect(page as *mut libc::c_void, crate::pages::PAGE as usize, prot) == 0 }
    }

    fn original(&mut self, page: u64) -> Option<i32> {
        if page.abs_diff(page_of(self.sp)) < STACK_GUARD {
            return None;
        }
        let maps = self.maps.get_or_insert_with(maps::read);
        let m = maps::find(maps, page)?;
        (m.path != "[stack]" && !m.path.starts_with("[vdso") && !m.path.starts_with("[vvar"))
            .then_some(m.prot)
    }
}

/// Sets the runtime up (the constructor): `report` is the file to write to.
pub fn start(report_path: &std::ffi::OsStr, abort: bool) {
    if !report::open(report_path) {
        return;
    }
    ABORT.store(abort, Ordering::Relaxed);
    *STATE.lock() = Some(Runtime {
        tracker: Tracker::default(),
        seen: HashSet::new(),
        rings: HashMap::new(),
        registered: HashMap::new(),
        uring_lifts: Vec::new(),
    });
    ACTIVE.store(true, Ordering::Release);
    let exe = std::fs::read_link("/proc/self/exe")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    report::emit(&Event::Start(Start {
        version: zcsafe_sanitizer_events::CHANNEL_VERSION,
        pid: std::process::id() as i32,
        exe: exe.into(),
    }));
}

/// Runs `f` on the state, if the runtime is active.
pub fn with<R>(f: impl FnOnce(&mut Runtime) -> R) -> Option<R> {
    if !ACTIVE.load(Ordering::Acquire) {
        return None;
    }
    let mut g = STATE.lock();
    let rt = g.as_mut()?;
    let r = f(rt);
    BUSY.store(!rt.tracker.pages.is_empty(), Ordering::Relaxed);
    Some(r)
}

fn sockopt(fd: i32, level: i32, name: i32) -> Option<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `v`, a local.
    let r = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(v)
}

/// What a `MSG_ZEROCOPY` call on `fd` does to the notification counter.
enum Kind {
    /// TCP with `SO_ZEROCOPY`: tracked.
    Tcp,
    /// Zero-copy enabled on another kind of socket (UDP, …): not tracked, counted.
    Other,
    /// `SO_ZEROCOPY` off (or not a socket): the kernel copies, no id.
    Copy,
}

fn kind(fd: i32) -> Kind {
    if sockopt(fd, libc::SOL_SOCKET, libc::SO_ZEROCOPY) != Some(1) {
        return Kind::Copy;
    }
    let tcp = sockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE) == Some(libc::SOCK_STREAM)
        && sockopt(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL) == Some(libc::IPPROTO_TCP);
    if tcp {
        Kind::Tcp
    } else {
        Kind::Other
    }
}

/// A `MSG_ZEROCOPY` call returned `ret` (the caller checked the flag).
pub fn sent(fd: i32, call: SendCall, bufs: &[Range], ret: i64) {
    if !ACTIVE.load(Ordering::Acquire) || ret <= 0 {
        return;
    }
    let k = kind(fd);
    with(|rt| match k {
        Kind::Tcp => {
            rt.tracker.sent(fd, call, bufs, ret, &mut Os::new());
            rt.tracker.summary.protect_failures = rt.tracker.pages.failures;
        }
        Kind::Other => rt.tracker.summary.untracked += 1,
        Kind::Copy => {}
    });
}

/// The program read its error queue: each zero-copy notification releases its ids.
///
/// # Safety
/// `msg` is the `msghdr` the kernel just filled (`recvmsg` returned ≥ 0).
pub unsafe fn errqueue(fd: i32, msg: *const libc::msghdr) {
    let mut notes = Vec::new();
    // SAFETY: the kernel wrote a valid control buffer of msg_controllen bytes.
    unsafe {
        let mut cm = libc::CMSG_FIRSTHDR(msg);
        while !cm.is_null() {
            let (level, ty) = ((*cm).cmsg_level, (*cm).cmsg_type);
            let recverr = (level == libc::SOL_IP && ty == libc::IP_RECVERR)
                || (level == libc::SOL_IPV6 && ty == libc::IPV6_RECVERR);
            if recverr {
                let ee = libc::CMSG_DATA(cm) as *const libc::sock_extended_err;
                let ee = std::ptr::read_unaligned(ee);
                if ee.ee_origin == SO_EE_ORIGIN_ZEROCOPY && ee.ee_errno == 0 {
                    notes.push((ee.ee_info, ee.ee_data));
                }
            }
            cm = libc::CMSG_NXTHDR(msg, cm);
        }
    }
    if notes.is_empty() {
        return;
    }
    with(|rt| {
        for (lo, hi) in notes {
            rt.tracker.notified(fd, lo, hi, &mut Os::new());
        }
    });
}

/// The program closed `fd`.
pub fn closed(fd: i32) {
    with(|rt| {
        rt.tracker.closed(fd, &mut Os::new());
        if rt.rings.contains_key(&fd) {
            rt.ring_closed(fd);
        }
    });
}

impl Runtime {
    /// Reads every CQE the kernel posted since the last look, in every ring, and applies
    /// it: NOTIFs release their requests (the program may reap with no system call, so
    /// this runs at each `io_uring_enter` and before a fault is judged).
    pub fn look_rings(&mut self) {
        for (&fd, m) in self.rings.iter_mut() {
            let (cqes, lost) = m.new_cqes();
            if lost > 0 {
                // overwritten before the runtime saw them: any could have been a NOTIF
                self.tracker.uring_forget(fd, &mut Os::new());
                self.tracker.rings.entry(fd).or_default();
            }
            for c in cqes {
                self.tracker.uring_cqe(fd, c, &mut Os::new());
                if c.flags & crate::uring::CQE_F_MORE == 0 {
                    let done = self
                        .uring_lifts
                        .iter()
                        .position(|(r, ud, _)| *r == fd && *ud == c.user_data);
                    if let Some(i) = done {
                        let (_, _, bufs) = self.uring_lifts.remove(i);
                        unlift_all(&mut self.tracker, &bufs);
                    }
                }
            }
        }
        BUSY.store(!self.tracker.pages.is_empty(), Ordering::Relaxed);
    }

    /// The ring `fd` was closed: a last look at its CQEs, then its requests are released
    /// and the runtime's own mappings go (they would keep the ring alive).
    pub fn ring_closed(&mut self, fd: i32) {
        if let Some(mut m) = self.rings.remove(&fd) {
            let (cqes, _) = m.new_cqes();
            for c in cqes {
                self.tracker.uring_cqe(fd, c, &mut Os::new());
            }
        }
        self.tracker.uring_closed(fd, &mut Os::new());
        self.uring_lifts.retain(|(r, _, _)| *r != fd);
        self.registered.retain(|_, r| *r != fd);
    }

    /// Rings closed without the runtime seeing it (a raw `close`): their descriptor no
    /// longer names the ring file.
    fn sweep_closed_rings(&mut self) {
        let gone: Vec<i32> = self
            .rings
            .iter()
            .filter(|(fd, m)| !m.still_open(**fd))
            .map(|(fd, _)| *fd)
            .collect();
        for fd in gone {
            self.ring_closed(fd);
        }
    }

    /// Counts a premature write and says whether it is the first of its kind (to be
    /// reported).
    pub fn premature(&mut self, h: &Holder, key: u64) -> bool {
        self.tracker.summary.premature_writes += 1;
        self.seen.insert((h.sub.seq, key))
    }
}

/// The event of a premature write.
pub fn premature_event<'a>(h: &Holder, writer: Writer<'a>) -> Event<'a> {
    Event::PrematureWrite(PrematureWrite {
        pid: std::process::id() as i32,
        tid: crate::lock::tid(),
        writer,
        addr: h.addr,
        submission: h.sub,
        range_start: h.range.start,
        range_len: h.range.len,
        notified_through: h.notified_through,
        notifications_read: h.notifications_read,
        abort: ABORT.load(Ordering::Relaxed),
    })
}

/// Runs a system call that writes `bufs`, with their pages writable for its duration;
/// `written` says which bytes it wrote (from its result), and a write into an in-flight
/// range is reported as the kernel's, on behalf of `call`.
pub fn lifted<R: Copy>(
    call: &'static str,
    bufs: &[Range],
    f: impl FnOnce() -> R,
    written: impl FnOnce(R) -> Vec<Range>,
) -> R {
    if !BUSY.load(Ordering::Relaxed) {
        return f();
    }
    let bufs: Vec<Range> = bufs.iter().copied().filter(|b| b.len > 0).collect();
    with(|rt| {
        for b in &bufs {
            rt.tracker
                .pages
                .lift(b.start, b.len, EAGER_LIFT_PAGES, &mut Os::new());
        }
        rt.tracker.summary.syscall_lifts += 1;
    });
    let r = f();
    // SAFETY: __errno_location is the calling thread's errno.
    let errno = unsafe { *libc::__errno_location() };
    let wrote = written(r);
    let mut abort = false;
    with(|rt| {
        for b in &bufs {
            rt.tracker
                .pages
                .unlift(b.start, b.len, EAGER_LIFT_PAGES, &mut Os::new());
        }
        for w in &wrote {
            if let Some(h) = rt.tracker.holder(*w) {
                let key = u64::MAX - call.len() as u64 - call.as_bytes()[0] as u64;
                if rt.premature(&h, key) {
                    report::emit(&premature_event(&h, Writer::Syscall { call: call.into() }));
                }
                abort |= ABORT.load(Ordering::Relaxed);
            }
        }
    });
    if abort {
        std::process::abort();
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
    r
}

/// The summary line (at exit).
pub fn summary() {
    let s = with(|rt| {
        let mut s = rt.tracker.summary;
        s.pid = std::process::id() as i32;
        s.in_flight_at_exit = rt.tracker.in_flight();
        s.protect_failures = rt.tracker.pages.failures;
        s
    });
    if let Some(s) = s {
        report::emit(&Event::Summary(s));
    }
}

/// In a forked child: forget what the parent had in flight and make its pages writable.
pub fn forked_child() {
    if let Some(rt) = STATE.lock().as_mut() {
        rt.tracker.forget_all(&mut Os::new());
        rt.seen.clear();
        rt.uring_lifts.clear();
    }
    BUSY.store(false, Ordering::Relaxed);
}

/// `SO_EE_ORIGIN_ZEROCOPY` (include/uapi/linux/errqueue.h).
const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;

/// `IORING_ENTER_REGISTERED_RING`.
const ENTER_REGISTERED_RING: u32 = 1 << 4;
/// `IORING_REGISTER_RING_FDS`, `IORING_UNREGISTER_RING_FDS`.
const REGISTER_RING_FDS: i64 = 20;
const UNREGISTER_RING_FDS: i64 = 21;

/// An io_uring system call the seccomp filter trapped ([`crate::trap`]): made through
/// the trampoline, with what the runtime learns before and after. Returns the kernel's
/// result (`-errno`).
pub fn uring_call(nr: i64, a: [i64; 6]) -> i64 {
    /// The program's own call, with its arguments.
    fn pass(nr: i64, a: [i64; 6]) -> i64 {
        // SAFETY: the call the program made, as it made it.
        unsafe { crate::trap::syscall(nr, a) }
    }
    if !ACTIVE.load(Ordering::Acquire) || STATE.held_by_me() {
        return pass(nr, a);
    }
    match nr {
        libc::SYS_io_uring_setup => {
            let r = pass(nr, a);
            if r >= 0 && a[1] != 0 {
                // SAFETY: the kernel just wrote the params there (copy_to_user succeeded).
                let p = unsafe { std::ptr::read_unaligned(a[1] as *const Params) };
                uring_setup(r as i32, &p);
            }
            r
        }
        libc::SYS_io_uring_enter => uring_enter(a),
        libc::SYS_io_uring_register => {
            let r = pass(nr, a);
            if r > 0 && (a[1] == REGISTER_RING_FDS || a[1] == UNREGISTER_RING_FDS) {
                uring_ring_fds(a[1] == REGISTER_RING_FDS, a[2] as u64, r as u64);
            }
            r
        }
        _ => pass(nr, a),
    }
}

fn uring_setup(fd: i32, p: &Params) {
    with(|rt| {
        // rings closed meanwhile, among them any whose number this new ring got
        rt.sweep_closed_rings();
        if rt.rings.remove(&fd).is_some() {
            rt.tracker.uring_forget(fd, &mut Os::new());
        }
        match RingMap::new(fd, p) {
            Ok(m) => {
                rt.rings.insert(fd, m);
                rt.tracker.rings.entry(fd).or_default();
                rt.tracker.summary.uring_rings += 1;
            }
            Err(_) => rt.tracker.summary.uring_untracked += 1,
        }
    });
}

fn lift_all(t: &mut Tracker, bufs: &[Range]) {
    for b in bufs {
        t.pages
            .lift(b.start, b.len, EAGER_LIFT_PAGES, &mut Os::new());
    }
    t.summary.syscall_lifts += 1;
}

fn unlift_all(t: &mut Tracker, bufs: &[Range]) {
    for b in bufs {
        t.pages
            .unlift(b.start, b.len, EAGER_LIFT_PAGES, &mut Os::new());
    }
}

fn uring_enter(a: [i64; 6]) -> i64 {
    let (fd, to_submit, flags) = (a[0] as i32, a[1] as u32, a[3] as u32);
    let pre = with(|rt| {
        rt.tracker.summary.uring_enters += 1;
        rt.look_rings();
        let ring = if flags & ENTER_REGISTERED_RING != 0 {
            *rt.registered.get(&(fd as u32))?
        } else {
            fd
        };
        let m = rt.rings.get(&ring)?;
        let (head, sqes) = m.pending(to_submit);
        // the kernel may write from inside this call: lift first
        for (_, s) in &sqes {
            if let Sqe::Writes { bufs, .. } = s {
                lift_all(&mut rt.tracker, bufs);
            }
        }
        Some((ring, (head, sqes)))
    })
    .flatten();
    // SAFETY: the program's call.
    let r = unsafe { crate::trap::syscall(libc::SYS_io_uring_enter, a) };
    with(|rt| {
        if let Some((ring, (head, sqes))) = pre {
            if let Some(m) = rt.rings.get(&ring) {
                // the SQEs the kernel consumed: its head moved past them
                let consumed = m.sq_head().wrapping_sub(head);
                for (i, s) in sqes {
                    match s {
                        Sqe::Zc(z) if i < consumed => {
                            rt.tracker.uring_submitted(ring, &z, &mut Os::new());
                        }
                        Sqe::Zc(_) => {}
                        // consumed: lifted until its last CQE
                        Sqe::Writes { user_data, bufs } if i < consumed => {
                            rt.uring_lifts.push((ring, user_data, bufs));
                        }
                        Sqe::Writes { bufs, .. } => unlift_all(&mut rt.tracker, &bufs),
                    }
                }
            }
        }
        rt.look_rings();
    });
    r
}

/// `IORING_(UN)REGISTER_RING_FDS` registered `n` entries of `struct io_uring_rsrc_update`
/// (`offset` u32, `resv` u32, `data` u64: the descriptor) at `arg`.
fn uring_ring_fds(register: bool, arg: u64, n: u64) {
    let mut ups = Vec::new();
    for i in 0..n.min(16) {
        let mut b = [0u8; 16];
        if crate::uring::read_mem(arg + 16 * i, &mut b) {
            let off = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            let data = u64::from_ne_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
            ups.push((off, data as i32));
        }
    }
    with(|rt| {
        for (off, fd) in ups {
            if register {
                rt.registered.insert(off, fd);
            } else {
                rt.registered.remove(&off);
            }
        }
    });
}
