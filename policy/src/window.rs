//! The receive window a kernel run gives its verifying receiver.
//!
//! Where a reuse bug corrupts decides what the receiver must do for the moment it needs to
//! happen on a real kernel. Measured (docs/design.md §5): with the kernel's default
//! receive buffer (128 KiB, doubled, half of it advertised up to 6.5 by
//! `tcp_win_from_space` with `tcp_adv_win_scale` 1) the peer's window holds one 64 KiB
//! chunk, so a second chunk never sits unread at the peer; from 6.6 the scaling ratio
//! (`tcp_measure_rcv_mss`) leaves more room, and receive autotuning
//! (`tcp_rcv_space_adjust`) grows it mid-run — safe runs there were luck.

use serde::{Deserialize, Serialize};

/// `SO_RCVBUF` of a wide window: four default buffers (the kernel doubles it; up to 6.5
/// it advertises half, 512 KiB — the old chunk and several after it).
pub const WIDE_RCVBUF: u32 = 512 << 10;

/// Which window exposes a policy's failure on the real kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiveWindow {
    /// Wide and fixed (`SO_RCVBUF` set before the connection, which also turns receive
    /// autotuning off): bytes sit unread at the peer, whose receive queue keeps the
    /// sender's pages on local delivery (spliced pages, sendfile's page-cache pages).
    Wide,
    /// The kernel's own, which fills: data waits unsent in the sender's write queue — the
    /// only place `MSG_ZEROCOPY` and `SEND_ZC` pages stay on local delivery, which copies
    /// them on arrival (`skb_orphan_frags_rx`).
    Kernel,
}

impl ReceiveWindow {
    /// The receiver's `SO_RCVBUF`, or `None` for the kernel's default and autotuning.
    pub fn rcvbuf(self) -> Option<u32> {
        match self {
            ReceiveWindow::Wide => Some(WIDE_RCVBUF),
            ReceiveWindow::Kernel => None,
        }
    }
}
