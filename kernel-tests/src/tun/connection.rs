//! The peer's side of one TCP connection, sans I/O: segments in, segments out, bytes
//! accepted in stream order.
//!
//! What it implements (RFC 9293 receive side, and just enough of the send side for the
//! application acknowledgements of `app-ack` senders): the passive handshake with MSS
//! 4096 and window scaling when the kernel offers it; cumulative ACKs; segments out of
//! order kept within the window and delivered when the gap fills; retransmitted and
//! duplicate segments accepted and ACKed again; FIN and RST; its own data retransmitted
//! after 200 ms without an ACK. What it leaves switched off in the SYN-ACK, so the kernel
//! never uses it (`tcp_parse_options` only enables what both sides sent): SACK and
//! timestamps. Never implemented: urgent data, window probes' zero window (the window
//! never closes: accepted bytes leave at once), congestion control of its own data.

use super::script::Decisions;
use super::segment::{Flags, Options, Segment};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

/// MSS the peer advertises: the device's MTU ([`super::MTU`]) minus the IPv4 and TCP
/// headers, so one full segment is one 4 KiB page of the stream.
pub const MSS: u16 = 4096;
/// How long the peer waits for the kernel to ACK its own data or FIN before resending.
const RESEND_AFTER: Duration = Duration::from_millis(200);
/// Initial sequence number of the peer: fixed, so the same run writes the same bytes.
const ISS: u32 = 0x7a63_0000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Waiting for the kernel's SYN.
    Listen,
    /// SYN-ACK sent.
    SynReceived,
    Established,
    /// The kernel's FIN arrived in order; ours is not sent yet.
    CloseWait,
    /// Our FIN sent, not yet ACKed.
    LastAck,
    /// Our FIN ACKed.
    Closed,
    /// The kernel sent RST.
    Reset,
}

/// What the peer counted, for the evidence of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PeerStats {
    /// TCP segments read from the device for this connection.
    pub segments: u64,
    /// Of those, the ones that carried payload.
    pub data_segments: u64,
    /// Data segments that started in sequence space seen before: the kernel read the
    /// pages again from its retransmit queue.
    pub retransmitted: u64,
    /// Data segments the script lost (their first transmission).
    pub lost: u64,
    /// Data segments that arrived beyond a gap and were kept.
    pub out_of_order: u64,
    /// Stream words of retransmitted bytes the peer had already accepted that differ
    /// from the stream: the page was rewritten while the retransmit queue held it (a
    /// real peer discards those bytes, so the stream is not corrupt by them).
    pub stale_words: u64,
    /// ACK segments the peer sent.
    pub acks: u64,
    /// Packets that were not TCP to the peer (IPv6 router solicitations, other ports).
    pub ignored: u64,
    /// The window the peer advertised, bytes.
    pub window: u32,
    /// The shift the peer advertised (`None`: the kernel offered no window scaling).
    pub wscale: Option<u8>,
}

/// What one segment from the kernel did.
#[derive(Debug, Default)]
pub struct Arrival {
    /// Bytes that extend the stream, in order: (stream offset, bytes).
    pub accepted: Vec<(u64, Vec<u8>)>,
    /// Retransmitted bytes the peer had already accepted: (stream offset, bytes).
    pub duplicate: Option<(u64, Vec<u8>)>,
}

/// A segment for the kernel, and how far its ACK acknowledges the stream.
#[derive(Debug)]
pub struct Outgoing {
    pub packet: Vec<u8>,
    /// Stream bytes this ACK acknowledges, for the exposure bound.
    pub acks_stream_to: u64,
}

/// One connection from the kernel to the peer.
#[derive(Debug)]
pub struct Connection {
    me: SocketAddrV4,
    kernel: Option<SocketAddrV4>,
    pub state: State,
    /// The kernel's initial sequence number.
    irs: u32,
    /// Stream bytes accepted in order.
    rcv: u64,
    /// End of the stream space seen so far (first transmissions start here).
    highest: u64,
    /// Out-of-order bytes by stream offset.
    ooo: BTreeMap<u64, Vec<u8>>,
    /// Stream offset of the kernel's FIN, once seen.
    fin_at: Option<u64>,
    fin_received: bool,
    our_shift: u8,
    their_shift: u8,
    their_window: u32,
    /// Our bytes not yet ACKed by the kernel, from sequence `snd_una`.
    outbox: Vec<u8>,
    /// Of those, how many were sent.
    out_sent: usize,
    snd_una: u32,
    fin_sent: bool,
    last_sent: Option<Instant>,
    synack_due: bool,
    ack_due: Option<Instant>,
    ip_id: u16,
    decisions: Decisions,
    /// Set by [`Connection::follow_schedule`]: the window every segment advertises,
    /// instead of the script's.
    window_override: Option<u32>,
    /// Set by [`Connection::follow_schedule`]: ACKs go out only by [`Connection::ack_now`].
    manual_acks: bool,
    pub stats: PeerStats,
}

impl Connection {
    /// A peer listening on `me`.
    pub fn new(me: SocketAddrV4, decisions: Decisions) -> Connection {
        Connection {
            me,
            kernel: None,
            state: State::Listen,
            irs: 0,
            rcv: 0,
            highest: 0,
            ooo: BTreeMap::new(),
            fin_at: None,
            fin_received: false,
            our_shift: 0,
            their_shift: 0,
            their_window: 0,
            outbox: Vec::new(),
            out_sent: 0,
            snd_una: ISS.wrapping_add(1),
            fin_sent: false,
            last_sent: None,
            synack_due: false,
            ack_due: None,
            ip_id: 0,
            stats: PeerStats {
                window: decisions.window(),
                ..PeerStats::default()
            },
            decisions,
            window_override: None,
            manual_acks: false,
        }
    }

    /// The schedule replay ([`crate::schedule`]) decides every ACK and window: the
    /// SYN-ACK and every later segment advertise `window` bytes until
    /// [`Connection::ack_now`] names another, and data never makes an ACK due by itself.
    pub fn follow_schedule(&mut self, window: u32) {
        self.window_override = Some(window);
        self.manual_acks = true;
    }

    /// An ACK for everything accepted so far, advertising `window` bytes (from now on).
    pub fn ack_now(&mut self, window: u32, now: Instant) -> Option<Outgoing> {
        self.window_override = Some(window);
        self.ack_due = Some(now);
        self.poll_transmit(now)
    }

    /// The window advertised, bytes: the schedule's, else the script's.
    fn advertised(&self) -> u32 {
        self.window_override.unwrap_or(self.decisions.window())
    }

    /// Stream bytes accepted in order so far.
    pub fn accepted(&self) -> u64 {
        self.rcv
    }

    /// Whether the kernel's FIN arrived in order: the stream ended.
    pub fn fin_received(&self) -> bool {
        self.fin_received
    }

    fn rcv_nxt(&self) -> u32 {
        self.irs
            .wrapping_add(1)
            .wrapping_add(self.rcv as u32)
            .wrapping_add(self.fin_received as u32)
    }

    /// The stream offset of sequence number `seq` (the stream starts after the SYN).
    pub fn offset_of(&self, seq: u32) -> u64 {
        let base = self.irs.wrapping_add(1).wrapping_add(self.rcv as u32);
        let delta = seq.wrapping_sub(base) as i32 as i64;
        (self.rcv as i64 + delta).max(0) as u64
    }

    /// Queues bytes for the kernel (application acknowledgements); they go out with the
    /// next ACK.
    pub fn queue_data(&mut self, bytes: &[u8]) {
        self.outbox.extend_from_slice(bytes);
    }

    /// Takes one segment from the kernel.
    pub fn on_segment(&mut self, seg: &Segment<'_>, now: Instant) -> Arrival {
        let from = SocketAddrV4::new(seg.src, seg.sport);
        if SocketAddrV4::new(seg.dst, seg.dport) != self.me
            || self.kernel.is_some_and(|k| k != from)
        {
            self.stats.ignored += 1;
            return Arrival::default();
        }
        self.stats.segments += 1;
        if seg.flags.has(Flags::RST) {
            if self.state != State::Listen {
                self.state = State::Reset;
            }
            return Arrival::default();
        }
        match self.state {
            State::Listen => {
                if seg.flags.has(Flags::SYN) && !seg.flags.has(Flags::ACK) {
                    self.kernel = Some(from);
                    self.irs = seg.seq;
                    self.their_shift = seg.options.wscale.unwrap_or(0).min(14);
                    // tcp_select_initial_window: the smallest shift that carries the window.
                    if seg.options.wscale.is_some() {
                        let w = self.decisions.window();
                        while (w >> self.our_shift) > 0xffff {
                            self.our_shift += 1;
                        }
                        self.stats.wscale = Some(self.our_shift);
                    }
                    self.their_window = seg.window as u32;
                    self.state = State::SynReceived;
                    self.synack_due = true;
                }
                return Arrival::default();
            }
            State::SynReceived => {
                if seg.flags.has(Flags::SYN) {
                    // Our SYN-ACK was lost or late: the kernel sent its SYN again.
                    self.synack_due = true;
                    return Arrival::default();
                }
                if seg.flags.has(Flags::ACK) && seg.ack == ISS.wrapping_add(1) {
                    self.state = State::Established;
                } else {
                    return Arrival::default();
                }
            }
            State::Closed | State::Reset => return Arrival::default(),
            _ => {}
        }
        if seg.flags.has(Flags::ACK) {
            self.their_ack(seg.ack);
            self.their_window = (seg.window as u32) << self.their_shift;
        }
        self.data(seg, now)
    }

    /// The kernel ACKed our bytes (and FIN) up to `ack`.
    fn their_ack(&mut self, ack: u32) {
        let acked = ack.wrapping_sub(self.snd_una) as usize;
        let fin_len = self.fin_sent as usize;
        if acked == 0 || acked > self.out_sent + fin_len {
            return;
        }
        let data = acked.min(self.out_sent);
        self.outbox.drain(..data);
        self.out_sent -= data;
        self.snd_una = self.snd_una.wrapping_add(data as u32);
        if acked > data && self.state == State::LastAck {
            self.state = State::Closed;
        }
    }

    fn data(&mut self, seg: &Segment<'_>, now: Instant) -> Arrival {
        let mut arrival = Arrival::default();
        let fin = seg.flags.has(Flags::FIN);
        if seg.payload.is_empty() && !fin {
            return arrival;
        }
        let a = self.offset_of(seg.seq);
        let b = a + seg.payload.len() as u64;
        if !seg.payload.is_empty() {
            self.stats.data_segments += 1;
            if a >= self.highest {
                if self.decisions.lose_new_segment() {
                    self.stats.lost += 1;
                    self.highest = b;
                    return arrival;
                }
            } else {
                self.stats.retransmitted += 1;
            }
            self.highest = self.highest.max(b);
        }
        if fin {
            self.fin_at = Some(b);
        }
        if b <= self.rcv && !seg.payload.is_empty() {
            arrival.duplicate = Some((a, seg.payload.to_vec()));
        } else if a > self.rcv {
            self.stats.out_of_order += 1;
            let right_edge = self.rcv + self.decisions.window() as u64;
            if b <= right_edge {
                let e = self.ooo.entry(a).or_default();
                if e.len() < seg.payload.len() {
                    *e = seg.payload.to_vec();
                }
            }
        } else if b > self.rcv {
            let from = (self.rcv - a) as usize;
            arrival
                .accepted
                .push((self.rcv, seg.payload[from..].to_vec()));
            self.rcv = b;
            self.drain_ooo(&mut arrival);
        }
        if self.fin_at == Some(self.rcv) && !self.fin_received {
            self.fin_received = true;
            self.state = State::CloseWait;
        }
        // Every segment with data or FIN is ACKed (again, for duplicates and segments
        // beyond a gap: the duplicate ACKs that start the kernel's fast retransmit).
        if !self.manual_acks {
            self.ack_due.get_or_insert(now + self.decisions.ack_delay());
        }
        arrival
    }

    /// Delivers kept segments that the stream now reaches.
    fn drain_ooo(&mut self, arrival: &mut Arrival) {
        while let Some((&at, _)) = self.ooo.first_key_value() {
            if at > self.rcv {
                break;
            }
            let bytes = self.ooo.remove(&at).expect("first key");
            let end = at + bytes.len() as u64;
            if end > self.rcv {
                let from = (self.rcv - at) as usize;
                arrival.accepted.push((self.rcv, bytes[from..].to_vec()));
                self.rcv = end;
            }
        }
    }

    /// When [`Connection::poll_transmit`] has something to send next.
    pub fn next_timer(&self) -> Option<Instant> {
        let resend = self
            .last_sent
            .filter(|_| self.out_sent > 0 || (self.fin_sent && self.state == State::LastAck))
            .map(|t| t + RESEND_AFTER);
        match (self.ack_due, resend) {
            (Some(a), Some(r)) => Some(a.min(r)),
            (a, r) => a.or(r),
        }
    }

    /// The next segment for the kernel, if one is due at `now`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Outgoing> {
        let kernel = self.kernel?;
        if self.synack_due {
            self.synack_due = false;
            let options = Options {
                mss: Some(MSS),
                wscale: self.stats.wscale,
                ..Options::default()
            };
            // The window of a SYN is never scaled (RFC 7323 §2.2).
            let window = self.advertised().min(0xffff) as u16;
            return Some(self.build(kernel, ISS, Flags::SYN | Flags::ACK, window, options, &[]));
        }
        let resend = self.last_sent.is_some_and(|t| now >= t + RESEND_AFTER);
        if resend && (self.out_sent > 0 || (self.fin_sent && self.state == State::LastAck)) {
            self.out_sent = 0;
            self.fin_sent = false;
            if self.state == State::LastAck {
                self.state = State::CloseWait;
            }
            self.ack_due = Some(now);
        }
        let unsent = self.outbox.len() > self.out_sent;
        let close = self.state == State::CloseWait && !self.fin_sent;
        match self.ack_due {
            // Held: our bytes and FIN wait with the ACK.
            Some(t) if now < t => return None,
            None if !unsent && !close => return None,
            _ => {}
        }
        self.ack_due = None;
        let room = (self.their_window as usize)
            .saturating_sub(self.out_sent)
            .min(MSS as usize);
        let take = (self.outbox.len() - self.out_sent).min(room);
        let seq = self.snd_una.wrapping_add(self.out_sent as u32);
        let payload = self.outbox[self.out_sent..self.out_sent + take].to_vec();
        self.out_sent += take;
        let mut flags = Flags::ACK;
        if take > 0 {
            flags = flags | Flags::PSH;
        }
        if self.state == State::CloseWait && self.out_sent == self.outbox.len() {
            flags = flags | Flags::FIN;
            self.fin_sent = true;
            self.state = State::LastAck;
        }
        let window = (self.advertised() >> self.our_shift).min(0xffff) as u16;
        self.last_sent = Some(now);
        self.stats.acks += 1;
        let mut out = self.build(kernel, seq, flags, window, Options::default(), &payload);
        out.acks_stream_to = self.rcv;
        Some(out)
    }

    fn build(
        &mut self,
        kernel: SocketAddrV4,
        seq: u32,
        flags: Flags,
        window: u16,
        options: Options,
        payload: &[u8],
    ) -> Outgoing {
        self.ip_id = self.ip_id.wrapping_add(1);
        let seg = Segment {
            src: *self.me.ip(),
            dst: *kernel.ip(),
            sport: self.me.port(),
            dport: kernel.port(),
            seq,
            ack: self.rcv_nxt(),
            flags,
            window,
            options,
            payload,
        };
        Outgoing {
            packet: seg.build(self.ip_id),
            acks_stream_to: self.rcv,
        }
    }

    /// The kernel's address, once its SYN arrived.
    pub fn kernel(&self) -> Option<Ipv4Addr> {
        self.kernel.map(|k| *k.ip())
    }
}

#[cfg(test)]
mod tests {
    use super::super::segment::tests::{hex, KERNEL_SYN};
    use super::*;
    use zcsafe_policy::PeerScript;

    fn peer(script: &str) -> Connection {
        Connection::new(
            SocketAddrV4::new(Ipv4Addr::new(10, 78, 0, 2), 5001),
            Decisions::new(PeerScript::parse(script).unwrap()),
        )
    }

    /// A segment from the kernel of the captured SYN's connection.
    fn from_kernel(seq: u32, flags: Flags, payload: &[u8]) -> Vec<u8> {
        Segment {
            src: Ipv4Addr::new(10, 78, 0, 1),
            dst: Ipv4Addr::new(10, 78, 0, 2),
            sport: 42616,
            dport: 5001,
            seq,
            ack: ISS.wrapping_add(1),
            flags,
            window: 502,
            options: Options::default(),
            payload,
        }
        .build(9)
    }

    const IRS: u32 = 0x423b1f14;

    fn established(script: &str) -> (Connection, Instant) {
        let mut c = peer(script);
        let now = Instant::now();
        let syn = hex(KERNEL_SYN);
        c.on_segment(&Segment::parse(&syn).unwrap(), now);
        let synack = c.poll_transmit(now).expect("SYN-ACK");
        let s = Segment::parse(&synack.packet).unwrap();
        assert_eq!(s.flags, Flags::SYN | Flags::ACK);
        assert_eq!(s.ack, IRS + 1);
        assert_eq!(s.seq, ISS);
        assert_eq!(
            s.options,
            Options {
                mss: Some(4096),
                wscale: Some(1),
                sack_permitted: false,
                timestamps: false,
            },
            "MSS 4096, window scaling for a 64 KiB window, no SACK, no timestamps"
        );
        assert_eq!(s.window, 0xffff);
        let ack = from_kernel(IRS + 1, Flags::ACK, &[]);
        c.on_segment(&Segment::parse(&ack).unwrap(), now);
        assert_eq!(c.state, State::Established);
        (c, now)
    }

    fn acked(c: &mut Connection, now: Instant) -> u32 {
        let out = c.poll_transmit(now).expect("an ACK");
        Segment::parse(&out.packet).unwrap().ack
    }

    #[test]
    fn the_handshake_answers_the_kernels_syn_and_data_is_acked_cumulatively() {
        let (mut c, now) = established("");
        let a = c.on_segment(
            &Segment::parse(&from_kernel(IRS + 1, Flags::ACK, &[1; 100])).unwrap(),
            now,
        );
        assert_eq!(a.accepted, vec![(0, vec![1; 100])]);
        let out = c.poll_transmit(now).unwrap();
        let s = Segment::parse(&out.packet).unwrap();
        assert_eq!((s.ack, s.window, s.flags), (IRS + 101, 0x8000, Flags::ACK));
        assert_eq!(out.acks_stream_to, 100);
        assert!(c.poll_transmit(now).is_none(), "nothing more is due");
    }

    #[test]
    fn a_gap_is_held_until_the_retransmission_fills_it() {
        let (mut c, now) = established("drop=1");
        let seg = |off: u32, fill: u8| from_kernel(IRS + 1 + off, Flags::ACK, &[fill; 10]);
        // Segment 1 is lost, segment 2 is kept beyond the gap and ACKed for 0.
        let a = c.on_segment(&Segment::parse(&seg(0, 1)).unwrap(), now);
        assert!(a.accepted.is_empty());
        assert!(
            c.poll_transmit(now).is_none(),
            "a lost segment is not ACKed"
        );
        let a = c.on_segment(&Segment::parse(&seg(10, 2)).unwrap(), now);
        assert!(a.accepted.is_empty());
        assert_eq!(acked(&mut c, now), IRS + 1, "a duplicate ACK for the gap");
        // The retransmission of segment 1 fills it: both are delivered in order.
        let a = c.on_segment(&Segment::parse(&seg(0, 1)).unwrap(), now);
        assert_eq!(a.accepted, vec![(0, vec![1; 10]), (10, vec![2; 10])]);
        assert_eq!(acked(&mut c, now), IRS + 21);
        // A second copy of segment 2 is a duplicate: ACKed again, not delivered.
        let a = c.on_segment(&Segment::parse(&seg(10, 9)).unwrap(), now);
        assert_eq!(a.duplicate, Some((10, vec![9; 10])));
        assert!(a.accepted.is_empty());
        assert_eq!(acked(&mut c, now), IRS + 21);
        assert_eq!(
            (c.stats.lost, c.stats.retransmitted, c.stats.out_of_order),
            (1, 2, 1)
        );
    }

    #[test]
    fn held_acks_wait_and_fin_closes_both_ways() {
        let (mut c, now) = established("hold-acks=50");
        c.on_segment(
            &Segment::parse(&from_kernel(IRS + 1, Flags::ACK | Flags::FIN, &[3; 8])).unwrap(),
            now,
        );
        assert!(c.fin_received());
        assert!(c.poll_transmit(now).is_none(), "held");
        assert_eq!(c.next_timer(), Some(now + Duration::from_millis(50)));
        let later = now + Duration::from_millis(50);
        let s = c.poll_transmit(later).unwrap();
        let s = Segment::parse(&s.packet).unwrap();
        assert_eq!(s.flags, Flags::ACK | Flags::FIN);
        assert_eq!(s.ack, IRS + 1 + 8 + 1, "the data and the FIN");
        assert_eq!(c.state, State::LastAck);
        let raw = from_kernel(IRS + 10, Flags::ACK, &[]);
        let mut ack = Segment::parse(&raw).unwrap();
        ack.ack = ISS + 2;
        let bytes = ack.build(3);
        c.on_segment(&Segment::parse(&bytes).unwrap(), later);
        assert_eq!(c.state, State::Closed);
    }
}
