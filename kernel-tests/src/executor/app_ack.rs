//! `WaitAppAck`: the receiver's consumed-byte counts, read back on the same connection
//! (the format is [`crate::app_ack`], shared with the receiver that writes it), and the
//! end-of-run drain that reads the rest.
//!
//! Why a module: the counts arrive whenever the receiver reads, not when a policy asks,
//! so reading them is a non-blocking drain with its own end-of-stream state.

use super::{Executor, Halt, Step};
use crate::sys;
use std::time::Instant;
use zcsafe_policy::Outcome;

impl Executor {
    /// Reads the receiver's cumulative counts until one exceeds `beyond`.
    pub(super) fn wait_app_ack(&mut self, beyond: u64) -> Step {
        let deadline = self.deadline();
        loop {
            let acked = self.acks.highest();
            if acked > beyond {
                return Ok(Outcome::Done(acked));
            }
            if self.ack_eof {
                return Err(Halt::Stuck(format!(
                    "waited for the receiver to report more than {beyond} bytes, but it closed at {acked}"
                )));
            }
            match sys::poll_until(self.fd(), libc::POLLIN, deadline) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(Halt::Stuck(format!(
                        "waited {:.1} s for the receiver to report more than {beyond} bytes consumed (last report {acked})",
                        self.secs(),
                    )))
                }
                Err(e) => return Err(Halt::Failed(format!("poll: {e}"))),
            }
            self.read_acks();
        }
    }

    /// Drains whatever counts are readable now, without blocking.
    fn read_acks(&mut self) {
        let mut b = [0u8; 4096];
        loop {
            match sys::recv(self.fd(), &mut b, libc::MSG_DONTWAIT) {
                Ok(0) => {
                    self.ack_eof = true;
                    return;
                }
                Ok(n) => {
                    self.acks.feed(&b[..n]);
                }
                Err(e) => {
                    if !matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) {
                        self.ack_eof = true;
                    }
                    return;
                }
            }
        }
    }

    /// Reads the receiver's remaining acks until it closes, so our close sends FIN, not
    /// RST (`tcp_close` resets when unread data is queued).
    /// A UDP socket has no acks and no close to protect.
    pub fn drain_until_eof(&mut self, deadline: Instant) {
        if self.udp.is_some() {
            return;
        }
        while !self.ack_eof && Instant::now() < deadline {
            match sys::poll_until(self.fd(), libc::POLLIN, deadline) {
                Ok(Some(_)) => self.read_acks(),
                _ => return,
            }
        }
    }
}
