//! The verifying receiver: reads the stream on a schedule that widens the race window and
//! checks every word against the stream pattern ([`zcsafe_policy::stream`]).
//!
//! Application acknowledgements (for `app-ack` senders): when enabled, after each read the
//! receiver writes the total number of stream bytes it has consumed so far as one 8-byte
//! little-endian word on the same connection ([`crate::app_ack`], shared with the
//! executor that reads them). Counts are cumulative, so a sender may skip any but the
//! last it read. A sender that does not read them must still shut its side down properly
//! (read to EOF before close), or unread acks make its close send a RST.
//!
//! A corrupt stream is diagnosed, not only counted: [`diagnosis`] tells buffer reuse from
//! interleaved, lost or repeated bytes by where the displaced words reappear.

pub mod datagram;
pub mod diagnosis;

use crate::app_ack::AckWriter;
use crate::error::KernelError;
use crate::exposure::{Consumed, Held};
use crate::sock_diag::SockDiag;
pub use diagnosis::{Cause, Diagnosis};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zcsafe_policy::{stream, Event, Mismatch};

/// How the receiver reads: after accepting, wait until no new bytes have arrived for
/// `pause` (the sender is blocked on the window or done), then read at most `slice`
/// bytes every `interval`.
///
/// Waiting for the queue to settle, rather than a fixed time, keeps the race window wide
/// on any machine speed: under TCG in a VM a fixed pause could end before a slow sender
/// reused anything, and the same policy would flip between corrupt and safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadSchedule {
    pub pause: Duration,
    pub slice: usize,
    pub interval: Duration,
}

/// Named read schedules (`--reader`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReaderSpeed {
    /// Reads as fast as it can, in 256 KiB calls: the narrowest race window.
    Fast,
    #[default]
    /// The default: wait until the queue is quiet for 300 ms, then 16 KiB every 2 ms.
    /// Pages stay queued at the receiver (and unsent at the sender) long enough for an
    /// early reuse to show.
    Slow,
    /// Quiet for 1 s, then 4 KiB every 5 ms.
    Crawl,
    /// `PAUSE_MS,SLICE_BYTES,INTERVAL_MS`.
    Custom(ReadSchedule),
}

impl std::str::FromStr for ReaderSpeed {
    type Err = KernelError;

    /// `fast`, `slow`, `crawl` or `PAUSE_MS,SLICE_BYTES,INTERVAL_MS` (what
    /// [`ReaderSpeed::label`] prints).
    fn from_str(s: &str) -> Result<ReaderSpeed, KernelError> {
        Ok(match s {
            "fast" => ReaderSpeed::Fast,
            "slow" => ReaderSpeed::Slow,
            "crawl" => ReaderSpeed::Crawl,
            custom => {
                let bad = || {
                    KernelError::Usage(format!(
                        "reader {custom:?}: use fast, slow, crawl or PAUSE_MS,SLICE_BYTES,INTERVAL_MS"
                    ))
                };
                let v: Vec<u64> = custom
                    .split(',')
                    .map(|p| p.trim().parse::<u64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad())?;
                let [pause, slice, interval] = v[..] else {
                    return Err(bad());
                };
                if slice == 0 || slice > 64 << 20 {
                    return Err(bad());
                }
                ReaderSpeed::Custom(ReadSchedule {
                    pause: Duration::from_millis(pause),
                    slice: slice as usize,
                    interval: Duration::from_millis(interval),
                })
            }
        })
    }
}

impl ReaderSpeed {
    pub fn schedule(&self) -> ReadSchedule {
        let ms = Duration::from_millis;
        match self {
            ReaderSpeed::Fast => ReadSchedule {
                pause: Duration::ZERO,
                slice: 256 << 10,
                interval: Duration::ZERO,
            },
            ReaderSpeed::Slow => ReadSchedule {
                pause: ms(300),
                slice: 16 << 10,
                interval: ms(2),
            },
            ReaderSpeed::Crawl => ReadSchedule {
                pause: ms(1000),
                slice: 4 << 10,
                interval: ms(5),
            },
            ReaderSpeed::Custom(s) => *s,
        }
    }

    pub fn label(&self) -> String {
        match self {
            ReaderSpeed::Fast => "fast".into(),
            ReaderSpeed::Slow => "slow".into(),
            ReaderSpeed::Crawl => "crawl".into(),
            ReaderSpeed::Custom(s) => format!(
                "{},{},{}",
                s.pause.as_millis(),
                s.slice,
                s.interval.as_millis()
            ),
        }
    }
}

/// What the receiver needs to know.
#[derive(Clone, Debug)]
pub struct ReceiverOptions {
    pub seed: u64,
    /// The exact stream length expected; `None` accepts any length.
    pub expect: Option<u64>,
    pub reader: ReaderSpeed,
    /// Write consumed-byte counts back (see the module doc).
    pub app_ack: bool,
    /// Give up when no byte arrives for this long.
    pub idle_timeout: Duration,
    /// Give up waiting for a connection after this long.
    pub accept_timeout: Duration,
    /// Where the receiver publishes how far it may have read, for the sender's exposure
    /// measurement ([`crate::exposure`]); nobody looks when the sender is another program.
    pub consumed: Consumed,
    /// A sock_diag socket in the sender's network namespace: with it the receiver also
    /// samples the sender's unacknowledged bytes ([`Held::max_unacked`]).
    pub sender_queues: Option<Arc<SockDiag>>,
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        ReceiverOptions {
            seed: 0,
            expect: None,
            reader: ReaderSpeed::Slow,
            app_ack: false,
            idle_timeout: Duration::from_secs(20),
            accept_timeout: Duration::from_secs(20),
            consumed: Consumed::default(),
            sender_queues: None,
        }
    }
}

pub use zcsafe_policy::StreamEnd;

/// What the receiver saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    pub bytes: u64,
    pub expected: Option<u64>,
    pub corrupt_words: u64,
    /// Stream offset of the first wrong word.
    pub first_corrupt: Option<u64>,
    /// The stream offset the first wrong word's bytes were written for.
    pub meant_for: Option<u64>,
    /// What went wrong, when a word was wrong (absent from results older than it).
    #[serde(default)]
    pub diagnosis: Option<Diagnosis>,
    /// How much of the stream the kernel held while the receiver read (absent from
    /// results older than it).
    #[serde(default)]
    pub held: Held,
    /// What the datagram receiver of a UDP run counted ([`datagram`]); `None` on TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datagrams: Option<datagram::Datagrams>,
    pub end: StreamEnd,
    /// Error text for `Failed` ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub elapsed_ms: u64,
    /// Notable reads (first ones, corrupt ones, the end), with their time since the
    /// connection was accepted; the trace merges them with the sender's steps.
    #[serde(skip)]
    pub log: Vec<(Instant, Event)>,
}

impl Received {
    /// `Some(n)`: the first wrong bytes overwrote the bytes meant for their place with those
    /// of a stream offset `n` bytes later, so the sender reused its buffer `n` bytes of
    /// stream too early ([`Diagnosis::reused_early_by`]; interleaved bytes are not reuse).
    pub fn reused_early_by(&self) -> Option<u64> {
        self.diagnosis.as_ref().and_then(Diagnosis::reused_early_by)
    }

    pub fn is_corrupt(&self) -> bool {
        self.corrupt_words > 0
    }

    /// Every byte arrived, exactly, and none was wrong.
    pub fn is_intact(&self) -> bool {
        !self.is_corrupt() && self.end == StreamEnd::Eof && self.length_problem().is_none()
    }

    /// A short or over-long stream, in words.
    pub fn length_problem(&self) -> Option<String> {
        match self.expected {
            Some(e) if self.bytes < e => {
                Some(format!("short stream: {} of {e} bytes arrived", self.bytes))
            }
            Some(e) if self.bytes > e => Some(format!(
                "over-long stream: {} bytes, {e} expected",
                self.bytes
            )),
            _ => None,
        }
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        let mut s = format!("received {} bytes", self.bytes);
        if let Some(d) = &self.datagrams {
            s += &format!(" in {} datagrams", d.received);
        }
        if self.is_corrupt() {
            s += &format!(
                ", {} corrupt words, first at stream offset {}",
                self.corrupt_words,
                self.first_corrupt.unwrap_or(0)
            );
            if let Some(d) = &self.diagnosis {
                s += &format!(" {d}");
            }
        } else {
            s += ", all words intact";
        }
        if let Some(p) = self.length_problem() {
            s += &format!("; {p}");
        }
        match self.end {
            StreamEnd::Eof => {}
            StreamEnd::Failed => {
                s += &format!("; read failed: {}", self.error.as_deref().unwrap_or("?"))
            }
            StreamEnd::Idle => s += "; no data for the idle timeout",
            StreamEnd::NoConnection => s += "; no connection arrived",
        }
        s
    }
}

/// Incremental checker: words may be split across reads. Shared with the `tun`
/// transport's peer ([`crate::tun`]), which checks what it accepts in stream order.
pub(crate) struct Checker {
    seed: u64,
    /// Stream bytes checked so far.
    offset: u64,
    carry: Vec<u8>,
    corrupt: u64,
    first: Option<stream::Mismatch>,
    runs: diagnosis::Runs,
}

impl Checker {
    pub(crate) fn new(seed: u64) -> Checker {
        Checker {
            seed,
            offset: 0,
            carry: Vec::new(),
            corrupt: 0,
            first: None,
            runs: diagnosis::Runs::default(),
        }
    }

    /// Checks the whole words of what has arrived; returns how many were wrong.
    fn feed(&mut self, data: &[u8]) -> u64 {
        let mut carry = std::mem::take(&mut self.carry);
        carry.extend_from_slice(data);
        let whole = carry.len() / 8 * 8;
        let bad = self.check(&carry[..whole]);
        carry.drain(..whole);
        self.carry = carry;
        bad
    }

    /// Checks `data`, the next bytes of the stream, and logs the check in `log` for the
    /// trace when it is one of the first `reads` or found wrong words.
    pub(crate) fn feed_logged(
        &mut self,
        data: &[u8],
        reads: u64,
        log: &mut Vec<(Instant, Event)>,
    ) -> u64 {
        let at = self.offset + self.carry.len() as u64;
        let bad = self.feed(data);
        if reads <= 8 || (bad > 0 && log.len() < 200) {
            let first = self
                .first
                .filter(|m| bad > 0 && m.offset >= at)
                .map(|m| Mismatch {
                    offset: m.offset,
                    meant_for: m.meant_for,
                });
            log.push((
                Instant::now(),
                Event::Checked {
                    offset: at,
                    len: data.len() as u64,
                    corrupt_words: bad,
                    first,
                },
            ));
        }
        bad
    }

    /// Wrong words so far.
    pub(crate) fn corrupt(&self) -> u64 {
        self.corrupt
    }

    /// Checks the trailing partial word, at the end of the stream.
    pub(crate) fn finish(&mut self) {
        let rest = std::mem::take(&mut self.carry);
        self.check(&rest);
    }

    fn check(&mut self, data: &[u8]) -> u64 {
        let mut bad = 0;
        for m in stream::mismatches(data, self.offset, self.seed) {
            bad += 1;
            self.first.get_or_insert(m);
            self.runs.note(m);
        }
        self.offset += data.len() as u64;
        self.corrupt += bad;
        bad
    }

    /// What the receiver saw, once the stream ended (after [`Checker::finish`]); the
    /// caller adds the time and the log.
    pub(crate) fn into_received(
        self,
        expected: Option<u64>,
        end: StreamEnd,
        error: Option<String>,
    ) -> Received {
        Received {
            bytes: self.offset,
            expected,
            corrupt_words: self.corrupt,
            first_corrupt: self.first.map(|m| m.offset),
            meant_for: self.first.and_then(|m| m.meant_for),
            diagnosis: self.runs.diagnose(self.offset, expected),
            held: Held::default(),
            datagrams: None,
            end,
            error,
            elapsed_ms: 0,
            log: Vec::new(),
        }
    }
}

/// Binds a listening socket (`port` 0 picks a free one).
pub fn listen(addr: SocketAddr) -> Result<TcpListener, KernelError> {
    TcpListener::bind(addr).map_err(|e| KernelError::io(format!("listening on {addr}"), e))
}

/// `setsockopt(SO_RCVBUF)` on the listening socket, before any connection arrives: the
/// accepted socket inherits it (`sk_clone_lock`), the window scale of the SYN-ACK is
/// chosen from it (`tcp_openreq_init_rwin`), and a locked buffer turns receive
/// autotuning off (`tcp_rcv_space_adjust` checks `SOCK_RCVBUF_LOCK`) — see [socket(7)].
///
/// [socket(7)]: https://man7.org/linux/man-pages/man7/socket.7.html
pub fn set_rcvbuf(listener: &TcpListener, bytes: u32) -> Result<(), KernelError> {
    let v = i32::try_from(bytes)
        .map_err(|_| KernelError::Usage(format!("SO_RCVBUF {bytes} is too large")))?;
    crate::sys::set_int_opt(listener.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, v)
        .map_err(|e| KernelError::io("setsockopt(SO_RCVBUF)", e))
}

/// Accepts one connection and verifies the stream on it.
pub fn serve_one(listener: &TcpListener, opts: &ReceiverOptions) -> Received {
    serve_one_until(listener, opts, &AtomicBool::new(false))
}

/// [`serve_one`] that stops waiting for a connection once `cancel` is set (the sender
/// program exited without connecting).
pub fn serve_one_until(
    listener: &TcpListener,
    opts: &ReceiverOptions,
    cancel: &AtomicBool,
) -> Received {
    let start = Instant::now();
    let deadline = start + opts.accept_timeout;
    let nothing = |end, error: Option<String>| Received {
        elapsed_ms: start.elapsed().as_millis() as u64,
        ..Checker::new(opts.seed).into_received(opts.expect, end, error)
    };
    loop {
        let slice = deadline.min(Instant::now() + Duration::from_millis(50));
        match crate::sys::poll_until(listener.as_raw_fd(), libc::POLLIN, slice) {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() >= deadline || cancel.load(Ordering::Relaxed) => {
                return nothing(StreamEnd::NoConnection, None)
            }
            Ok(None) => {}
            Err(e) => return nothing(StreamEnd::Failed, Some(format!("poll: {e}"))),
        }
    }
    match listener.accept() {
        Ok((s, _)) => receive_on(s, opts),
        Err(e) => nothing(StreamEnd::Failed, Some(format!("accept: {e}"))),
    }
}

/// Standalone receiver: listens on `addr`, verifies one stream and returns what it saw.
pub fn receive(addr: SocketAddr, opts: &ReceiverOptions) -> Result<Received, KernelError> {
    let l = listen(addr)?;
    Ok(serve_one(&l, opts))
}

/// Reads the stream on an accepted connection until EOF, on the configured schedule.
/// Waits until no new bytes have been queued for `quiet`, or `cap` passed: the receive
/// queue then holds all the sender could push. Polls `FIONREAD` every few milliseconds.
fn settle(sock: &TcpStream, quiet: Duration, cap: Duration) {
    if quiet.is_zero() {
        return;
    }
    let start = Instant::now();
    let mut queued = crate::sys::fionread(sock).unwrap_or(0);
    let mut changed = start;
    while changed.elapsed() < quiet && start.elapsed() < cap {
        std::thread::sleep(Duration::from_millis(5));
        let now = crate::sys::fionread(sock).unwrap_or(queued);
        if now != queued {
            queued = now;
            changed = Instant::now();
        }
    }
}

pub fn receive_on(mut sock: TcpStream, opts: &ReceiverOptions) -> Received {
    let start = Instant::now();
    let sched = opts.reader.schedule();
    let mut log = Vec::new();
    let mut chk = Checker::new(opts.seed);
    let mut buf = vec![0u8; sched.slice];
    let mut bytes = 0u64;
    let mut acks = AckWriter::default();
    let mut reads = 0u64;
    let mut error = None;
    log.push((
        start,
        Event::Accepted {
            reader: opts.reader.label(),
            pause_ms: sched.pause.as_millis() as u64,
            slice: sched.slice as u64,
        },
    ));
    settle(&sock, sched.pause, opts.idle_timeout);
    let mut held = Held::default();
    let ends = sock.local_addr().and_then(|l| Ok((l, sock.peer_addr()?)));
    let end = loop {
        let deadline = Instant::now() + opts.idle_timeout;
        match crate::sys::poll_until(sock.as_raw_fd(), libc::POLLIN, deadline) {
            Ok(Some(_)) => {}
            Ok(None) => break StreamEnd::Idle,
            Err(e) => {
                error = Some(format!("poll: {e}"));
                break StreamEnd::Failed;
            }
        }
        opts.consumed.will_read_upto(bytes + buf.len() as u64);
        let n = match sock.read(&mut buf) {
            Ok(0) => break StreamEnd::Eof,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                error = Some(e.to_string());
                break StreamEnd::Failed;
            }
        };
        bytes += n as u64;
        reads += 1;
        let unacked = match (&opts.sender_queues, &ends) {
            // The sender's socket is bound to our peer address and connected to ours.
            (Some(diag), Ok((local, peer))) => diag
                .tcp_queues(*peer, *local)
                .ok()
                .flatten()
                .map(|q| q.unacked),
            _ => None,
        };
        // What this read left behind, and what the sender has not had acknowledged.
        held.sample(crate::sys::fionread(&sock).unwrap_or(0), unacked);
        chk.feed_logged(&buf[..n], reads, &mut log);
        if opts.app_ack {
            acks.send(&sock, bytes);
        }
        if !sched.interval.is_zero() {
            std::thread::sleep(sched.interval);
        }
    };
    chk.finish();
    if opts.app_ack {
        acks.send(&sock, bytes);
    }
    log.push((
        Instant::now(),
        Event::Ended {
            end,
            bytes,
            reads,
            corrupt_words: chk.corrupt,
        },
    ));
    let _ = sock.shutdown(std::net::Shutdown::Write);
    Received {
        elapsed_ms: start.elapsed().as_millis() as u64,
        log,
        held,
        ..chk.into_received(opts.expect, end, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn checker_handles_words_split_across_reads() {
        let mut data = vec![0u8; 100];
        stream::fill(&mut data, 0, 7);
        data[50] ^= 1; // word 6 (bytes 48..56)
        let mut c = Checker::new(7);
        for piece in data.chunks(13) {
            c.feed(piece);
        }
        c.finish();
        assert_eq!(c.corrupt, 1);
        assert_eq!(c.first.unwrap().offset, 48);
    }

    const SEED: u64 = 11;
    /// The sender's 64 KiB chunks of a 256 KiB stream.
    const CHUNK: u64 = 64 << 10;
    const STREAM: u64 = 4 * CHUNK;

    /// The stream bytes of `pieces`, in the order they arrived.
    fn arrived(pieces: &[std::ops::Range<u64>]) -> Vec<u8> {
        let mut data = Vec::new();
        for r in pieces {
            let mut p = vec![0u8; (r.end - r.start) as usize];
            stream::fill(&mut p, r.start, SEED);
            data.extend_from_slice(&p);
        }
        data
    }

    /// The whole stream, as sent.
    fn intact() -> Vec<u8> {
        arrived(std::slice::from_ref(&(0..STREAM)))
    }

    /// What the receiver makes of `data`, read 1000 bytes at a time (words split across
    /// reads), from a sender that meant to send [`STREAM`] bytes.
    fn received(data: &[u8]) -> Received {
        let mut c = Checker::new(SEED);
        for read in data.chunks(1000) {
            c.feed(read);
        }
        c.finish();
        c.into_received(Some(STREAM), StreamEnd::Eof, None)
    }

    fn assert_diagnosed(data: &[u8], cause: Option<Cause>, summary: &str) -> Received {
        let r = received(data);
        assert_eq!(r.diagnosis.map(|d| d.cause), cause, "{}", r.summary());
        assert_eq!(r.summary(), summary);
        r
    }

    /// The io_uring case of issue 13: four SEND_ZC in flight, chunk 1's send comes back
    /// short at 108976 and its rest is retried after chunk 2 went out. No buffer was
    /// reused; the bytes meant for 108976 arrive one chunk later.
    #[test]
    fn two_in_flight_sends_whose_bytes_interleave_are_not_called_reuse() {
        let short = 108976;
        let data = arrived(&[
            0..short,
            2 * CHUNK..3 * CHUNK,
            short..2 * CHUNK,
            3 * CHUNK..STREAM,
        ]);
        let r = assert_diagnosed(
            &data,
            Some(Cause::Interleaved {
                at: short,
                carries: 2 * CHUNK,
                arrives_at: short + CHUNK,
            }),
            "received 262144 bytes, 10954 corrupt words, first at stream offset 108976 \
             carrying the bytes meant for 131072 (interleaved, not reused: the bytes meant \
             for 108976 arrived later, at stream offset 174512)",
        );
        assert_eq!(r.reused_early_by(), None);
        assert!(r.is_corrupt(), "the stream is still wrong");
    }

    #[test]
    fn skipped_bytes_are_lost() {
        let data = arrived(&[0..CHUNK, CHUNK + 8192..STREAM]);
        assert_diagnosed(
            &data,
            Some(Cause::Lost {
                at: CHUNK,
                carries: CHUNK + 8192,
            }),
            "received 253952 bytes, 23552 corrupt words, first at stream offset 65536 \
             carrying the bytes meant for 73728 (lost: the 8192 bytes meant for \
             65536..73728 never arrived and nothing stands in their place); \
             short stream: 253952 of 262144 bytes arrived",
        );
    }

    #[test]
    fn repeated_bytes_are_duplicated() {
        let data = arrived(&[0..2 * CHUNK, 2 * CHUNK - 32768..STREAM]);
        assert_diagnosed(
            &data,
            Some(Cause::Duplicated {
                at: 2 * CHUNK,
                carries: 2 * CHUNK - 32768,
                bytes: 32768,
            }),
            "received 294912 bytes, 20480 corrupt words, first at stream offset 131072 \
             carrying the bytes meant for 98304 (duplicated: the 32768 bytes from stream \
             offset 98304 arrived twice); over-long stream: 294912 bytes, 262144 expected",
        );
    }

    /// Chunk 3 filled into chunk 1's buffer before chunk 1 went out: chunk 1's bytes never
    /// arrive, chunk 3's arrive twice.
    #[test]
    fn a_later_chunk_in_place_of_one_that_never_arrives_is_reuse() {
        let data = arrived(&[0..CHUNK, 3 * CHUNK..STREAM, 2 * CHUNK..STREAM]);
        let r = assert_diagnosed(
            &data,
            Some(Cause::Overwritten {
                at: CHUNK,
                carries: 3 * CHUNK,
            }),
            "received 262144 bytes, 8192 corrupt words, first at stream offset 65536 \
             carrying the bytes meant for 196608 (buffer reused 131072 bytes too early)",
        );
        assert_eq!(r.reused_early_by(), Some(2 * CHUNK));
    }

    /// One buffer reused at once, as `zc_sender --mode zc-naive` does: chunk 1's place
    /// carries chunk 2, chunk 2's chunk 3, and chunk 3 arrives twice. Near offset 65536
    /// this looks like 65536 skipped bytes, but the stream has its full length.
    #[test]
    fn a_buffer_refilled_for_each_next_chunk_is_reuse_not_loss() {
        let data = arrived(&[0..CHUNK, 2 * CHUNK..STREAM, 3 * CHUNK..STREAM]);
        assert_diagnosed(
            &data,
            Some(Cause::Overwritten {
                at: CHUNK,
                carries: 2 * CHUNK,
            }),
            "received 262144 bytes, 16384 corrupt words, first at stream offset 65536 \
             carrying the bytes meant for 131072 (buffer reused 65536 bytes too early)",
        );
    }

    #[test]
    fn zeroes_are_not_stream_bytes() {
        let mut data = intact();
        data[CHUNK as usize..2 * CHUNK as usize].fill(0);
        assert_diagnosed(
            &data,
            Some(Cause::Foreign { at: CHUNK }),
            "received 262144 bytes, 8192 corrupt words, first at stream offset 65536 \
             (not stream bytes)",
        );
    }

    #[test]
    fn an_intact_stream_has_no_diagnosis() {
        assert_diagnosed(&intact(), None, "received 262144 bytes, all words intact");
    }

    #[test]
    fn reader_speeds_parse_and_reject_nonsense() {
        assert_eq!("slow".parse::<ReaderSpeed>().unwrap(), ReaderSpeed::Slow);
        let c = "10,4096,1".parse::<ReaderSpeed>().unwrap();
        assert_eq!(c.schedule().slice, 4096);
        assert_eq!(c.label(), "10,4096,1");
        assert!("quick".parse::<ReaderSpeed>().is_err());
        assert!("1,0,1".parse::<ReaderSpeed>().is_err());
        assert!("1,2".parse::<ReaderSpeed>().is_err());
    }

    /// A sender that reads the receiver's acks and a stream that is too long.
    #[test]
    fn app_acks_are_cumulative_and_over_long_streams_are_reported() {
        let l = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let opts = ReceiverOptions {
            seed: 3,
            expect: Some(4096),
            reader: ReaderSpeed::Custom(ReadSchedule {
                pause: Duration::ZERO,
                slice: 1024,
                interval: Duration::ZERO,
            }),
            app_ack: true,
            ..ReceiverOptions::default()
        };
        let rx = std::thread::spawn(move || serve_one(&l, &opts));
        let mut s = TcpStream::connect(addr).unwrap();
        let mut data = vec![0u8; 4096 + 8];
        stream::fill(&mut data, 0, 3);
        s.write_all(&data).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut acks = Vec::new();
        s.read_to_end(&mut acks).unwrap();
        let r = rx.join().unwrap();
        assert_eq!(r.bytes, 4104);
        assert!(!r.is_corrupt());
        assert!(!r.is_intact(), "an over-long stream is not intact");
        assert!(r.length_problem().unwrap().contains("over-long"));
        let counts: Vec<u64> = acks
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        assert_eq!(counts.last(), Some(&4104));
    }
}
