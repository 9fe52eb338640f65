//! The state both simulated hosts act on, and what each host does in one tick.
//!
//! The sender host runs the policy and the sender half of the kernel (write queue,
//! retransmit queue and timer, device ring); the receiver host runs the peer's TCP and
//! the reading application. They exchange [`Msg`]s over turmoil's link. Every kernel rule
//! is the model's: a host only decides *when* an enabled event happens, and the network
//! decides which in-flight segment arrives and which is lost (`zcsafe_model::split`).
//!
//! The kernel state is one value because a local transport shares pages between the two
//! ends — that is the bug class zcsafe hunts. Only the model's wire and ACK slot stand
//! between them, and those are the messages.

use crate::faults::Faults;
use crate::rng::Rng;
use crate::wire::Msg;
use std::collections::VecDeque;
use std::time::Duration;
use zcsafe_model::kernel::{Corruption, Event, Kernel, Perform};
use zcsafe_model::split::AckMsg;
use zcsafe_model::Scenario;
use zcsafe_policy::{Abort, Actor, Op, Policy, Step};

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum End {
    Complete,
    Corrupt(Corruption),
    Stuck(String),
    Fault(String),
    Abort(Abort),
}

/// A segment the sender handed to the link, mirrored in order with the model's wire.
#[derive(Clone, Copy, Debug)]
struct Flight {
    id: u64,
    /// When not arrived by then, the link lost it (turmoil drops silently).
    deadline: Duration,
}

/// Everything one run shares between its hosts.
pub(crate) struct World<P> {
    pub s: Scenario,
    pub faults: Faults,
    pub kernel: Kernel,
    pub policy: P,
    rng: Rng,
    pub steps: Vec<Step>,
    /// Record page holders with each step (off for throughput runs).
    pub holders: bool,
    flights: VecDeque<Flight>,
    next_flight: u64,
    /// The sender's qdisc: messages and when they enter the link.
    outbox: Vec<(Duration, Msg)>,
    pub end: Option<End>,
    rto_head: Option<u16>,
    rto_due: Duration,
    backoff: u32,
    probe_due: Option<Duration>,
    last_ack_id: u64,
    ack_ids: u64,
    next_read: Duration,
    quiet_since: Option<Duration>,
    finished: bool,
}

impl<P: Policy> World<P> {
    pub fn new(s: Scenario, faults: Faults, policy: P, seed: u64) -> World<P> {
        World {
            kernel: Kernel::new(&s),
            s,
            faults,
            policy,
            rng: Rng::new(seed ^ 0x5EED_0F51_4D00),
            steps: Vec::new(),
            holders: true,
            flights: VecDeque::new(),
            next_flight: 0,
            outbox: Vec::new(),
            end: None,
            rto_head: None,
            rto_due: Duration::ZERO,
            backoff: 0,
            probe_due: None,
            last_ack_id: 0,
            ack_ids: 0,
            next_read: Duration::ZERO,
            quiet_since: None,
            finished: false,
        }
    }

    fn step(&mut self, now: Duration, actor: Actor, action: String, note: String) {
        let holders = if self.holders {
            self.kernel.page_holders()
        } else {
            Vec::new()
        };
        self.steps.push(Step {
            actor,
            action: format!("{:>4}ms {action}", now.as_millis()),
            note,
            holders,
        });
    }

    fn fire(&mut self, now: Duration, ev: Event) {
        let (actor, action, note) = self.describe(ev);
        let c = self.kernel.fire(&self.s, ev);
        debug_assert!(c.is_none(), "only reads can corrupt");
        self.step(now, actor, action, note);
        self.sync_flights(now);
    }

    fn describe(&self, ev: Event) -> (Actor, String, String) {
        let k = &self.kernel;
        match ev {
            Event::Transmit => (
                Actor::Tcp,
                format!("transmit seq {}", k.sock.write_queue[0].seq),
                String::new(),
            ),
            Event::DeviceComplete => (
                Actor::Device,
                format!("DMA + TX completion of seq {}", k.net.ring[0].seq),
                "the NIC has read the page; the wire carries its copy".into(),
            ),
            Event::Retransmit => (
                Actor::Tcp,
                format!("retransmit seq {} (RTO)", k.sock.rtx[0].seq),
                "the new clone reads the page again".into(),
            ),
            Event::UringExec(i) => (
                Actor::Tcp,
                format!("io_uring runs SEND_ZC #{}", k.zc.sq[i as usize].user_data),
                String::new(),
            ),
            other => (Actor::Tcp, format!("{other:?}"), String::new()),
        }
    }

    /// Hands segments that newly entered the model's wire to the link.
    fn sync_flights(&mut self, now: Duration) {
        while self.flights.len() < self.kernel.in_flight() {
            let seq = self.kernel.in_flight_seq(self.flights.len());
            let id = self.next_flight;
            self.next_flight += 1;
            let mut due = now;
            if self.rng.chance(self.faults.reorder) {
                due += self.faults.max_latency() + Duration::from_millis(1);
            }
            let deadline = due + self.faults.max_latency() + Duration::from_millis(3);
            self.flights.push_back(Flight { id, deadline });
            self.outbox.push((due, Msg::Seg { flight: id, seq }));
        }
    }

    // ---- the sender host -------------------------------------------------------

    /// An ACK or probe reply reached the sender.
    pub fn sender_receive(&mut self, now: Duration, msg: Msg) {
        if let Msg::Ack { id, ack } = msg {
            if id <= self.last_ack_id {
                return; // older than one already applied
            }
            self.last_ack_id = id;
            self.kernel.receive_ack(&self.s, ack);
            self.step(
                now,
                Actor::Tcp,
                format!("ACK {} (window {})", ack.ack, ack.window),
                String::new(),
            );
        }
    }

    /// One tick of the sender: lost segments, timers, then the application and the
    /// transmit path in a seeded order. Returns the datagrams due on the link now.
    pub fn sender_tick(&mut self, now: Duration) -> Vec<Msg> {
        if self.end.is_some() {
            return Vec::new();
        }
        self.expire(now);
        self.timers(now);
        self.interleave(now);
        if self.end.is_none() {
            self.check_progress(now);
        }
        let mut due = Vec::new();
        self.outbox.retain(|&(t, m)| {
            if t <= now {
                due.push(m);
                false
            } else {
                true
            }
        });
        due
    }

    fn expire(&mut self, now: Duration) {
        let mut i = 0;
        while i < self.flights.len() {
            if self.flights[i].deadline <= now {
                let seq = self.kernel.in_flight_seq(i);
                self.kernel.lose_nth(&self.s, i);
                self.flights.remove(i);
                self.step(
                    now,
                    Actor::Wire,
                    format!("lose seq {seq}"),
                    "the link dropped it (no arrival by its deadline)".into(),
                );
            } else {
                i += 1;
            }
        }
    }

    fn timers(&mut self, now: Duration) {
        let rto = self.faults.rto();
        match self.kernel.sock.rtx.front().map(|s| s.seq) {
            None => self.rto_head = None,
            Some(seq) if self.rto_head != Some(seq) => {
                self.rto_head = Some(seq);
                self.rto_due = now + rto;
                self.backoff = 0;
            }
            Some(_) => {
                if now >= self.rto_due && self.kernel.is_enabled(&self.s, Event::Retransmit) {
                    self.fire(now, Event::Retransmit);
                    self.backoff = (self.backoff + 1).min(3);
                    self.rto_due = now + rto * (1 << self.backoff);
                }
            }
        }
        let sock = &self.kernel.sock;
        if sock.snd_wnd == 0 && !sock.write_queue.is_empty() && sock.rtx.is_empty() {
            match self.probe_due {
                None => self.probe_due = Some(now + rto),
                Some(t) if now >= t => {
                    self.outbox.push((now, Msg::Probe));
                    self.probe_due = Some(now + rto);
                    self.step(now, Actor::Tcp, "zero-window probe".into(), String::new());
                }
                Some(_) => {}
            }
        } else {
            self.probe_due = None;
        }
    }

    /// The application and the sender's kernel agents, in an order drawn from the seed.
    fn interleave(&mut self, now: Duration) {
        let device_ms = self.faults.device.as_millis() as f64;
        let device_ok = self.rng.chance(1.0 / (1.0 + device_ms));
        let mut app_blocked = self.finished;
        for _ in 0..64 {
            let mut cands: Vec<Option<Event>> = Vec::new();
            if !app_blocked {
                cands.push(None);
            }
            for ev in self.kernel.enabled(&self.s) {
                let ours = match ev {
                    Event::Transmit | Event::UringExec(_) => true,
                    Event::DeviceComplete => device_ok,
                    _ => false,
                };
                if ours {
                    cands.push(Some(ev));
                }
            }
            if cands.is_empty() {
                break;
            }
            match *self.rng.pick(&cands) {
                Some(ev) => self.fire(now, ev),
                None => {
                    if !self.app(now) {
                        app_blocked = true;
                    }
                }
            }
            if self.end.is_some() {
                return;
            }
        }
    }

    /// Performs the policy's pending operation; false when it blocks.
    fn app(&mut self, now: Duration) -> bool {
        let op = self.policy.poll_op();
        if let Op::Abort(a) = &op {
            self.step(now, Actor::App, op.to_string(), String::new());
            self.end = Some(End::Abort(a.clone()));
            return false;
        }
        let mut note = String::new();
        if let Op::Fill { buf, .. } = op {
            let held: Vec<String> = (buf.offset..buf.end())
                .filter(|&p| self.kernel.user_page_held(p as u16))
                .map(|p| format!("buf[{p}]"))
                .collect();
            if !held.is_empty() {
                note = format!("REUSE WHILE HELD: {}", held.join(", "));
            }
        }
        match self.kernel.perform(&self.s, &op) {
            Perform::Blocked => false,
            Perform::Fault(f) => {
                self.step(now, Actor::App, op.to_string(), f.to_string());
                self.end = Some(End::Fault(format!("{op}: {f}")));
                false
            }
            Perform::Done(outcome) => {
                self.step(now, Actor::App, format!("{op} → {outcome}"), note);
                self.sync_flights(now);
                if op == Op::Finish {
                    self.finished = true;
                    false
                } else {
                    self.policy.handle(outcome);
                    true
                }
            }
        }
    }

    /// Ends the run when the stream is through, or when nothing can move any more.
    fn check_progress(&mut self, now: Duration) {
        if self.kernel.complete(&self.s) {
            self.end = Some(End::Complete);
            return;
        }
        let app_can = !self.finished && {
            let mut k = self.kernel.clone();
            !matches!(k.perform(&self.s, &self.policy.poll_op()), Perform::Blocked)
        };
        let quiet = !app_can
            && self.kernel.enabled(&self.s).is_empty()
            && self.probe_due.is_none()
            && self.outbox.is_empty();
        if !quiet {
            self.quiet_since = None;
            return;
        }
        let since = *self.quiet_since.get_or_insert(now);
        // Long enough for any ACK still on the link to arrive.
        let settle = 2 * self.faults.max_latency() + Duration::from_millis(5);
        let held = self.faults.hold.map_or(Duration::ZERO, |w| w.end);
        if now >= since + settle && now >= held {
            self.end = Some(End::Stuck(format!(
                "the sender waits for `{}` and nothing in the kernel or on the link can move",
                self.policy.poll_op()
            )));
        }
    }

    // ---- the receiver host -----------------------------------------------------

    /// A datagram reached the receiver; returns the reply to send.
    pub fn receiver_receive(&mut self, now: Duration, msg: Msg) -> Option<Msg> {
        if self.end.is_some() {
            return None;
        }
        match msg {
            Msg::Seg { flight, seq } => {
                let i = self.flights.iter().position(|f| f.id == flight)?;
                self.flights.remove(i);
                let expected = self.kernel.peer.rcv_nxt == seq;
                let ack = self.kernel.deliver_nth(&self.s, i);
                let verb = if expected {
                    "queues it"
                } else {
                    "drops it (not the next in order)"
                };
                self.step(
                    now,
                    Actor::Peer,
                    format!("receive seq {seq}"),
                    format!("peer TCP {verb} and ACKs"),
                );
                ack.map(|ack| self.ack_msg(ack))
            }
            Msg::Probe => {
                let ack = self.kernel.probe_reply(&self.s);
                Some(self.ack_msg(ack))
            }
            Msg::Ack { .. } => None,
        }
    }

    fn ack_msg(&mut self, ack: AckMsg) -> Msg {
        self.ack_ids += 1;
        Msg::Ack {
            id: self.ack_ids,
            ack,
        }
    }

    /// The receiving application reads what its pace allows; returns window updates.
    pub fn receiver_tick(&mut self, now: Duration) -> Vec<Msg> {
        let mut out = Vec::new();
        while self.end.is_none() && now >= self.next_read && !self.kernel.peer.queue.is_empty() {
            let (seq, _, _) = self.kernel.peer.queue[0];
            let (c, update) = self.kernel.read_page(&self.s);
            let what = match c {
                None => "correct".to_string(),
                Some(c) => match c.meant_for {
                    Some(m) => format!("WRONG: bytes of stream page {m}"),
                    None => "WRONG: zeroes".into(),
                },
            };
            self.step(
                now,
                Actor::Receiver,
                format!("read stream page {seq}"),
                what,
            );
            if let Some(c) = c {
                self.end = Some(End::Corrupt(c));
            }
            if let Some(ack) = update {
                out.push(self.ack_msg(ack));
            }
            if !self.faults.slow_reader.is_zero() {
                self.next_read = now + self.faults.slow_reader;
            }
        }
        out
    }
}
