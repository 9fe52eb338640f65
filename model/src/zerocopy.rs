//! Zero-copy completions: `MSG_ZEROCOPY` notifications on the error queue, and io_uring
//! `SEND_ZC` submissions and CQEs.

use crate::socket::Notif;
use std::collections::VecDeque;
use zcsafe_policy::{Cqe, Errno, Geometry, Hazard, HazardSet, Region, ZcNotification};

/// A `MSG_ZEROCOPY` `ubuf_info_msgzc`: counters `lo .. lo+len` share it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Uarg {
    pub key: u16,
    pub lo: u32,
    pub len: u32,
    /// Pages the range covers (`uarg->bytelen`).
    pub pages: u16,
    /// Some frag was copied instead (`skb_copy_ubufs` clears `uarg->zerocopy`).
    pub copied: bool,
}

/// An io_uring send submitted but not yet executed, or (with a linked timeout) part-queued
/// and waiting for room for the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sqe {
    pub user_data: u32,
    /// What is left to queue: the whole request until it runs, then, for a part-queued
    /// one, the rest (`io_send_zc`: `zc->buf += ret; zc->len -= ret`).
    pub buf: Region,
    pub kind: SqeKind,
    /// The tag of its `IORING_OP_LINK_TIMEOUT`, if one is linked.
    pub link_timeout: Option<u32>,
    /// Pages already queued (`zc->done_io`, `REQ_F_PARTIAL_IO`).
    pub done: u64,
}

impl Sqe {
    /// Whether the request queues what fits and waits for room for the rest (a
    /// `SEND_ZC` with a linked timeout; see `Kernel::enabled_each`).
    pub fn part_queues(&self) -> bool {
        self.kind == SqeKind::SendZc && self.link_timeout.is_some()
    }
}

/// Which io_uring send an [`Sqe`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SqeKind {
    /// `SEND_ZC` / `SENDMSG_ZC`: a send CQE with `F_MORE`, then a NOTIF on the ring.
    SendZc,
    /// A plain `IORING_OP_SEND`, `MSG_ZEROCOPY` in its `msg_flags` or not: one CQE; with
    /// the flag on an `SO_ZEROCOPY` socket the release is an errqueue notification.
    Send { msg_zerocopy: bool },
}

/// An io_uring notification still waiting for its pages to be released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UringNotif {
    pub user_data: u32,
    pub copied: bool,
    /// The request dropped its own reference (`io_notif_flush`, when it completed or was
    /// cancelled): until then the notif cannot complete, however many skbs were freed.
    pub flushed: bool,
}

#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub struct Zerocopy {
    /// `sk_zckey`: the counter of the next zero-copy send.
    pub zckey: u32,
    next_key: u16,
    /// Live `MSG_ZEROCOPY` completions, oldest first.
    pub uargs: Vec<Uarg>,
    /// `sk_error_queue` (zero-copy entries only).
    pub errqueue: VecDeque<ZcNotification>,
    pub sq: Vec<Sqe>,
    pub uring_notifs: Vec<UringNotif>,
    pub cq: VecDeque<Cqe>,
    /// `SEND_ZC` requests that failed so far (bounded by `uring_failures`).
    pub failures: u8,
    /// Notifications of failed `SEND_ZC`s not yet posted (`io_notif_flush` runs them
    /// from task work), by `user_data`, oldest first.
    pub failed_notifs: VecDeque<u32>,
    /// Linked timeouts that fired so far (bounded by `uring_link_timeouts`).
    pub link_timeouts: u8,
    /// Linked timeouts disarmed by their send's completion whose `-ECANCELED` CQE task
    /// work has not posted yet (`io_req_queue_tw_complete`), by tag, oldest first.
    pub disarmed: VecDeque<u32>,
}

clone_reusing!(Zerocopy {
    zckey,
    next_key,
    uargs,
    errqueue,
    sq,
    uring_notifs,
    cq,
    failures,
    failed_notifs,
    link_timeouts,
    disarmed
});

impl Zerocopy {
    /// The completion for one `send(MSG_ZEROCOPY)` of `pages` pages
    /// (`msg_zerocopy_realloc`): extend the write-queue tail's `ubuf_info` if it is the
    /// latest one (`id + len == sk_zckey`) and stays within `byte_limit` (`uarg_pages`;
    /// 512 KiB in the kernel), so consecutive sends share one notification range; else
    /// allocate a new one (`msg_zerocopy_alloc`) — which fails with `ENOBUFS` once
    /// `sock_omalloc` finds optmem (`sk_omem_alloc` against `optmem_max`) used up by live
    /// completions and queued notifications. The other `ENOBUFS`,
    /// `mm_account_pinned_pages` against `RLIMIT_MEMLOCK`, is not modelled: it never
    /// applies with `CAP_IPC_LOCK`, which the kernel backend (root) has.
    pub fn alloc_msg(
        &mut self,
        g: &Geometry,
        tail: Option<Notif>,
        optmem: u8,
        pages: u64,
        uarg_pages: u8,
    ) -> Result<Notif, Errno> {
        let id = self.zckey;
        if let (Some(Notif::Msg(key)), Some(last)) = (tail, self.uargs.last_mut()) {
            let mut end = last.lo;
            for _ in 0..last.len {
                end = g.zc_next(end);
            }
            let within = last.pages as u64 + pages <= uarg_pages as u64;
            if last.key == key
                && end == id
                && within
                && (last.len as u64) + 1 < (1u64 << g.zc_id_bits)
            {
                last.len += 1;
                last.pages += pages as u16;
                self.zckey = g.zc_next(id);
                return Ok(Notif::Msg(key));
            }
        }
        if self.uargs.len() + self.errqueue.len() >= optmem as usize {
            return Err(Errno::NoBufs);
        }
        let key = self.next_key;
        self.next_key += 1;
        self.uargs.push(Uarg {
            key,
            lo: id,
            len: 1,
            pages: pages as u16,
            copied: false,
        });
        self.zckey = g.zc_next(id);
        Ok(Notif::Msg(key))
    }

    /// Marks the completion behind `notif` as copied.
    pub fn mark_copied(&mut self, notif: Notif) {
        match notif {
            Notif::Msg(key) => self
                .uargs
                .iter_mut()
                .filter(|u| u.key == key)
                .for_each(|u| u.copied = true),
            Notif::Uring(ud) => self
                .uring_notifs
                .iter_mut()
                .filter(|n| n.user_data == ud)
                .for_each(|n| n.copied = true),
        }
    }

    /// The first pages of the `SEND_ZC` tagged `user_data` went into skbs: its notif is
    /// their `msg_ubuf` from now on (`io_sg_from_iter_iovec`), not yet flushed.
    pub fn uring_hold(&mut self, user_data: u32) {
        if !self.uring_notifs.iter().any(|n| n.user_data == user_data) {
            self.uring_notifs.push(UringNotif {
                user_data,
                copied: false,
                flushed: false,
            });
        }
    }

    /// The request tagged `user_data` is done with its notif (`io_notif_flush`, from
    /// `io_send_zc` or `io_send_zc_cleanup`): it completes once no skb references it, or
    /// at once — from task work, so as a later move — when no page was ever queued.
    pub fn uring_flush(&mut self, user_data: u32) {
        match self
            .uring_notifs
            .iter_mut()
            .find(|n| n.user_data == user_data && !n.flushed)
        {
            Some(n) => n.flushed = true,
            None => self.failed_notifs.push_back(user_data),
        }
    }

    /// Completes every notification no segment references any more, oldest first
    /// (`__msg_zerocopy_callback`, `io_notif_tw_complete`). Returns how many fired and
    /// the hazards that reached: a completion while an older one is still pending is
    /// out of order; one the kernel had to copy for says COPIED.
    pub fn sweep(&mut self, g: &Geometry, live: impl Fn(Notif) -> bool) -> Swept {
        let mut swept = Swept::default();
        let fired = |swept: &mut Swept, older_pending: bool, copied: bool| {
            swept.fired += 1;
            if older_pending {
                swept.reached.insert(Hazard::OutOfOrderCompletion);
            }
            if copied {
                swept.reached.insert(Hazard::Copied);
            }
        };
        let mut i = 0;
        while i < self.uargs.len() {
            if live(Notif::Msg(self.uargs[i].key)) {
                i += 1;
                continue;
            }
            let u = self.uargs.remove(i);
            fired(&mut swept, i > 0, u.copied);
            self.notify(g, u);
        }
        let mut i = 0;
        while i < self.uring_notifs.len() {
            let n = self.uring_notifs[i];
            if !n.flushed || live(Notif::Uring(n.user_data)) {
                i += 1;
                continue;
            }
            self.uring_notifs.remove(i);
            fired(&mut swept, i > 0, n.copied);
            self.cq.push_back(Cqe {
                user_data: n.user_data,
                res: 0,
                more: false,
                notif: true,
                copied: n.copied,
            });
        }
        swept
    }

    fn notify(&mut self, g: &Geometry, u: Uarg) {
        let mut hi = u.lo;
        for _ in 1..u.len {
            hi = g.zc_next(hi);
        }
        if let Some(tail) = self.errqueue.back_mut() {
            let span = |lo: u32, hi: u32| {
                ((hi as u64 + (1u64 << g.zc_id_bits) - lo as u64) % (1u64 << g.zc_id_bits)) + 1
            };
            if g.zc_next(tail.hi) == u.lo
                && span(tail.lo, tail.hi) + (u.len as u64) < (1u64 << g.zc_id_bits)
            {
                tail.hi = hi;
                return;
            }
        }
        self.errqueue.push_back(ZcNotification {
            lo: u.lo,
            hi,
            copied: u.copied,
        });
    }
}

/// What one [`Zerocopy::sweep`] completed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Notifications posted.
    pub fired: usize,
    /// Hazards they reached ([`Hazard::OutOfOrderCompletion`], [`Hazard::Copied`]).
    pub reached: HazardSet,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(bits: u8) -> Geometry {
        Geometry {
            page: 1,
            chunk: 1,
            buffer: 2,
            pipe: 1,
            stream: 4,
            zc_id_bits: bits,
        }
    }

    #[test]
    fn consecutive_sends_on_the_tail_share_a_completion() {
        let g = g(8);
        let mut z = Zerocopy::default();
        let a = z.alloc_msg(&g, None, 4, 1, 8).unwrap();
        let b = z.alloc_msg(&g, Some(a), 4, 1, 8).unwrap();
        assert_eq!(a, b);
        assert_eq!(z.uargs[0].len, 2);
        assert_eq!(z.sweep(&g, |_| false).fired, 1);
        assert_eq!(
            z.errqueue[0],
            ZcNotification {
                lo: 0,
                hi: 1,
                copied: false
            }
        );
    }

    #[test]
    fn optmem_limit_gives_enobufs_and_adjacent_ranges_merge() {
        let g = g(8);
        let mut z = Zerocopy::default();
        let a = z.alloc_msg(&g, None, 2, 1, 8).unwrap();
        let b = z.alloc_msg(&g, None, 2, 1, 8).unwrap();
        assert_eq!(z.alloc_msg(&g, None, 2, 1, 8), Err(Errno::NoBufs));
        assert_eq!(z.sweep(&g, |n| n == b).fired, 1);
        assert_eq!(z.sweep(&g, |_| false).fired, 1);
        assert_eq!(z.errqueue.len(), 1, "[0,0] and [1,1] merge into [0,1]");
        assert_eq!(z.errqueue[0].hi, 1);
        let _ = a;
    }

    #[test]
    fn a_range_stops_growing_at_the_byte_limit() {
        // msg_zerocopy_realloc: bytelen > byte_limit → new_alloc, a new range.
        let g = g(8);
        let mut z = Zerocopy::default();
        let a = z.alloc_msg(&g, None, 4, 4, 8).unwrap();
        let b = z.alloc_msg(&g, Some(a), 4, 4, 8).unwrap();
        assert_eq!(a, b, "8 pages fit one range");
        let c = z.alloc_msg(&g, Some(b), 4, 1, 8).unwrap();
        assert_ne!(b, c, "the ninth page starts a new range");
        assert_eq!((z.uargs[0].len, z.uargs[0].pages), (2, 8));
        assert_eq!((z.uargs[1].lo, z.uargs[1].len), (2, 1));
    }

    #[test]
    fn counters_wrap_at_the_configured_width() {
        let g = g(1);
        let mut z = Zerocopy::default();
        for _ in 0..3 {
            z.alloc_msg(&g, None, 8, 1, 8).unwrap();
        }
        assert_eq!(
            z.uargs.iter().map(|u| u.lo).collect::<Vec<_>>(),
            vec![0, 1, 0]
        );
    }
}
