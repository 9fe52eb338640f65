//! The mirror of each socket's `MSG_ZEROCOPY` notification counter, and the byte ranges
//! of the submissions still in flight.
//!
//! The kernel gives a zero-copy `sendmsg` on a TCP socket one id from the socket's
//! counter `sk_zckey` (`msg_zerocopy_alloc`, or `msg_zerocopy_realloc` when it extends
//! the previous send's `ubuf_info`: both increment it) — but only if the call queued
//! bytes: `tcp_sendmsg_locked` skips zero-length sends (`(flags & MSG_ZEROCOPY) &&
//! size`), and a call that fails with nothing copied gives its id back
//! (`net_zcopy_put_abort` → `msg_zerocopy_put_abort`: `atomic_dec(&sk->sk_zckey)`). So:
//! a call that returned n > 0 consumed exactly one id and holds its first n bytes; a call
//! that returned ≤ 0 consumed none. The notification (`__msg_zerocopy_callback`) carries
//! an inclusive `[lo, hi]` of ids, coalesced, in a `u32` that wraps; with
//! `SO_EE_CODE_ZEROCOPY_COPIED` the kernel copied, but the pages are released all the
//! same.

use crate::pages::{Pages, Protect};
use crate::uring::UringRing;
use std::collections::{BTreeMap, HashMap};
use zcsafe_sanitizer_events::{SendCall, Submission, Summary};

/// A byte range a submission holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// Length.
    pub len: u64,
}

impl Range {
    fn contains(&self, a: u64) -> bool {
        a >= self.start && a - self.start < self.len
    }
    fn overlap(&self, other: Range) -> Option<u64> {
        let lo = self.start.max(other.start);
        let hi = (self.start + self.len).min(other.start + other.len);
        (lo < hi).then_some(lo)
    }
}

/// A submission in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// What the kernel was handed.
    pub sub: Submission,
    /// The bytes it holds (the first `n` bytes of the call's buffers).
    pub ranges: Vec<Range>,
}

/// One socket's mirror.
#[derive(Clone, Debug, Default)]
pub struct Socket {
    /// The next id the kernel will assign (`sk_zckey`).
    pub next_id: u32,
    /// In flight, by id.
    pub in_flight: BTreeMap<u32, InFlight>,
    /// The highest `hi` of a notification read.
    pub notified_through: Option<u32>,
    /// Notifications read.
    pub notifications: u64,
}

/// What holds an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// The submission.
    pub sub: Submission,
    /// Its range that holds the address.
    pub range: Range,
    /// The first held address written.
    pub addr: u64,
    /// Of the socket: the highest notification id read …
    pub notified_through: Option<u32>,
    /// … and how many were read.
    pub notifications_read: u64,
}

/// Every socket and page the runtime follows in one process.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Sockets by descriptor.
    pub sockets: HashMap<i32, Socket>,
    /// io_uring rings by descriptor: their in-flight zero-copy requests ([`crate::uring`]).
    pub rings: HashMap<i32, UringRing>,
    /// Protected pages.
    pub pages: Pages,
    /// Counters for the summary.
    pub summary: Summary,
    next_seq: u64,
}

/// The first `n` bytes of `bufs` (what a call that returned `n` sent or wrote).
pub fn prefix(bufs: &[Range], n: i64) -> Vec<Range> {
    let mut left = n.max(0) as u64;
    let mut out = Vec::new();
    for b in bufs {
        if left == 0 {
            break;
        }
        let k = b.len.min(left);
        out.push(Range {
            start: b.start,
            len: k,
        });
        left -= k;
    }
    out
}

/// Whether `id` lies in the inclusive, wrapping range `[lo, hi]`.
pub fn in_id_range(id: u32, lo: u32, hi: u32) -> bool {
    id.wrapping_sub(lo) <= hi.wrapping_sub(lo)
}

impl Tracker {
    /// A zero-copy call on a TCP socket with zero-copy enabled returned `ret`; `bufs` are
    /// its buffers in order. Returns the submission if one was tracked.
    pub fn sent(
        &mut self,
        fd: i32,
        call: SendCall,
        bufs: &[Range],
        ret: i64,
        p: &mut impl Protect,
    ) -> Option<Submission> {
        if ret <= 0 {
            return None; // no id consumed (msg_zerocopy_put_abort, or size 0)
        }
        let seq = self.next_seq();
        let sock = self.sockets.entry(fd).or_default();
        let id = sock.next_id;
        sock.next_id = id.wrapping_add(1);
        let ranges: Vec<Range> = prefix(bufs, ret)
            .into_iter()
            .filter(|r| r.len > 0)
            .collect();
        let sub = Submission {
            call,
            fd,
            zc_id: id,
            user_data: None,
            seq,
        };
        for r in &ranges {
            self.pages.pin(r.start, r.len, p);
        }
        sock.in_flight.insert(id, InFlight { sub, ranges });
        self.summary.tracked += 1;
        Some(sub)
    }

    /// The program read a zero-copy notification `[lo, hi]` on `fd`.
    pub fn notified(&mut self, fd: i32, lo: u32, hi: u32, p: &mut impl Protect) {
        self.summary.notifications += 1;
        let Some(sock) = self.sockets.get_mut(&fd) else {
            return;
        };
        sock.notifications += 1;
        sock.notified_through = Some(match sock.notified_through {
            // the later of the two, on the wrapping counter
            Some(prev) if hi.wrapping_sub(prev) > u32::MAX / 2 => prev,
            _ => hi,
        });
        let ids: Vec<u32> = sock
            .in_flight
            .keys()
            .copied()
            .filter(|id| in_id_range(*id, lo, hi))
            .collect();
        for id in ids {
            if let Some(f) = sock.in_flight.remove(&id) {
                for r in &f.ranges {
                    self.pages.unpin(r.start, r.len, p);
                }
                self.summary.released += 1;
            }
        }
    }

    /// The program closed `fd`: its notifications can no longer be read, so its
    /// submissions are released (and counted apart).
    pub fn closed(&mut self, fd: i32, p: &mut impl Protect) {
        if let Some(sock) = self.sockets.remove(&fd) {
            for f in sock.in_flight.values() {
                for r in &f.ranges {
                    self.pages.unpin(r.start, r.len, p);
                }
                self.summary.released_by_close += 1;
            }
        }
    }

    /// The in-flight submission (the newest, if several: the use the write undoes)
    /// holding a byte of `range`.
    pub fn holder(&self, range: Range) -> Option<Holder> {
        // Every in-flight submission, sockets' then rings', with what its holder reports.
        let sockets = self.sockets.values().flat_map(|sock| {
            (sock.in_flight.values())
                .map(move |f| (f.sub, &f.ranges, sock.notified_through, sock.notifications))
        });
        let rings = (self.rings.values()).flat_map(|ring| {
            ring.in_flight
                .iter()
                .map(move |f| (f.sub, &f.ranges, None, ring.notifs))
        });
        let mut best: Option<Holder> = None;
        for (sub, ranges, notified_through, notifications_read) in sockets.chain(rings) {
            for r in ranges {
                if let Some(addr) = r.overlap(range) {
                    if best.as_ref().is_none_or(|b| sub.seq > b.sub.seq) {
                        best = Some(Holder {
                            sub,
                            range: *r,
                            addr,
                            notified_through,
                            notifications_read,
                        });
                    }
                }
            }
        }
        best
    }

    /// The next submission number (every submission of the process, sockets and rings).
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq - 1
    }

    /// Whether an in-flight range holds `addr`.
    pub fn holds(&self, addr: u64) -> bool {
        let held = |ranges: &[Range]| ranges.iter().any(|r| r.contains(addr));
        self.sockets
            .values()
            .any(|s| s.in_flight.values().any(|f| held(&f.ranges)))
            || self
                .rings
                .values()
                .any(|r| r.in_flight.iter().any(|q| held(&q.ranges)))
    }

    /// In flight now.
    pub fn in_flight(&self) -> u64 {
        let sockets: u64 = self
            .sockets
            .values()
            .map(|s| s.in_flight.len() as u64)
            .sum();
        let rings: u64 = self.rings.values().map(|r| r.in_flight.len() as u64).sum();
        sockets + rings
    }

    /// A forked child: nothing it inherited can be released where it can see it.
    pub fn forget_all(&mut self, p: &mut impl Protect) {
        self.sockets.clear();
        self.rings.clear();
        self.pages.release_all(p);
        self.summary = Summary::default();
        self.next_seq = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::tests::Recorder;

    fn r(start: u64, len: u64) -> Range {
        Range { start, len }
    }

    #[test]
    fn only_calls_that_queued_bytes_consume_an_id_and_short_sends_hold_their_prefix() {
        let (mut t, mut p) = (Tracker::default(), Recorder::default());
        assert!(t
            .sent(3, SendCall::Send, &[r(0x1000, 100)], -1, &mut p)
            .is_none());
        assert!(t
            .sent(3, SendCall::Send, &[r(0x1000, 0)], 0, &mut p)
            .is_none());
        let a = t
            .sent(3, SendCall::Send, &[r(0x1000, 100)], 100, &mut p)
            .unwrap();
        let b = t
            .sent(
                3,
                SendCall::Sendmsg,
                &[r(0x3000, 10), r(0x5000, 8192)],
                20,
                &mut p,
            )
            .unwrap();
        assert_eq!((a.zc_id, b.zc_id), (0, 1));
        assert_eq!(
            t.sockets[&3].in_flight[&1].ranges,
            vec![r(0x3000, 10), r(0x5000, 10)]
        );
        assert!(t.holds(0x5009) && !t.holds(0x500a) && !t.holds(0x6000));
        // another socket has its own counter
        let c = t
            .sent(4, SendCall::Send, &[r(0x9000, 1)], 1, &mut p)
            .unwrap();
        assert_eq!(c.zc_id, 0);
    }

    #[test]
    fn a_coalesced_notification_releases_its_whole_range_and_nothing_else() {
        let (mut t, mut p) = (Tracker::default(), Recorder::default());
        for i in 0..4 {
            t.sent(3, SendCall::Send, &[r(0x10000 * (i + 1), 64)], 64, &mut p);
        }
        t.notified(3, 1, 2, &mut p);
        let left: Vec<u32> = t.sockets[&3].in_flight.keys().copied().collect();
        assert_eq!(left, vec![0, 3]);
        assert_eq!(t.sockets[&3].notified_through, Some(2));
        assert_eq!(t.summary.released, 2);
        let h = t.holder(r(0x10010, 4)).unwrap();
        assert_eq!((h.sub.zc_id, h.addr, h.notifications_read), (0, 0x10010, 1));
        // the same bytes sent again: the newer send is the one the write undoes
        t.sent(3, SendCall::Send, &[r(0x10000, 64)], 64, &mut p);
        assert_eq!(t.holder(r(0x10010, 4)).unwrap().sub.zc_id, 4);
    }

    #[test]
    fn ids_wrap_at_u32() {
        let (mut t, mut p) = (Tracker::default(), Recorder::default());
        t.sockets.entry(3).or_default().next_id = u32::MAX - 1;
        let ids: Vec<u32> = (0..4)
            .map(|i| {
                t.sent(3, SendCall::Send, &[r(0x1000 * (i + 1), 1)], 1, &mut p)
                    .unwrap()
                    .zc_id
            })
            .collect();
        assert_eq!(ids, vec![u32::MAX - 1, u32::MAX, 0, 1]);
        t.notified(3, u32::MAX, 0, &mut p);
        let left: Vec<u32> = t.sockets[&3].in_flight.keys().copied().collect();
        assert_eq!(left, vec![1, u32::MAX - 1]);
        t.notified(3, u32::MAX - 1, u32::MAX - 1, &mut p);
        // the later id on the wrapping counter stays the high-water mark
        assert_eq!(t.sockets[&3].notified_through, Some(0));
        assert!(in_id_range(5, 5, 5) && !in_id_range(6, 5, 5) && in_id_range(0, u32::MAX, 1));
    }

    #[test]
    fn closing_a_socket_releases_its_submissions_counted_apart() {
        let (mut t, mut p) = (Tracker::default(), Recorder::default());
        t.sent(3, SendCall::Send, &[r(0x1000, 10)], 10, &mut p);
        t.closed(3, &mut p);
        assert!(t.pages.is_empty());
        assert_eq!((t.summary.released, t.summary.released_by_close), (0, 1));
        // the descriptor number comes back with a fresh counter
        let s = t
            .sent(3, SendCall::Send, &[r(0x1000, 10)], 10, &mut p)
            .unwrap();
        assert_eq!(s.zc_id, 0);
    }
}
