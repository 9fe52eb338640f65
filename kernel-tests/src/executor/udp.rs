//! The UDP socket's notification ledger: when the kernel let go of each datagram's pages.
//!
//! Over TCP the executor measures a reuse against the receiving application's progress
//! ([`crate::exposure`]): the pages are held until the peer's ACK, and a byte the
//! receiver has not read may still be on its way. A UDP datagram is held only until its
//! one skb is freed — `__msg_zerocopy_callback`, from `skb_release_data` at TX completion,
//! or after `__netif_receive_skb_core` → `skb_orphan_frags_rx` copied the frags on local
//! delivery — and from then on the receiver reads a copy. So a UDP run measures each
//! reuse against the error queue: a rewrite is exposed only while some send from that
//! page has no notification yet (the model's `reuse-while-held`).
//!
//! The executor therefore reads the error queue before every `Fill`, also for a policy
//! that never does (`udp-zc-naive`). It keeps what it read and hands it to the policy's
//! own `ReadErrqueue` first, merged as `__msg_zerocopy_callback` merges an unread queue
//! tail (`skb_zerocopy_notify_extend`: the next range extends the tail, its code kept),
//! so the policy sees what the kernel would have shown it.

use super::Executor;
use crate::errqueue::{self, ErrqueueRead};
use crate::exposure::Consumed;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::os::fd::RawFd;
use zcsafe_policy::ZcNotification;

/// What a UDP run's sender counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sends {
    /// Datagrams sent (sends that returned a count).
    pub datagrams: u64,
    /// Of those, sent with `MSG_ZEROCOPY` on an `SO_ZEROCOPY` socket: each took a
    /// notification id (`msg_zerocopy_realloc` allocates one per uncorked `udp_sendmsg`).
    pub zerocopy: u64,
    /// Zero-copy sends a notification covered by the end of the run.
    pub notified: u64,
    /// Of those, covered by a `SO_EE_CODE_ZEROCOPY_COPIED` notification: the kernel
    /// copied the pages (on local delivery, or in `__ip_append_data` when it could not
    /// use them).
    pub copied: u64,
    /// Fills made while some zero-copy datagram was still not notified: the kernel held
    /// pages past the `sendmsg` that gave them — the window the policy's reuse rule is
    /// about was open. Zero when delivery copies inside the call.
    pub fills_while_held: u64,
}

impl std::ops::Add for Sends {
    type Output = Sends;

    fn add(self, o: Sends) -> Sends {
        Sends {
            datagrams: self.datagrams + o.datagrams,
            zerocopy: self.zerocopy + o.zerocopy,
            notified: self.notified + o.notified,
            copied: self.copied + o.copied,
            fills_while_held: self.fills_while_held + o.fills_while_held,
        }
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// Stream bytes the kernel no longer references, in send order: the bound every
    /// reuse is measured against (the tracker's [`Consumed`]).
    pub(super) released: Consumed,
    /// Sends not yet released, oldest first: the notification id still awaited (`None`
    /// once notified, or for a copying send) and the stream end the send carried.
    pending: VecDeque<(Option<u32>, u64)>,
    /// `SO_ZEROCOPY` is on: a `MSG_ZEROCOPY` send takes the next id.
    enabled: bool,
    next_id: u32,
    /// Notifications read on the policy's behalf and not yet handed to it.
    stash: VecDeque<ZcNotification>,
    pub(super) sends: Sends,
}

impl Ledger {
    /// One datagram sent, carrying the stream up to `end` (`None`: the pages held no
    /// stream bytes the tracker knows of).
    fn sent(&mut self, zerocopy: bool, end: Option<u64>) {
        self.sends.datagrams += 1;
        let id = (zerocopy && self.enabled).then(|| {
            self.sends.zerocopy += 1;
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            id
        });
        self.pending.push_back((id, end.unwrap_or(0)));
        self.release();
    }

    /// A notification read from the error queue: its sends are let go.
    fn note(&mut self, n: &ZcNotification) {
        let covered = n.hi.wrapping_sub(n.lo) as u64 + 1;
        self.sends.notified += covered;
        if n.copied {
            self.sends.copied += covered;
        }
        for (id, _) in self.pending.iter_mut() {
            if id.is_some_and(|i| i.wrapping_sub(n.lo) <= n.hi.wrapping_sub(n.lo)) {
                *id = None;
            }
        }
        self.release();
    }

    /// Raises the released bound over the oldest sends nothing holds any more.
    fn release(&mut self) {
        while let Some(&(None, end)) = self.pending.front() {
            self.released.will_read_upto(end);
            self.pending.pop_front();
        }
    }

    /// Keeps `n` for the policy: the next range extends an unread tail, as
    /// `skb_zerocopy_notify_extend` does on the error queue (the tail's code kept).
    fn stash_push(&mut self, n: ZcNotification) {
        match self.stash.back_mut() {
            Some(t) if t.hi.wrapping_add(1) == n.lo => t.hi = n.hi,
            _ => self.stash.push_back(n),
        }
    }

    /// Reads every notification queued now into the stash, merging as the kernel merges
    /// an unread tail.
    fn collect(&mut self, fd: RawFd) {
        while let Ok(r) = errqueue::read_one(fd) {
            match r {
                ErrqueueRead::Notification(n) => {
                    self.note(&n);
                    self.stash_push(n);
                }
                ErrqueueRead::Other { .. } => {}
                ErrqueueRead::Empty => return,
            }
        }
    }
}

impl Executor {
    /// `SO_ZEROCOPY` was set: on UDP, zero-copy sends take ids from now on.
    pub(super) fn udp_zerocopy_enabled(&mut self) {
        if let Some(l) = &mut self.udp {
            l.enabled = true;
        }
    }

    /// A datagram went out from `buf`.
    pub(super) fn udp_sent(&mut self, buf: zcsafe_policy::Region, zerocopy: bool) {
        let end = self.reuses.content_end(buf);
        if let Some(l) = &mut self.udp {
            l.sent(zerocopy, end);
        }
    }

    /// Before a rewrite: what the kernel let go of so far, and whether it still holds
    /// any datagram.
    pub(super) fn udp_before_fill(&mut self) {
        let fd = self.fd();
        if let Some(l) = &mut self.udp {
            l.collect(fd);
            if l.pending.iter().any(|(id, _)| id.is_some()) {
                l.sends.fills_while_held += 1;
            }
        }
    }

    /// The policy reads the error queue: a notification read on its behalf comes first.
    pub(super) fn udp_stashed(&mut self) -> Option<ZcNotification> {
        self.udp.as_mut()?.stash.pop_front()
    }

    /// The policy read a notification from the kernel itself.
    pub(super) fn udp_noted(&mut self, n: &ZcNotification) {
        if let Some(l) = &mut self.udp {
            l.note(n);
        }
    }

    /// What a UDP run's sender counted (`None` on TCP), after reading what is queued.
    pub fn sends(&mut self) -> Option<Sends> {
        let fd = self.fd();
        let l = self.udp.as_mut()?;
        l.collect(fd);
        Some(l.sends)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zc(lo: u32, hi: u32, copied: bool) -> ZcNotification {
        ZcNotification { lo, hi, copied }
    }

    #[test]
    fn notifications_release_in_send_order_and_merge_like_an_unread_queue_tail() {
        let mut l = Ledger {
            enabled: true,
            ..Ledger::default()
        };
        for end in [4096, 8192, 12288] {
            l.sent(true, Some(end));
        }
        assert_eq!(l.released.upper(), 0, "nothing notified yet");
        l.note(&zc(1, 1, true));
        assert_eq!(
            l.released.upper(),
            0,
            "send 0 still held: nothing after it counts"
        );
        l.note(&zc(0, 0, true));
        assert_eq!(l.released.upper(), 8192);
        assert_eq!((l.sends.notified, l.sends.copied), (2, 2));
        // The stash merges the next range into its tail, keeping the tail's code.
        l.stash_push(zc(0, 1, true));
        l.stash_push(zc(2, 2, false));
        l.stash_push(zc(4, 4, false));
        let stash: Vec<_> = l.stash.iter().copied().collect();
        assert_eq!(stash, [zc(0, 2, true), zc(4, 4, false)]);
        // A copying send (SO_ZEROCOPY off) takes no id and holds nothing.
        l.enabled = false;
        l.note(&zc(2, 2, false));
        l.sent(true, Some(16384));
        assert_eq!(l.released.upper(), 16384);
        assert_eq!(l.sends.zerocopy, 3);
    }
}
