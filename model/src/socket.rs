//! The sending TCP socket: write queue, retransmit queue, sequence numbers.
//!
//! Sequence numbers count pages; one page is one segment. `SIOCOUTQ` is
//! `write_seq - snd_una` (`tcp_ioctl`).

use crate::memory::DataRef;
use std::collections::VecDeque;

/// Which completion a segment's pages are accounted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Notif {
    /// A `MSG_ZEROCOPY` `ubuf_info` (by its creation number).
    Msg(u16),
    /// An io_uring `SEND_ZC` notification (by `user_data`).
    Uring(u32),
}

/// One segment: a page of stream data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Segment {
    pub seq: u16,
    pub data: DataRef,
    /// Set while the segment's frags reference zero-copy user pages.
    pub notif: Option<Notif>,
}

/// The sender's TCP state.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Socket {
    /// Queued, not yet transmitted (`sk_write_queue`).
    pub write_queue: VecDeque<Segment>,
    /// Transmitted, not yet acknowledged (`tcp_rtx_queue`). A retransmission reads the
    /// pages again.
    pub rtx: VecDeque<Segment>,
    pub write_seq: u16,
    pub snd_una: u16,
    pub snd_nxt: u16,
    /// The window the peer advertised last.
    pub snd_wnd: u16,
    pub zerocopy_enabled: bool,
    /// `(write_seq, snd_una)` when the application last polled `SIOCOUTQ` (polling
    /// contract of `Op::Siocoutq`).
    pub last_outq: Option<(u16, u16)>,
    /// Spurious retransmissions so far.
    pub retransmits: u8,
}

clone_reusing!(Socket {
    write_queue,
    rtx,
    write_seq,
    snd_una,
    snd_nxt,
    snd_wnd,
    zerocopy_enabled,
    last_outq,
    retransmits
});

impl Socket {
    pub fn new(rcvbuf: u64) -> Socket {
        Socket {
            write_queue: VecDeque::new(),
            rtx: VecDeque::new(),
            write_seq: 0,
            snd_una: 0,
            snd_nxt: 0,
            snd_wnd: rcvbuf as u16,
            zerocopy_enabled: false,
            last_outq: None,
            retransmits: 0,
        }
    }

    /// Pages of send buffer still free (`sk_stream_memory_free`: queued and
    /// unacknowledged data both count).
    pub fn room(&self, sndbuf: u64) -> u64 {
        sndbuf.saturating_sub((self.write_queue.len() + self.rtx.len()) as u64)
    }

    /// Appends data to the write queue (`tcp_sendmsg_locked`, `splice_to_socket`).
    pub fn queue(&mut self, data: DataRef, notif: Option<Notif>) {
        self.write_queue.push_back(Segment {
            seq: self.write_seq,
            data,
            notif,
        });
        self.write_seq += 1;
    }

    /// `SIOCOUTQ`.
    pub fn outq(&self) -> u16 {
        self.write_seq - self.snd_una
    }

    /// Whether `tcp_write_xmit` may send the head of the write queue now: the
    /// congestion window and the peer's window both have room.
    pub fn can_transmit(&self, cwnd: u64) -> bool {
        let in_flight = (self.snd_nxt - self.snd_una) as u64;
        !self.write_queue.is_empty() && in_flight < cwnd.min(self.snd_wnd as u64)
    }

    /// Processes a cumulative ACK (`tcp_ack` → `tcp_clean_rtx_queue`): frees
    /// acknowledged segments and takes the new window.
    pub fn ack(&mut self, ack: u16, wnd: u16) {
        if ack > self.snd_una {
            self.snd_una = ack;
        }
        self.snd_wnd = wnd;
        while self.rtx.front().is_some_and(|s| s.seq < self.snd_una) {
            self.rtx.pop_front();
        }
    }
}
