//! The `MSG_ZEROCOPY` ledger: which send counters are unreleased, and which buffer slot
//! each one pins.
//!
//! The kernel numbers every `send(MSG_ZEROCOPY)` that queued bytes with a per-socket
//! counter (`sk_zckey`, 32 bits, wrapping) and later reports released ranges `[lo, hi]`
//! (`__msg_zerocopy_callback`, which also merges adjacent ranges in the error queue:
//! `skb_zerocopy_notify_extend`). Ranges wrap like the counter does.

use zcsafe_policy::{Geometry, ZcNotification};

/// Unreleased zero-copy sends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ZcLedger {
    /// The counter the next successful send gets.
    next_id: u32,
    /// `(counter, buffer slot)` in submission order.
    outstanding: Vec<(u32, u16)>,
    /// Unreleased sends per buffer slot: `pins` is asked once per chunk, and a pipelined
    /// sender has thousands of small sends outstanding — a scan per chunk showed in the
    /// 4 KiB benchmarks. Always derived from `outstanding`, so equal ledgers stay equal.
    pinned: Vec<u32>,
}

impl ZcLedger {
    /// Records one successful zero-copy send call from `slot`; returns its counter.
    pub fn record_send(&mut self, g: &Geometry, slot: u16) -> u32 {
        let id = self.next_id;
        self.outstanding.push((id, slot));
        if self.pinned.is_empty() {
            // Sized once, so that the derived Eq/Hash see equal ledgers as equal.
            self.pinned = vec![0; g.slots() as usize];
        }
        self.pinned[usize::from(slot)] += 1;
        self.next_id = g.zc_next(id);
        id
    }

    /// Takes the counter of a successful zero-copy send the sender does not track: the
    /// kernel numbers every `MSG_ZEROCOPY` send that queued bytes (`msg_zerocopy_realloc`
    /// in `tcp_sendmsg_locked`) whether or not the application waits for it, so later
    /// labels stay the kernel's. Its notification releases nothing. Returns the counter.
    pub fn skip_send(&mut self, g: &Geometry) -> u32 {
        let id = self.next_id;
        self.next_id = g.zc_next(id);
        id
    }

    /// [`record_send`](Self::record_send) for a sender whose own counter skips the
    /// kernel's last value on wrap-around (`2^zc_id_bits - 1`, spdk#3600): from the first
    /// wrap on, its labels fall behind the kernel's counters.
    pub fn record_send_skipping_last(&mut self, g: &Geometry, slot: u16) -> u32 {
        let id = self.record_send(g, slot);
        let last = (1u64 << g.zc_id_bits) - 1;
        if u64::from(id) + 1 == last {
            self.next_id = 0;
        }
        id
    }

    /// Releases every send the notification covers, wrap-aware. This is the correct rule.
    pub fn release(&mut self, g: &Geometry, n: &ZcNotification) {
        self.release_where(|id| g.zc_in_range(id, n.lo, n.hi));
    }

    /// Releases every send whose counter satisfies `released`. For policies that get the
    /// rule wrong on purpose (see `zc_inorder_tracker`).
    pub fn release_where(&mut self, released: impl Fn(u32) -> bool) {
        let pinned = &mut self.pinned;
        self.outstanding.retain(|&(id, slot)| {
            let keep = !released(id);
            if !keep {
                pinned[usize::from(slot)] -= 1;
            }
            keep
        });
    }

    /// Whether a send from `slot` is still unreleased.
    pub fn pins(&self, slot: u16) -> bool {
        self.pinned.get(usize::from(slot)).is_some_and(|&n| n > 0)
    }

    pub fn is_empty(&self) -> bool {
        self.outstanding.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_ranges_release_exactly_their_members() {
        let g = Geometry {
            zc_id_bits: 2,
            ..Geometry::kernel(4096, 8192, 4096, 8192)
        };
        let mut l = ZcLedger::default();
        for slot in [0, 1, 0] {
            l.record_send(&g, slot); // counters 0 1 2
        }
        l.release(
            &g,
            &ZcNotification {
                lo: 0,
                hi: 1,
                copied: false,
            },
        );
        assert!(l.pins(0) && !l.pins(1), "counter 2 still pins slot 0");
        assert_eq!(l.record_send(&g, 1), 3);
        assert_eq!(l.record_send(&g, 0), 0, "the counter wraps");
        l.release(
            &g,
            &ZcNotification {
                lo: 2,
                hi: 3,
                copied: true,
            },
        );
        assert!(
            l.pins(0) && !l.pins(1),
            "the wrapped counter 0 is not in [2, 3]"
        );
        l.release(
            &g,
            &ZcNotification {
                lo: 3,
                hi: 0,
                copied: false,
            },
        );
        assert!(l.is_empty(), "[3, 0] wraps and covers 0");
    }
}
