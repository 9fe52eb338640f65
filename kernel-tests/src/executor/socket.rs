//! The TCP socket's send path: `Send` (`send(2)`, with or without `MSG_ZEROCOPY`) and
//! `Siocoutq` (how much of what was written the peer has not acknowledged).
//!
//! Why a module: `Siocoutq` carries state between polls (the last answer, and how fast
//! the queue drains) that only these two operations touch.

use super::{Executor, Halt, Step};
use crate::sys;
use std::time::{Duration, Instant};
use zcsafe_policy::{Outcome, Region};

/// What `Op::Siocoutq` remembers between polls.
#[derive(Debug, Default)]
pub(super) struct OutqWatch {
    /// The last value answered, cleared by every write to the socket.
    last: Option<u64>,
    /// Where the current fall of SIOCOUTQ started (time, value; reset when it rises), and
    /// the rate (bytes/s) it fell at over that whole window (ACKs come in bursts, so a
    /// rate between two polls would overshoot): a poll naps about a quarter of the time
    /// the queue needs to drain, not a fixed backoff.
    seen: Option<(Instant, u64)>,
    rate: f64,
}

impl OutqWatch {
    /// Something was written to the socket: the next poll answers at once.
    pub(super) fn written(&mut self) {
        self.last = None;
    }
}

impl Executor {
    /// `Op::Send`: one blocking `send`.
    pub(super) fn send(&mut self, buf: Region, zerocopy: bool) -> Step {
        let (off, len) = self.region(buf)?;
        let mut flags = libc::MSG_NOSIGNAL;
        if zerocopy {
            flags |= libc::MSG_ZEROCOPY;
        }
        let fd = self.fd();
        let data = self.buf.slice(off, len);
        let r = sys::retry_eintr(|| sys::send(fd, data, flags));
        self.blocking_write("send", r)
    }

    /// `Op::Siocoutq`: the unacknowledged byte count, once it differs from the last
    /// answer (or at once after a write).
    pub(super) fn siocoutq(&mut self) -> Step {
        let deadline = self.deadline();
        let secs = self.secs();
        loop {
            let v = match sys::siocoutq(self.fd()) {
                Ok(v) => v,
                Err(e) => return Ok(self.err("ioctl(SIOCOUTQ)", &e)),
            };
            let now = Instant::now();
            let w = &mut self.outq;
            match w.seen {
                Some((t0, v0)) if v <= v0 => {
                    let dt = now.saturating_duration_since(t0).as_secs_f64();
                    if v < v0 && dt > 0.0 {
                        w.rate = (v0 - v) as f64 / dt;
                    }
                }
                _ => w.seen = Some((now, v)),
            }
            // The polling contract of Op::Siocoutq: answer only a changed value
            // (or any value after a write).
            if w.last != Some(v) {
                w.last = Some(v);
                return Ok(Outcome::Done(v));
            }
            if Instant::now() >= deadline {
                return Err(Halt::Stuck(format!(
                    "SIOCOUTQ stayed at {v} for {secs:.1} s"
                )));
            }
            let nap = if w.rate > 0.0 {
                Duration::from_secs_f64(v as f64 / w.rate / 4.0)
            } else {
                Duration::from_micros(50)
            };
            std::thread::sleep(nap.clamp(Duration::from_micros(5), Duration::from_millis(2)));
        }
    }
}
