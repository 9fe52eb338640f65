//! `MSG_ZEROCOPY`: `EnableZerocopy` (`setsockopt(SO_ZEROCOPY)`) and `ReadErrqueue` (the
//! completion notifications on the socket's error queue, [`crate::errqueue`]). The
//! zero-copy send itself is `Op::Send` with the flag ([`super::socket`]).
//!
//! Why a module: waiting for a notification is a poll loop with its own wake-up rules
//! (POLLERR with an empty queue, POLLIN/POLLHUP waking poll with no events asked).

use super::{Executor, Halt, Step};
use crate::errqueue::{self, ErrqueueRead};
use crate::sys;
use std::time::Duration;
use zcsafe_policy::Outcome;

impl Executor {
    /// `Op::EnableZerocopy`.
    pub(super) fn enable_zerocopy(&mut self) -> Step {
        match sys::set_int_opt(self.fd(), libc::SOL_SOCKET, libc::SO_ZEROCOPY, 1) {
            Ok(()) => {
                self.udp_zerocopy_enabled();
                Ok(Outcome::Ok)
            }
            Err(e) => Ok(self.err("setsockopt(SO_ZEROCOPY)", &e)),
        }
    }

    /// `Op::ReadErrqueue`: the next notification, waiting for one if `block`.
    pub(super) fn read_errqueue(&mut self, block: bool) -> Step {
        if let Some(n) = self.udp_stashed() {
            return Ok(Outcome::Zc(Some(n)));
        }
        let deadline = self.deadline();
        // The last poll woke with POLLERR: read at once, without a nap.
        let mut err_wake = false;
        loop {
            match errqueue::read_one(self.fd()) {
                Ok(ErrqueueRead::Notification(n)) => {
                    self.udp_noted(&n);
                    return Ok(Outcome::Zc(Some(n)));
                }
                Ok(ErrqueueRead::Other { .. }) => continue,
                Ok(ErrqueueRead::Empty) if !block => return Ok(Outcome::Zc(None)),
                Ok(ErrqueueRead::Empty) => {}
                Err(e) => return Ok(self.err("recvmsg(MSG_ERRQUEUE)", &e)),
            }
            if err_wake {
                // POLLERR without a notification: a socket error, not ours.
                std::thread::sleep(Duration::from_micros(100));
            }
            // poll with no events still reports POLLERR: `tcp_poll` sets it while
            // sk_error_queue is non-empty.
            match sys::poll_until(self.fd(), 0, deadline) {
                Ok(Some(revents)) => err_wake = revents & libc::POLLERR != 0,
                Ok(None) => {
                    return Err(Halt::Stuck(format!(
                        "waited {:.1} s for a MSG_ZEROCOPY notification",
                        self.secs()
                    )))
                }
                Err(e) => return Err(Halt::Failed(format!("poll(POLLERR): {e}"))),
            }
            if !err_wake {
                // POLLHUP/POLLIN also wake poll: avoid a busy loop.
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
}
