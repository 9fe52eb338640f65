//! The verifying receiver of a UDP run: each datagram is the next chunk of the stream.
//!
//! UDP keeps no order and may drop (a full receive buffer in `__udp_enqueue_schedule_skb`,
//! a full qdisc whose `NET_XMIT_DROP` `udp_send_skb` swallows), and a datagram carries no
//! sequence number — but the stream pattern does: every word says which stream offset it
//! was written for ([`zcsafe_policy::stream`]). Each datagram is checked at its place
//! (the bytes before it) by the same checker as a TCP stream, and also located by its
//! first word. A lost, duplicated or reordered datagram would read as corrupt bytes, so
//! such a run is no evidence about the policy: [`Datagrams::gap`] says so and the run is
//! `inconclusive`, never `safe` or `corrupt`. Told apart from a rewrite by what the
//! kernel and the sender counted (drops, datagrams sent) and, for order, by whether every
//! datagram is intact somewhere and every place was filled exactly once — a rewrite
//! leaves some stream bytes missing, a reordering none.
//!
//! The end of the stream is an empty datagram ([`crate::executor::Conn`]): on one flow
//! through one queue it comes after every datagram before it, and its absence ends the
//! run at the idle timeout. The reading schedule does not matter here — the receiver
//! reads a copy, made when the datagram was delivered — so it reads as fast as it can.

use super::{Checker, Received, ReceiverOptions, StreamEnd};
use crate::error::KernelError;
use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use zcsafe_policy::{stream, Event};

/// The largest UDP payload over IPv4 (65535 − 20 − 8): a chunk must fit one datagram.
pub const MAX_PAYLOAD: u64 = 65507;

/// What the datagram receiver counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Datagrams {
    /// Datagrams read (the empty end marker not counted).
    pub received: u64,
    /// Datagrams the receiving socket dropped (`SK_MEMINFO_DROPS`, `sk_drops`).
    pub dropped: u64,
    /// Datagrams longer than the read buffer (`MSG_TRUNC`).
    pub truncated: u64,
    /// Datagrams intact, but at another place than the one they arrived at.
    pub out_of_place: u64,
    /// Every datagram was intact at some place and every place was filled once: only
    /// the order changed.
    pub reordered: bool,
}

impl Datagrams {
    /// Why the bytes cannot be judged, given that the sender sent `sent` datagrams:
    /// one was lost, repeated, cut or reordered.
    pub fn gap(&self, sent: u64) -> Option<String> {
        if self.dropped > 0 {
            return Some(format!(
                "the receiving socket dropped {} datagrams (SK_MEMINFO_DROPS)",
                self.dropped
            ));
        }
        if self.received < sent {
            return Some(format!(
                "{} of {sent} datagrams arrived: {} lost on the way",
                self.received,
                sent - self.received
            ));
        }
        if self.received > sent {
            return Some(format!(
                "{} datagrams arrived for {sent} sent",
                self.received
            ));
        }
        if self.truncated > 0 {
            return Some(format!(
                "{} datagrams were longer than the read buffer",
                self.truncated
            ));
        }
        if self.reordered {
            return Some(format!(
                "datagrams arrived out of order ({} away from their place, every byte intact)",
                self.out_of_place
            ));
        }
        None
    }
}

/// Binds the receiving socket and sizes its buffer for `bytes` in flight: UDP does not
/// wait for a slow reader, it drops (`__udp_enqueue_schedule_skb` against `sk_rcvbuf`).
/// `SO_RCVBUFFORCE` (root, past `rmem_max`), else `SO_RCVBUF`.
pub fn bind(addr: SocketAddr, bytes: u64) -> Result<UdpSocket, KernelError> {
    let s = UdpSocket::bind(addr).map_err(|e| KernelError::io(format!("binding {addr}"), e))?;
    // The kernel doubles the value for its overhead; a datagram's truesize is a little
    // more than its payload.
    let want = i32::try_from(bytes.saturating_mul(2)).unwrap_or(i32::MAX);
    let fd = s.as_raw_fd();
    crate::sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, want)
        .or_else(|_| crate::sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, want))
        .map_err(|e| KernelError::io("setsockopt(SO_RCVBUF)", e))?;
    Ok(s)
}

/// `sk_drops` of `sock` (`SO_MEMINFO`).
fn drops(sock: &UdpSocket) -> std::io::Result<u64> {
    // SK_MEMINFO_VARS is 9 (include/uapi/linux/sock_diag.h); room for more.
    let mut mem = [0u32; 16];
    let mut len = std::mem::size_of_val(&mem) as libc::socklen_t;
    // SAFETY: `mem` is writable for `len` bytes, and `len` is a valid socklen_t.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            mem.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(mem[libc::SK_MEMINFO_DROPS as usize] as u64)
}

/// Where a datagram's bytes belong, if it is stream bytes at some place in full.
fn place_of(data: &[u8], seed: u64) -> Option<u64> {
    let first = u64::from_le_bytes(data.get(..8)?.try_into().ok()?);
    let at = stream::carried_offset(first, seed)?;
    stream::mismatches(data, at, seed)
        .next()
        .is_none()
        .then_some(at)
}

/// Checks datagrams one by one at their place; shared by the socket receiver below and
/// the `tun` transport's peer ([`crate::tun::peer::serve_datagrams`]).
pub(crate) struct DatagramCheck {
    start: Instant,
    seed: u64,
    chk: Checker,
    seen: Datagrams,
    /// (arrived at, length, intact at): for the order check at the end.
    places: Vec<(u64, u64, Option<u64>)>,
    log: Vec<(Instant, Event)>,
}

impl DatagramCheck {
    pub(crate) fn new(seed: u64) -> DatagramCheck {
        DatagramCheck {
            start: Instant::now(),
            seed,
            chk: Checker::new(seed),
            seen: Datagrams::default(),
            places: Vec::new(),
            log: Vec::new(),
        }
    }

    /// One datagram's payload, cut to the read buffer if `truncated`.
    pub(crate) fn datagram(&mut self, data: &[u8], truncated: bool) {
        self.seen.received += 1;
        self.seen.truncated += truncated as u64;
        let at = self.chk.offset + self.chk.carry.len() as u64;
        let place = place_of(data, self.seed);
        if place.is_some_and(|p| p != at) {
            self.seen.out_of_place += 1;
        }
        self.places.push((at, data.len() as u64, place));
        self.chk
            .feed_logged(data, self.seen.received, &mut self.log);
    }

    /// What the receiver saw, `dropped` datagrams lost at its socket.
    pub(crate) fn finish(
        mut self,
        dropped: u64,
        expect: Option<u64>,
        end: StreamEnd,
        error: Option<String>,
    ) -> Received {
        self.chk.finish();
        let mut seen = self.seen;
        seen.dropped = dropped;
        let places = &self.places;
        if seen.out_of_place > 0 && places.iter().all(|p| p.2.is_some()) {
            let mut arrived: Vec<(u64, u64)> = places.iter().map(|p| (p.0, p.1)).collect();
            let mut belong: Vec<(u64, u64)> =
                places.iter().map(|p| (p.2.unwrap_or(0), p.1)).collect();
            arrived.sort_unstable();
            belong.sort_unstable();
            seen.reordered = arrived == belong;
        }
        let mut log = self.log;
        log.push((
            Instant::now(),
            Event::Ended {
                end,
                bytes: self.chk.offset,
                reads: seen.received,
                corrupt_words: self.chk.corrupt,
            },
        ));
        Received {
            elapsed_ms: self.start.elapsed().as_millis() as u64,
            log,
            datagrams: Some(seen),
            ..self.chk.into_received(expect, end, error)
        }
    }
}

/// Reads datagrams on `sock` until the empty one that ends the stream, `idle_timeout`
/// without one, or `cancel`; checks each at its place.
pub fn serve(sock: &UdpSocket, opts: &ReceiverOptions, cancel: &AtomicBool) -> Received {
    let mut check = DatagramCheck::new(opts.seed);
    let mut buf = vec![0u8; MAX_PAYLOAD as usize + 1];
    let mut error = None;
    let mut last = Instant::now();
    let fd = sock.as_raw_fd();
    let end = loop {
        let slice = (last + opts.idle_timeout).min(Instant::now() + Duration::from_millis(50));
        match crate::sys::poll_until(fd, libc::POLLIN, slice) {
            Ok(Some(_)) => {}
            Ok(None) if cancel.load(Ordering::Relaxed) => {
                error = Some("the sender gave up".into());
                break StreamEnd::Failed;
            }
            Ok(None) if Instant::now() >= last + opts.idle_timeout => break StreamEnd::Idle,
            Ok(None) => continue,
            Err(e) => {
                error = Some(format!("poll: {e}"));
                break StreamEnd::Failed;
            }
        }
        last = Instant::now();
        let n = match crate::sys::retry_eintr(|| {
            crate::sys::recv(fd, &mut buf, libc::MSG_TRUNC | libc::MSG_DONTWAIT)
        }) {
            Ok(0) => break StreamEnd::Eof,
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            Err(e) => {
                error = Some(e.to_string());
                break StreamEnd::Failed;
            }
        };
        let kept = n.min(buf.len() - 1);
        check.datagram(&buf[..kept], n > kept);
    };
    check.finish(drops(sock).unwrap_or(0), opts.expect, end, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(at: u64, len: usize) -> Vec<u8> {
        let mut d = vec![0u8; len];
        stream::fill(&mut d, at, 5);
        d
    }

    #[test]
    fn a_datagram_is_placed_by_its_words_only_when_all_of_them_agree() {
        assert_eq!(place_of(&chunk(4096, 4096), 5), Some(4096));
        let mut torn = chunk(4096, 4096);
        torn[2048..].copy_from_slice(&chunk(12288, 2048));
        assert_eq!(place_of(&torn, 5), None, "half rewritten: no one place");
    }

    #[test]
    fn losses_counts_and_order_are_gaps_a_clean_run_has_none() {
        let clean = Datagrams {
            received: 8,
            ..Datagrams::default()
        };
        assert_eq!(clean.gap(8), None);
        assert!(clean.gap(9).unwrap().contains("8 of 9 datagrams arrived"));
        let dropped = Datagrams {
            dropped: 1,
            ..clean
        };
        assert!(dropped.gap(8).unwrap().contains("dropped 1"));
        let moved = Datagrams {
            out_of_place: 2,
            reordered: true,
            ..clean
        };
        assert!(moved.gap(8).unwrap().contains("out of order"));
        // Out of place without being a permutation: a rewrite, for the bytes to judge.
        let rewritten = Datagrams {
            out_of_place: 2,
            ..clean
        };
        assert_eq!(rewritten.gap(8), None);
    }
}
