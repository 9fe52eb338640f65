//! io_uring zero-copy requests: the rings the program set up, the `IORING_OP_SEND_ZC` and
//! `IORING_OP_SENDMSG_ZC` SQEs the kernel consumed, and the NOTIF CQEs that release them.
//!
//! The kernel learns a request from the submission queue during `io_uring_enter`
//! (`io_submit_sqes` → `io_get_sqe` reads `sq_array[head & mask]`, then advances the head
//! in `io_commit_sqring`); a zero-copy send posts its completion CQE with
//! `IORING_CQE_F_MORE` (`io_send_zc`, `io_sendmsg_zc`) and, once the last skb let go of
//! the pages, a second CQE with `IORING_CQE_F_NOTIF` and the same `user_data`
//! (`io_notif_complete_tw_ext` → `io_req_task_complete`). A completion CQE without
//! `F_MORE` means no NOTIF follows (the request failed before it held anything).
//!
//! The runtime maps the rings itself from the `io_uring_params` that `io_uring_setup`
//! returned ([`RingMap`]): its own shared mappings of the same pages, so it never needs
//! to see the program's `mmap` (liburing 2.3 maps with a raw `syscall` instruction).
//! The CQ ring is shared memory that a program may reap without any system call
//! (`io_uring_peek_cqe`), so the runtime keeps its own cursor and reads every CQE the
//! kernel posted since its last look: at each `io_uring_enter` and at each fault.
//! A NOTIF the kernel posted releases its request whether or not the program has
//! advanced its CQ head past it (it may be handling it right now, before
//! `io_uring_cqe_seen`); see docs/design.md §8.

use crate::pages::Protect;
use crate::tracker::{prefix, Range, Tracker};
use std::sync::atomic::{AtomicU32, Ordering};
use zcsafe_sanitizer_events::{SendCall, Submission};

/// `IORING_OP_SEND_ZC` (include/uapi/linux/io_uring.h).
pub const OP_SEND_ZC: u8 = 47;
/// The operations that write user memory the SQE names: `IORING_OP_READV`, `READ_FIXED`,
/// `RECVMSG`, `READ`, `RECV`.
const OP_READV: u8 = 1;
const OP_READ_FIXED: u8 = 4;
const OP_RECVMSG: u8 = 10;
const OP_READ: u8 = 22;
const OP_RECV: u8 = 27;
/// `IORING_OP_SENDMSG_ZC`.
pub const OP_SENDMSG_ZC: u8 = 48;
/// `IORING_CQE_F_MORE`.
pub const CQE_F_MORE: u32 = 1 << 1;
/// `IORING_CQE_F_NOTIF`.
pub const CQE_F_NOTIF: u32 = 1 << 3;
const SETUP_SQPOLL: u32 = 1 << 1;
const SETUP_SQE128: u32 = 1 << 10;
const SETUP_CQE32: u32 = 1 << 11;
const SETUP_NO_MMAP: u32 = 1 << 14;
const SETUP_NO_SQARRAY: u32 = 1 << 16;
const FEAT_SINGLE_MMAP: u32 = 1 << 0;
const OFF_SQ_RING: i64 = 0;
const OFF_CQ_RING: i64 = 0x800_0000;
const OFF_SQES: i64 = 0x1000_0000;

/// `struct io_sqring_offsets`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    user_addr: u64,
}

/// `struct io_cqring_offsets`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    user_addr: u64,
}

/// `struct io_uring_params`, as `io_uring_setup` fills it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Params {
    /// SQ ring size.
    pub sq_entries: u32,
    /// CQ ring size.
    pub cq_entries: u32,
    /// `IORING_SETUP_*`.
    pub flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    /// `IORING_FEAT_*`.
    pub features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqOffsets,
    cq_off: CqOffsets,
}

/// A zero-copy request in flight on a ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// What the kernel was handed (`user_data` set).
    pub sub: Submission,
    /// The bytes it holds.
    pub ranges: Vec<Range>,
    /// Its completion CQE (the one with `F_MORE`) was seen.
    pub completed: bool,
}

/// One ring's in-flight requests (the tracker's side, no memory).
#[derive(Clone, Debug, Default)]
pub struct UringRing {
    /// In submission order.
    pub in_flight: Vec<Request>,
    /// NOTIF CQEs seen.
    pub notifs: u64,
    /// Requests tracked (the next request number).
    pub requests: u32,
}

/// A zero-copy SQE the kernel is about to consume (read before `io_uring_enter`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZcSqe {
    /// SEND_ZC or SENDMSG_ZC.
    pub call: SendCall,
    /// The SQE's `fd`.
    pub fd: i32,
    /// Its `user_data`.
    pub user_data: u64,
    /// Its buffers (for SENDMSG_ZC, the message's iovecs).
    pub bufs: Vec<Range>,
}

/// An SQE the runtime acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sqe {
    /// A zero-copy send: tracked until its NOTIF.
    Zc(ZcSqe),
    /// An operation that writes the program's memory (`READ`, `RECV`, …): the kernel
    /// writes from `io_uring_enter` or later, from its own context, and a protected page
    /// would make it fail with `EFAULT`; its pages are lifted until its last CQE.
    Writes {
        /// Its `user_data`.
        user_data: u64,
        /// What it may write.
        bufs: Vec<Range>,
    },
}

/// A CQE as the runtime reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cqe {
    /// `user_data`.
    pub user_data: u64,
    /// `res`.
    pub res: i32,
    /// `flags`.
    pub flags: u32,
}

impl Tracker {
    /// The kernel consumed a zero-copy SQE from the ring `ring`: its bytes are held.
    pub fn uring_submitted(&mut self, ring: i32, sqe: &ZcSqe, p: &mut impl Protect) -> Submission {
        let seq = self.next_seq();
        let r = self.rings.entry(ring).or_default();
        let sub = Submission {
            call: sqe.call,
            fd: sqe.fd,
            zc_id: r.requests,
            user_data: Some(sqe.user_data),
            seq,
        };
        r.requests = r.requests.wrapping_add(1);
        let ranges: Vec<Range> = sqe.bufs.iter().copied().filter(|b| b.len > 0).collect();
        for b in &ranges {
            self.pages.pin(b.start, b.len, p);
        }
        r.in_flight.push(Request {
            sub,
            ranges,
            completed: false,
        });
        self.summary.tracked += 1;
        sub
    }

    /// A CQE of `ring`: a NOTIF releases the oldest request with its `user_data`; a
    /// completion trims the request to the bytes it sent and, without `F_MORE`, releases
    /// it (no NOTIF follows).
    pub fn uring_cqe(&mut self, ring: i32, c: Cqe, p: &mut impl Protect) {
        let Some(r) = self.rings.get_mut(&ring) else {
            return;
        };
        let notif = c.flags & CQE_F_NOTIF != 0;
        if notif {
            r.notifs += 1;
            self.summary.notifications += 1;
        }
        let pos = r
            .in_flight
            .iter()
            .position(|q| q.sub.user_data == Some(c.user_data) && (notif || !q.completed));
        let Some(i) = pos else {
            return;
        };
        let release = notif || c.flags & CQE_F_MORE == 0;
        let q = &mut r.in_flight[i];
        if !notif {
            q.completed = true;
            let kept: Vec<Range> = prefix(&q.ranges, c.res.max(0) as i64)
                .into_iter()
                .filter(|b| b.len > 0)
                .collect();
            if kept != q.ranges {
                // pin what stays before unpinning what was: a page both touch stays protected
                for b in &kept {
                    self.pages.pin(b.start, b.len, p);
                }
                for b in &q.ranges {
                    self.pages.unpin(b.start, b.len, p);
                }
            }
            q.ranges = kept;
        }
        if release {
            let q = r.in_flight.remove(i);
            for b in &q.ranges {
                self.pages.unpin(b.start, b.len, p);
            }
            self.summary.released += 1;
        }
    }

    /// Every request of `ring` is released without its NOTIF (CQEs lost, or the ring's
    /// descriptor reused for a new ring).
    pub fn uring_forget(&mut self, ring: i32, p: &mut impl Protect) {
        let n = self.uring_drop(ring, p);
        self.summary.uring_released_unseen += n;
    }

    /// The program closed the ring: its NOTIFs can no longer be reaped, so its requests
    /// are released (counted apart, as for a closed socket).
    pub fn uring_closed(&mut self, ring: i32, p: &mut impl Protect) {
        let n = self.uring_drop(ring, p);
        self.summary.released_by_close += n;
    }

    fn uring_drop(&mut self, ring: i32, p: &mut impl Protect) -> u64 {
        let Some(r) = self.rings.remove(&ring) else {
            return 0;
        };
        for q in &r.in_flight {
            for b in &q.ranges {
                self.pages.unpin(b.start, b.len, p);
            }
        }
        r.in_flight.len() as u64
    }
}

/// Reads `len` bytes at `addr` of this process without faulting (`process_vm_readv`: an
/// address the program got wrong is an `EFAULT` here, as it is for the kernel).
pub fn read_mem(addr: u64, out: &mut [u8]) -> bool {
    let local = libc::iovec {
        iov_base: out.as_mut_ptr().cast(),
        iov_len: out.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: out.len(),
    };
    // SAFETY: writes at most out.len() bytes into `out`; reads this process's memory.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    n == out.len() as isize
}

fn read_u64(addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    read_mem(addr, &mut b).then(|| u64::from_ne_bytes(b))
}

/// The buffers of the `msghdr` at `msg` (SENDMSG_ZC's `addr`), read as the kernel will
/// (`io_sendmsg_copy_hdr`).
fn msghdr_bufs(msg: u64) -> Vec<Range> {
    let (Some(iov), Some(n)) = (read_u64(msg + 16), read_u64(msg + 24)) else {
        return Vec::new();
    };
    iovec_bufs(iov, n)
}

/// The buffers of `n` iovecs at `iov`.
fn iovec_bufs(iov: u64, n: u64) -> Vec<Range> {
    const IOV_MAX: u64 = 1024;
    (0..n.min(IOV_MAX))
        .filter_map(|i| {
            let base = read_u64(iov + 16 * i)?;
            let len = read_u64(iov + 16 * i + 8)?;
            Some(Range { start: base, len })
        })
        .collect()
}

/// What an SQE means to the runtime, if anything.
///
/// # Safety
/// `sqe` points to 64 readable bytes.
pub unsafe fn sqe(sqe: *const u8) -> Option<Sqe> {
    // SAFETY: the caller's contract.
    if let Some(z) = unsafe { zc_sqe(sqe) } {
        return Some(Sqe::Zc(z));
    }
    // SAFETY: the caller's contract; the fields of `struct io_uring_sqe`.
    let (op, addr, len, user_data) = unsafe {
        (
            *sqe,
            std::ptr::read_unaligned(sqe.add(16) as *const u64),
            std::ptr::read_unaligned(sqe.add(24) as *const u32),
            std::ptr::read_unaligned(sqe.add(32) as *const u64),
        )
    };
    let bufs = match op {
        OP_READ | OP_READ_FIXED | OP_RECV => vec![Range {
            start: addr,
            len: len as u64,
        }],
        OP_READV => iovec_bufs(addr, len as u64),
        OP_RECVMSG => {
            let mut b = msghdr_bufs(addr);
            // the kernel writes msg_namelen, msg_controllen and msg_flags back too
            b.push(Range {
                start: addr,
                len: std::mem::size_of::<libc::msghdr>() as u64,
            });
            if let (Some(name), Some(control), Some(clen)) =
                (read_u64(addr), read_u64(addr + 32), read_u64(addr + 40))
            {
                b.push(Range {
                    start: name,
                    len: 128,
                });
                b.push(Range {
                    start: control,
                    len: clen,
                });
            }
            b
        }
        _ => return None,
    };
    let bufs = bufs
        .into_iter()
        .filter(|b| b.start != 0 && b.len > 0)
        .collect::<Vec<_>>();
    (!bufs.is_empty()).then_some(Sqe::Writes { user_data, bufs })
}

/// The zero-copy request an SQE describes, if it is one.
///
/// # Safety
/// `sqe` points to 64 readable bytes.
pub unsafe fn zc_sqe(sqe: *const u8) -> Option<ZcSqe> {
    // SAFETY: the caller's contract; the fields of `struct io_uring_sqe`.
    let (op, fd, addr, len, user_data) = unsafe {
        (
            *sqe,
            std::ptr::read_unaligned(sqe.add(4) as *const i32),
            std::ptr::read_unaligned(sqe.add(16) as *const u64),
            std::ptr::read_unaligned(sqe.add(24) as *const u32),
            std::ptr::read_unaligned(sqe.add(32) as *const u64),
        )
    };
    let (call, bufs) = match op {
        // IORING_RECVSEND_FIXED_BUF changes nothing here: `addr` is still the user
        // address inside the registered buffer (`io_import_fixed`).
        OP_SEND_ZC => (
            SendCall::UringSendZc,
            vec![Range {
                start: addr,
                len: len as u64,
            }],
        ),
        OP_SENDMSG_ZC => (SendCall::UringSendmsgZc, msghdr_bufs(addr)),
        _ => return None,
    };
    Some(ZcSqe {
        call,
        fd,
        user_data,
        bufs,
    })
}

/// The runtime's own mappings of one ring.
#[derive(Debug)]
pub struct RingMap {
    maps: Vec<(u64, usize)>,
    sq_head: u64,
    sq_tail: u64,
    sq_mask: u32,
    sq_entries: u32,
    sq_array: Option<u64>,
    sqes: u64,
    sqe_size: u64,
    cq_tail: u64,
    cq_mask: u32,
    cq_entries: u32,
    cqes: u64,
    cqe_size: u64,
    /// The next CQ position the runtime has not read.
    cursor: u32,
    /// The ring file's inode: tells the ring from another file that got its descriptor
    /// number after a close the runtime did not see (liburing closes with a raw syscall).
    ino: u64,
}

/// The inode of the file `fd` names, if it is open.
pub fn inode(fd: i32) -> Option<u64> {
    // SAFETY: fstat writes a stat into `st`, a local.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some(st.st_ino)
    }
}

fn map(fd: i32, len: usize, off: i64) -> Option<u64> {
    // SAFETY: a new shared read-only mapping of the ring; nothing is overwritten.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            off,
        )
    };
    (p != libc::MAP_FAILED).then_some(p as u64)
}

/// Why a ring is not followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unfollowed {
    /// `IORING_SETUP_SQPOLL`: a kernel thread consumes SQEs without `io_uring_enter`.
    SqPoll,
    /// `IORING_SETUP_NO_MMAP`: the program's own memory (not handled yet).
    NoMmap,
    /// `mmap` of the ring failed.
    Map,
}

impl RingMap {
    /// Maps the ring `fd` as `io_uring_setup` described it in `p`.
    pub fn new(fd: i32, p: &Params) -> Result<RingMap, Unfollowed> {
        if p.flags & SETUP_SQPOLL != 0 {
            return Err(Unfollowed::SqPoll);
        }
        if p.flags & SETUP_NO_MMAP != 0 {
            return Err(Unfollowed::NoMmap);
        }
        let no_array = p.flags & SETUP_NO_SQARRAY != 0;
        let sq_len = if no_array {
            p.sq_off.dropped as usize + 4
        } else {
            p.sq_off.array as usize + 4 * p.sq_entries as usize
        };
        let cqe_size: u64 = if p.flags & SETUP_CQE32 != 0 { 32 } else { 16 };
        let cq_len = p.cq_off.cqes as usize + cqe_size as usize * p.cq_entries as usize;
        let sqe_size: u64 = if p.flags & SETUP_SQE128 != 0 { 128 } else { 64 };
        let mut maps = Vec::new();
        let mut get = |len: usize, off: i64| -> Result<u64, Unfollowed> {
            let a = map(fd, len, off).ok_or(Unfollowed::Map)?;
            maps.push((a, len));
            Ok(a)
        };
        let result = (|| {
            let (sq, cq) = if p.features & FEAT_SINGLE_MMAP != 0 {
                let a = get(sq_len.max(cq_len), OFF_SQ_RING)?;
                (a, a)
            } else {
                (get(sq_len, OFF_SQ_RING)?, get(cq_len, OFF_CQ_RING)?)
            };
            let sqes = get(sqe_size as usize * p.sq_entries as usize, OFF_SQES)?;
            Ok((sq, cq, sqes))
        })();
        let (sq, cq, sqes) = match result {
            Ok(v) => v,
            Err(e) => {
                unmap(&maps);
                return Err(e);
            }
        };
        // SAFETY: cq + cq_off.tail lies in the CQ ring mapping (the kernel's layout).
        let tail =
            unsafe { (*((cq + p.cq_off.tail as u64) as *const AtomicU32)).load(Ordering::Acquire) };
        Ok(RingMap {
            maps,
            sq_head: sq + p.sq_off.head as u64,
            sq_tail: sq + p.sq_off.tail as u64,
            sq_mask: p.sq_entries.wrapping_sub(1),
            sq_entries: p.sq_entries,
            sq_array: (!no_array).then(|| sq + p.sq_off.array as u64),
            sqes,
            sqe_size,
            cq_tail: cq + p.cq_off.tail as u64,
            cq_mask: p.cq_entries.wrapping_sub(1),
            cq_entries: p.cq_entries,
            cqes: cq + p.cq_off.cqes as u64,
            cqe_size,
            cursor: tail,
            ino: inode(fd).unwrap_or(0),
        })
    }

    fn load(addr: u64) -> u32 {
        // SAFETY: addr is a head or tail word inside this ring's mapping.
        unsafe { (*(addr as *const AtomicU32)).load(Ordering::Acquire) }
    }

    /// Whether `fd` still names this ring.
    pub fn still_open(&self, fd: i32) -> bool {
        inode(fd) == Some(self.ino)
    }

    /// The kernel's SQ head now.
    pub fn sq_head(&self) -> u32 {
        Self::load(self.sq_head)
    }

    /// The SQEs the runtime acts on among the next `to_submit` the kernel would consume,
    /// each with its position past the current head.
    pub fn pending(&self, to_submit: u32) -> (u32, Vec<(u32, Sqe)>) {
        let head = self.sq_head();
        let tail = Self::load(self.sq_tail);
        let n = tail.wrapping_sub(head).min(to_submit).min(self.sq_entries);
        let mut out = Vec::new();
        for i in 0..n {
            let pos = head.wrapping_add(i) & self.sq_mask;
            let idx = match self.sq_array {
                // SAFETY: the array has sq_entries u32 slots.
                Some(a) => unsafe { *((a + 4 * pos as u64) as *const u32) },
                None => pos,
            };
            if idx >= self.sq_entries {
                continue; // the kernel drops it too (`io_get_sqe`)
            }
            let sqe = (self.sqes + idx as u64 * self.sqe_size) as *const u8;
            if let Some(s) =
                // SAFETY: idx < sq_entries: inside the SQE array.
                unsafe { self::sqe(sqe) }
            {
                out.push((i, s));
            }
        }
        (head, out)
    }

    /// Every CQE posted since the last look, and how many were overwritten before it.
    pub fn new_cqes(&mut self) -> (Vec<Cqe>, u32) {
        let tail = Self::load(self.cq_tail);
        let mut n = tail.wrapping_sub(self.cursor);
        let mut lost = 0;
        if n > self.cq_entries {
            lost = n - self.cq_entries;
            n = self.cq_entries;
        }
        let first = tail.wrapping_sub(n);
        let out = (0..n)
            .map(|i| {
                let pos = first.wrapping_add(i) & self.cq_mask;
                let c = (self.cqes + pos as u64 * self.cqe_size) as *const u8;
                // SAFETY: pos < cq_entries: a CQE of this ring's array.
                unsafe {
                    Cqe {
                        user_data: std::ptr::read_volatile(c as *const u64),
                        res: std::ptr::read_volatile(c.add(8) as *const i32),
                        flags: std::ptr::read_volatile(c.add(12) as *const u32),
                    }
                }
            })
            .collect();
        self.cursor = tail;
        (out, lost)
    }
}

fn unmap(maps: &[(u64, usize)]) {
    for &(a, len) in maps {
        // SAFETY: a mapping this module made.
        unsafe { libc::munmap(a as *mut libc::c_void, len) };
    }
}

impl Drop for RingMap {
    fn drop(&mut self) {
        unmap(&self.maps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::tests::Recorder;

    fn sqe(user_data: u64, start: u64, len: u64) -> ZcSqe {
        ZcSqe {
            call: SendCall::UringSendZc,
            fd: 5,
            user_data,
            bufs: vec![Range { start, len }],
        }
    }

    fn cqe(user_data: u64, res: i32, flags: u32) -> Cqe {
        Cqe {
            user_data,
            res,
            flags,
        }
    }

    #[test]
    fn a_request_is_held_past_its_completion_until_its_notif() {
        let (mut t, mut p) = (Tracker::default(), Recorder::default());
        let s = t.uring_submitted(9, &sqe(7, 0x10000, 8192), &mut p);
        assert_eq!((s.zc_id, s.user_data), (0, Some(7)));
        t.uring_cqe(9, cqe(7, 8192, CQE_F_MORE), &mut p);
        assert!(t.holds(0x10000) && t.holds(0x11fff));
        // another request's NOTIF releases nothing of this one
        t.uring_cqe(9, cqe(8, 0, CQE_F_NOTIF), &mut p);
        assert!(t.holds(0x10000));
        t.uring_cqe(9, cqe(7, 0, CQE_F_NOTIF), &mut p);
        assert!(!t.holds(0x10000) && t.pages.is_empty());
        assert_eq!(
            (t.summary.tracked, t.summary.released, t.rings[&9].notifs),
            (1, 1, 2)
        );
    }

    #[test]
    fn a_short_completion_trims_and_one_without_more_releases() {
        let (mut t, mut p) = (Tracker::default(), Recorder::default());
        t.uring_submitted(9, &sqe(1, 0x10000, 3 * 4096), &mut p);
        t.uring_cqe(9, cqe(1, 4096, CQE_F_MORE), &mut p);
        assert!(t.holds(0x10fff) && !t.holds(0x11000));
        assert!(t.pages.get(0x11000).is_none());
        // a failed request: no F_MORE, no NOTIF will come
        t.uring_submitted(9, &sqe(2, 0x20000, 10), &mut p);
        t.uring_cqe(9, cqe(2, -22, 0), &mut p);
        assert!(!t.holds(0x20000));
        assert_eq!(t.summary.released, 1);
    }

    #[test]
    fn requests_sharing_a_user_data_are_released_oldest_first() {
        let (mut t, mut p) = (Tracker::default(), Recorder::default());
        t.uring_submitted(9, &sqe(3, 0x10000, 10), &mut p);
        t.uring_submitted(9, &sqe(3, 0x20000, 10), &mut p);
        t.uring_cqe(9, cqe(3, 10, CQE_F_MORE), &mut p);
        t.uring_cqe(9, cqe(3, 10, CQE_F_MORE), &mut p);
        assert!(t.rings[&9].in_flight.iter().all(|q| q.completed));
        t.uring_cqe(9, cqe(3, 0, CQE_F_NOTIF), &mut p);
        assert!(!t.holds(0x10000) && t.holds(0x20000));
        let h = t
            .holder(Range {
                start: 0x20004,
                len: 1,
            })
            .unwrap();
        assert_eq!(
            (h.sub.zc_id, h.notifications_read, h.notified_through),
            (1, 1, None)
        );
        t.uring_forget(9, &mut p);
        assert!(t.pages.is_empty());
        assert_eq!(t.summary.uring_released_unseen, 1);
        // a closed ring's requests are released, counted as by close
        t.uring_submitted(4, &sqe(1, 0x30000, 10), &mut p);
        t.uring_closed(4, &mut p);
        assert!(t.pages.is_empty() && !t.rings.contains_key(&4));
        assert_eq!(
            (t.summary.released_by_close, t.summary.uring_released_unseen),
            (1, 1)
        );
    }

    #[test]
    fn sqes_are_read_as_the_kernel_lays_them_out() {
        let mut raw = [0u8; 64];
        raw[0] = OP_SEND_ZC;
        raw[4..8].copy_from_slice(&6i32.to_ne_bytes());
        raw[16..24].copy_from_slice(&0x1234u64.to_ne_bytes());
        raw[24..28].copy_from_slice(&100u32.to_ne_bytes());
        raw[32..40].copy_from_slice(&0xabcdu64.to_ne_bytes());
        // SAFETY: 64 bytes.
        let s = unsafe { zc_sqe(raw.as_ptr()) }.unwrap();
        assert_eq!(
            s,
            ZcSqe {
                call: SendCall::UringSendZc,
                fd: 6,
                user_data: 0xabcd,
                bufs: vec![Range {
                    start: 0x1234,
                    len: 100
                }]
            }
        );
        // SENDMSG_ZC: the msghdr's iovecs, read from this process's memory
        let a = [1u8; 10];
        let b = [2u8; 20];
        let iov = [
            libc::iovec {
                iov_base: a.as_ptr() as *mut _,
                iov_len: 10,
            },
            libc::iovec {
                iov_base: b.as_ptr() as *mut _,
                iov_len: 20,
            },
        ];
        // SAFETY: plain data.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut _;
        msg.msg_iovlen = 2;
        raw[0] = OP_SENDMSG_ZC;
        raw[16..24].copy_from_slice(&(&msg as *const _ as u64).to_ne_bytes());
        // SAFETY: 64 bytes.
        let s = unsafe { zc_sqe(raw.as_ptr()) }.unwrap();
        assert_eq!(s.call, SendCall::UringSendmsgZc);
        assert_eq!(
            s.bufs,
            vec![
                Range {
                    start: a.as_ptr() as u64,
                    len: 10
                },
                Range {
                    start: b.as_ptr() as u64,
                    len: 20
                }
            ]
        );
        // a bad msghdr pointer is no crash, and no buffer
        raw[16..24].copy_from_slice(&8u64.to_ne_bytes());
        // SAFETY: 64 bytes.
        assert!(unsafe { zc_sqe(raw.as_ptr()) }.unwrap().bufs.is_empty());
        // a READ writes its buffer: lifted, not tracked
        raw[0] = OP_READ;
        raw[16..24].copy_from_slice(&0x5000u64.to_ne_bytes());
        // SAFETY: 64 bytes.
        assert!(unsafe { zc_sqe(raw.as_ptr()) }.is_none());
        let want = Sqe::Writes {
            user_data: 0xabcd,
            bufs: vec![Range {
                start: 0x5000,
                len: 100,
            }],
        };
        // SAFETY: 64 bytes.
        assert_eq!(unsafe { super::sqe(raw.as_ptr()) }, Some(want));
        raw[0] = 26; // IORING_OP_SEND: neither
                     // SAFETY: 64 bytes.
        assert!(unsafe { super::sqe(raw.as_ptr()) }.is_none());
    }
}
