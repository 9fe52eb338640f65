//! The peer's loop: segments from the device into the [`Connection`], the stream it
//! accepts into the receiver's checker, its ACKs back into the device — until the
//! stream ends, the kernel resets, or nothing arrives for the idle timeout.

use super::connection::{Connection, PeerStats, State};
use super::device::TunDevice;
use super::script::Decisions;
use super::segment::{udp_datagram, Segment, SegmentError};
use crate::app_ack;
use crate::receiver::datagram::DatagramCheck;
use crate::receiver::{Checker, Received, ReceiverOptions, StreamEnd};
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use zcsafe_policy::{stream, Event, PeerScript};

/// How long the peer goes on after the kernel's FIN to close its own side politely.
const LINGER: Duration = Duration::from_secs(2);
/// The longest one wait lasts, so a cancelled run is noticed.
const SLICE: Duration = Duration::from_millis(50);

/// What the peer saw: the stream as the receiver reports it, and its own counts.
#[derive(Clone, Debug)]
pub struct PeerReport {
    pub received: Received,
    pub stats: PeerStats,
}

/// Serves one connection to `me` on `dev`, following `script`; `cancel` ends the wait
/// for a SYN (the sender could not connect).
pub fn serve(
    dev: &mut TunDevice,
    me: SocketAddrV4,
    script: PeerScript,
    opts: &ReceiverOptions,
    cancel: &AtomicBool,
) -> PeerReport {
    let start = Instant::now();
    let mut conn = Connection::new(me, Decisions::new(script));
    let mut chk = Checker::new(opts.seed);
    let mut log = vec![(
        start,
        Event::Accepted {
            reader: format!("tun peer {}", script.script()),
            pause_ms: script.hold_acks_ms.unwrap_or(0) as u64,
            slice: super::connection::MSS as u64,
        },
    )];
    let mut reads = 0u64;
    let mut error = None;
    let mut last_activity = Instant::now();
    let mut fin_at: Option<Instant> = None;
    let end = loop {
        let now = Instant::now();
        let idle = match conn.state {
            State::Listen => opts.accept_timeout,
            _ => opts.idle_timeout,
        };
        if conn.state == State::Listen && cancel.load(Ordering::Relaxed) {
            break StreamEnd::NoConnection;
        }
        if now >= last_activity + idle {
            break match conn.state {
                State::Listen => StreamEnd::NoConnection,
                _ => StreamEnd::Idle,
            };
        }
        if conn.state == State::Closed || fin_at.is_some_and(|t| now >= t + LINGER) {
            break StreamEnd::Eof;
        }
        if conn.state == State::Reset {
            if conn.fin_received() {
                break StreamEnd::Eof;
            }
            error = Some(format!(
                "the sender reset the connection after {} stream bytes",
                conn.accepted()
            ));
            break StreamEnd::Failed;
        }
        let mut deadline = (now + SLICE).min(last_activity + idle);
        if let Some(t) = conn.next_timer() {
            deadline = deadline.min(t);
        }
        let packet = match dev.recv(deadline) {
            Ok(p) => p,
            Err(e) => {
                error = Some(e.to_string());
                break StreamEnd::Failed;
            }
        };
        if let Some(packet) = packet {
            match Segment::parse(packet) {
                Ok(seg) => {
                    last_activity = Instant::now();
                    let arrival = conn.on_segment(&seg, last_activity);
                    for (_, bytes) in &arrival.accepted {
                        reads += 1;
                        chk.feed_logged(bytes, reads, &mut log);
                    }
                    if let Some((at, bytes)) = &arrival.duplicate {
                        conn.stats.stale_words +=
                            stream::mismatches(bytes, *at, opts.seed).count() as u64;
                    }
                    if opts.app_ack && !arrival.accepted.is_empty() {
                        conn.queue_data(&app_ack::encode(conn.accepted()));
                    }
                    if conn.fin_received() && fin_at.is_none() {
                        fin_at = Some(last_activity);
                    }
                }
                // IPv6 neighbour discovery and the like: not ours.
                Err(SegmentError::NotIpv4(_) | SegmentError::NotTcp(_)) => {
                    conn.stats.ignored += 1;
                }
                Err(e) => {
                    error = Some(format!("a packet from the kernel: {e}"));
                    break StreamEnd::Failed;
                }
            }
        }
        let now = Instant::now();
        while let Some(out) = conn.poll_transmit(now) {
            // The exposure bound ([`crate::exposure`]) of the remote class: the kernel
            // holds a page until the ACK that covers it (`tcp_clean_rtx_queue` frees it),
            // so the bound is raised before that ACK leaves, never when the peer merely
            // has the bytes.
            opts.consumed.will_read_upto(out.acks_stream_to);
            if let Err(e) = dev.send(&out.packet) {
                error = Some(e.to_string());
                break;
            }
        }
        if error.is_some() {
            break StreamEnd::Failed;
        }
    };
    chk.finish();
    log.push((
        Instant::now(),
        Event::Ended {
            end,
            bytes: conn.accepted(),
            reads,
            corrupt_words: chk.corrupt(),
        },
    ));
    let stats = conn.stats;
    PeerReport {
        received: Received {
            elapsed_ms: start.elapsed().as_millis() as u64,
            log,
            ..chk.into_received(opts.expect, end, error)
        },
        stats,
    }
}

/// The peer of a UDP run: every UDP packet to `port` the device hands over is the next
/// datagram (checked as [`crate::receiver::datagram::serve`] checks them), the empty one the end. No answers, no ACKs: the kernel
/// let go of the pages when `tun_net_xmit` copied them (`skb_orphan_frags_rx`).
pub fn serve_datagrams(
    dev: &mut TunDevice,
    port: u16,
    opts: &ReceiverOptions,
    cancel: &AtomicBool,
) -> Received {
    let mut check = DatagramCheck::new(opts.seed);
    let mut error = None;
    let mut last = Instant::now();
    let mut ignored = 0u64;
    let end = loop {
        if cancel.load(Ordering::Relaxed) {
            error = Some("the sender gave up".into());
            break StreamEnd::Failed;
        }
        let now = Instant::now();
        if now >= last + opts.idle_timeout {
            break StreamEnd::Idle;
        }
        let packet = match dev.recv((now + SLICE).min(last + opts.idle_timeout)) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(e) => {
                error = Some(e.to_string());
                break StreamEnd::Failed;
            }
        };
        match udp_datagram(packet) {
            Ok((p, payload)) if p == port => {
                last = Instant::now();
                if payload.is_empty() {
                    break StreamEnd::Eof;
                }
                check.datagram(payload, false);
            }
            // IPv6 neighbour discovery, other ports: not ours.
            Ok(_) | Err(SegmentError::NotIpv4(_) | SegmentError::NotUdp(_)) => ignored += 1,
            Err(e) => {
                error = Some(format!(
                    "a packet from the kernel: {e} ({ignored} ignored before)"
                ));
                break StreamEnd::Failed;
            }
        }
    };
    check.finish(0, opts.expect, end, error)
}
