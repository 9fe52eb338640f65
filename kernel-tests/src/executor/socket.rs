//! The socket's send path: `Send` (`send(2)`, with or without `MSG_ZEROCOPY`) and
//! `Siocoutq` (how much of what was written the peer has not acknowledged; on UDP
//! `udp_ioctl` answers `sk_wmem_alloc_get`, the bytes of datagrams not yet freed).
//!
//! Why a module: `Siocoutq` carries state between polls (the last answer, and how fast
//! the queue drains) that only these two operations touch.

use super::{Executor, Halt, Step};
use crate::sys;
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};
use zcsafe_policy::{Outcome, Region};

/// The connected socket a policy sends on.
#[derive(Debug)]
pub enum Conn {
    /// A TCP stream: the receiver sees EOF when the write side is shut.
    Tcp(TcpStream),
    /// A UDP socket: every send is one datagram; the end of the stream is an empty one.
    Udp(UdpSocket),
}

impl AsRawFd for Conn {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::Udp(s) => s.as_raw_fd(),
        }
    }
}

impl Conn {
    /// Ends the stream: `shutdown(how)` on TCP; on UDP, which has no end, the empty
    /// datagram the datagram receiver takes for it ([`crate::receiver::datagram`]).
    pub(super) fn end(&self, how: Shutdown) {
        match self {
            Conn::Tcp(s) => {
                let _ = s.shutdown(how);
            }
            Conn::Udp(s) => {
                let _ = s.send(&[]);
            }
        }
    }
}

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
        let done = self.blocking_write("send", r);
        if let Ok(zcsafe_policy::Outcome::Done(_)) = done {
            self.udp_sent(buf, zerocopy);
        }
        done
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
