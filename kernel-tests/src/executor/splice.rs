//! The pipe path: `Vmsplice` (user pages into the pipe, by reference unless the kernel
//! copies) and `Splice` (pipe pages into the socket).
//!
//! Why a module: both share one pipe, created on first use with the geometry's size,
//! and both wait on it (room to write, pages to read) before the call.

use super::{Executor, Halt, Step};
use crate::sys;
use std::os::fd::{AsRawFd, RawFd};
use zcsafe_policy::{Outcome, Region};

impl Executor {
    /// The run's pipe (read end, write end), `F_SETPIPE_SZ` to the geometry's size.
    fn pipe(&mut self) -> Result<(RawFd, RawFd), Halt> {
        if self.pipe.is_none() {
            let (r, w) = sys::pipe().map_err(|e| Halt::Failed(e.to_string()))?;
            let got = sys::set_pipe_size(w.as_raw_fd(), self.g.pipe as i32)
                .map_err(|e| Halt::Failed(format!("F_SETPIPE_SZ {}: {e}", self.g.pipe)))?;
            if got as u64 != self.g.pipe {
                return Err(Halt::Failed(format!(
                    "F_SETPIPE_SZ {} gave a {got}-byte pipe: the geometry's pipe must be a power-of-two number of pages",
                    self.g.pipe
                )));
            }
            self.pipe = Some((r, w));
        }
        let (r, w) = self.pipe.as_ref().expect("created above");
        Ok((r.as_raw_fd(), w.as_raw_fd()))
    }

    /// `Op::Vmsplice`: once the pipe has room, one non-blocking `vmsplice`.
    pub(super) fn vmsplice(&mut self, buf: Region, gift: bool) -> Step {
        let (off, len) = self.region(buf)?;
        let (_, w) = self.pipe()?;
        match sys::poll_until(w, libc::POLLOUT, self.deadline()) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Halt::Stuck(format!(
                    "vmsplice waited {:.1} s for room in a full pipe",
                    self.secs()
                )))
            }
            Err(e) => return Err(Halt::Failed(format!("poll(pipe): {e}"))),
        }
        let mut flags = libc::SPLICE_F_NONBLOCK;
        if gift {
            flags |= libc::SPLICE_F_GIFT;
        }
        match sys::vmsplice(w, self.buf.slice(off, len), flags) {
            Ok(n) => Ok(Outcome::Done(n as u64)),
            Err(e) => {
                let what = if gift {
                    "vmsplice(SPLICE_F_GIFT)"
                } else {
                    "vmsplice"
                };
                Ok(self.err(what, &e))
            }
        }
    }

    /// `Op::Splice`: once the pipe holds pages, one blocking `splice` into the socket.
    pub(super) fn splice(&mut self, len: u64) -> Step {
        let (r, _) = self.pipe()?;
        let deadline = self.deadline();
        // An empty pipe blocks splice until a writer adds pages (`splice_to_socket`
        // → `pipe_wait_readable`); only this sender writes it, so that is stuck.
        match sys::poll_until(r, libc::POLLIN, deadline) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Halt::Stuck(format!(
                    "splice waited {:.1} s on an empty pipe",
                    self.secs()
                )))
            }
            Err(e) => return Err(Halt::Failed(format!("poll(pipe): {e}"))),
        }
        let fd = self.fd();
        let n = sys::retry_eintr(|| sys::splice(r, None, fd, len as usize, libc::SPLICE_F_MOVE));
        self.blocking_write("splice", n)
    }
}
