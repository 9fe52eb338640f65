//! The receiving host: its TCP socket and the application that checks every byte.

use crate::memory::DataRef;
use crate::socket::Notif;
use std::collections::VecDeque;

/// The peer socket and its reader.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub rcv_nxt: u16,
    /// In-order data not yet read by the application (`sk_receive_queue`). For local
    /// delivery these still reference the sender's pages (and, if frags were not copied
    /// on delivery, their zero-copy completion).
    pub queue: VecDeque<(u16, DataRef, Option<Notif>)>,
    /// Stream units the application has read (and verified).
    pub consumed: u16,
    /// The window advertised in the last ACK, to know when a read must reopen it.
    pub last_wnd: u16,
    /// The receive window the buffer allows now, in pages (`tcp_full_space`); receive
    /// autotuning grows it.
    pub rcvbuf: u16,
}

clone_reusing!(Peer {
    rcv_nxt,
    queue,
    consumed,
    last_wnd,
    rcvbuf
});

impl Peer {
    pub fn new(rcvbuf: u64) -> Peer {
        Peer {
            rcv_nxt: 0,
            queue: VecDeque::new(),
            consumed: 0,
            last_wnd: rcvbuf as u16,
            rcvbuf: rcvbuf as u16,
        }
    }

    /// The window to advertise: free receive buffer (`tcp_space`).
    pub fn window(&self) -> u16 {
        self.rcvbuf.saturating_sub(self.queue.len() as u16)
    }
}
