//! The kernel seen from two hosts: a message interface for simulations.
//!
//! The checker lets the network's moves ([`Event::Deliver`], [`Event::Lose`],
//! [`Event::Ack`]) happen to the head of the wire, in order. A simulation runs the sender
//! and the receiver as separate hosts and lets a simulated network carry segments and
//! ACKs, with its own latency, reordering and loss. This module is the seam: the network
//! picks *which* in-flight segment arrives or is lost, and the ACK leaves and re-enters
//! the kernel as a message. Every rule stays in [`Kernel::fire`]; nothing here decides
//! what a segment, an ACK or a page reference does.
//!
//! Segments stay in [`Network::wire`](crate::network::Network::wire) while a simulation
//! carries them: a local clone in flight still references the sender's pages and holds
//! its zero-copy completion, so the kernel must go on seeing it.

use crate::config::Scenario;
use crate::kernel::{Corruption, Event, Kernel};
use zcsafe_policy::Event as TraceEvent;

/// An ACK as it travels back to the sender: cumulative sequence and window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AckMsg {
    pub ack: u16,
    pub window: u16,
}

impl Kernel {
    /// Number of segments in flight towards the peer (remote: after the NIC; local: the
    /// clones on their way through the backlog).
    pub fn in_flight(&self) -> usize {
        self.net.wire.len()
    }

    /// Sequence number of the `i`th segment in flight.
    pub fn in_flight_seq(&self, i: usize) -> u16 {
        self.net.wire[i].seq
    }

    /// The network hands the `i`th in-flight segment to the peer's TCP (not necessarily
    /// the oldest: networks reorder). Returns what the trace records and the ACK the
    /// peer sends in reply.
    pub fn deliver_nth(&mut self, s: &Scenario, i: usize) -> (TraceEvent, Option<AckMsg>) {
        let seg = self.net.wire.remove(i).expect("index in range");
        self.net.wire.push_front(seg);
        let event = self.describe(s, Event::Deliver);
        let none = self.fire(s, Event::Deliver);
        debug_assert!(none.is_none(), "delivery never corrupts");
        (event, self.take_ack())
    }

    /// The network loses the `i`th in-flight segment. Loss budgets are the network's
    /// business here, so the scenario's `losses` bound does not apply. Returns what the
    /// trace records.
    pub fn lose_nth(&mut self, s: &Scenario, i: usize) -> TraceEvent {
        let seg = self.net.wire.remove(i).expect("index in range");
        self.net.wire.push_front(seg);
        self.net.losses = self.net.losses.min(u8::MAX - 1);
        let event = self.describe(s, Event::Lose);
        let none = self.fire(s, Event::Lose);
        debug_assert!(none.is_none());
        event
    }

    /// An ACK from the peer reaches the sender (`tcp_ack`). Returns what the trace
    /// records.
    pub fn receive_ack(&mut self, s: &Scenario, msg: AckMsg) -> TraceEvent {
        self.net.ack = Some((msg.ack, msg.window));
        let event = self.describe(s, Event::Ack);
        let none = self.fire(s, Event::Ack);
        debug_assert!(none.is_none());
        event
    }

    /// The ACK the peer's TCP has just produced, taken off the kernel to travel as a
    /// message.
    pub fn take_ack(&mut self) -> Option<AckMsg> {
        self.net
            .ack
            .take()
            .map(|(ack, window)| AckMsg { ack, window })
    }

    /// The peer answers a zero-window probe (`tcp_send_probe0` → `tcp_send_ack`): its
    /// current cumulative ACK and window. The model has no persist timer because its
    /// ACKs are never lost; a simulated network loses them.
    pub fn probe_reply(&mut self, _s: &Scenario) -> AckMsg {
        let window = self.peer.window();
        self.peer.last_wnd = window;
        AckMsg {
            ack: self.peer.rcv_nxt,
            window,
        }
    }

    /// The receiving application reads one page ([`Event::Read`]). Returns what the
    /// trace records, what it saw wrong, if anything, and the window update it made TCP
    /// send.
    pub fn read_page(&mut self, s: &Scenario) -> (TraceEvent, Option<Corruption>, Option<AckMsg>) {
        let event = self.describe(s, Event::Read);
        let c = self.fire(s, Event::Read);
        (event, c, self.take_ack())
    }

    /// Whether `ev` is enabled now.
    pub fn is_enabled(&self, s: &Scenario, ev: Event) -> bool {
        self.enabled(s).contains(&ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Perform;
    use zcsafe_policy::{Op, Outcome, Profile, Region, TransportClass};

    fn sent(s: &Scenario, n: u64) -> Kernel {
        let mut k = Kernel::new(s);
        for i in 0..n {
            let buf = Region::new(i % 2, 1);
            assert_eq!(
                k.perform(s, &Op::Fill { buf, stream: i }),
                Perform::Done(Outcome::Ok)
            );
            assert_eq!(
                k.perform(
                    s,
                    &Op::Send {
                        buf,
                        zerocopy: false
                    }
                ),
                Perform::Done(Outcome::Done(1))
            );
        }
        k
    }

    #[test]
    fn reordered_delivery_is_dropped_and_reacked() {
        let s = Scenario::standard(TransportClass::Local, Profile::classic());
        let mut k = sent(&s, 2);
        k.fire(&s, Event::Transmit);
        k.fire(&s, Event::Transmit);
        assert_eq!(k.in_flight(), 2);
        // Segment 1 overtakes segment 0: out of order, dropped, duplicate ACK 0.
        assert_eq!(k.in_flight_seq(1), 1);
        let ack = k.deliver_nth(&s, 1).1.unwrap();
        assert_eq!(ack.ack, 0);
        assert_eq!(k.in_flight(), 1);
        let ack = k.deliver_nth(&s, 0).1.unwrap();
        assert_eq!(ack.ack, 1);
        k.receive_ack(&s, ack);
        assert_eq!(k.sock.snd_una, 1);
        assert_eq!(k.sock.rtx.len(), 1, "segment 1 still unacknowledged");
    }

    #[test]
    fn a_lost_segment_is_retransmitted_from_the_same_page() {
        let s = Scenario::standard(TransportClass::Remote, Profile::classic());
        let mut k = sent(&s, 1);
        k.fire(&s, Event::Transmit);
        k.fire(&s, Event::DeviceComplete);
        k.lose_nth(&s, 0);
        assert_eq!(k.in_flight(), 0);
        assert!(k.is_enabled(&s, Event::Retransmit));
        k.fire(&s, Event::Retransmit);
        k.fire(&s, Event::DeviceComplete);
        let ack = k.deliver_nth(&s, 0).1.unwrap();
        k.receive_ack(&s, ack);
        assert_eq!(k.sock.outq(), 0);
        let (_, c, _) = k.read_page(&s);
        assert_eq!(c, None);
        assert!(k.page_holders().iter().all(|p| p.holders.is_empty()));
    }
}
