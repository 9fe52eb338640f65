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
use zcsafe_policy::{Abort, Answer, Event as TraceEvent, Hazards, Op, Policy, Step};

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
    /// The hazards the run's steps reached and opened, drained from the kernel at each
    /// recorded step.
    pub hazards: Hazards,
    rto_head: Option<u16>,
    rto_due: Duration,
    backoff: u32,
    probe_due: Option<Duration>,
    last_ack_id: u64,
    ack_ids: u64,
    /// Highest segment that reached the receiver, and how many carried new sequence
    /// space (for `drop=K`).
    new_high: Option<u16>,
    new_segments: u32,
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
            hazards: Hazards::default(),
            rto_head: None,
            rto_due: Duration::ZERO,
            backoff: 0,
            probe_due: None,
            last_ack_id: 0,
            ack_ids: 0,
            new_high: None,
            new_segments: 0,
            next_read: Duration::ZERO,
            quiet_since: None,
            finished: false,
        }
    }

    fn step(&mut self, now: Duration, event: TraceEvent) {
        self.hazards.add(self.kernel.take_marks());
        let holders = if self.holders {
            self.kernel.page_holders()
        } else {
            Vec::new()
        };
        self.steps.push(Step {
            at_us: Some(now.as_micros() as u64),
            event,
            completions: Vec::new(),
            holders,
        });
    }

    fn fire(&mut self, now: Duration, ev: Event) {
        let event = self.kernel.describe(&self.s, ev);
        let c = self.kernel.fire(&self.s, ev);
        debug_assert!(c.is_none(), "only reads can corrupt");
        self.step(now, event);
        self.sync_flights(now);
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
            let event = self.kernel.receive_ack(&self.s, ack);
            self.step(now, event);
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
                // The link dropped it: no arrival by its deadline.
                let event = self.kernel.lose_nth(&self.s, i);
                self.flights.remove(i);
                self.step(now, event);
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
                    self.step(now, TraceEvent::ZeroWindowProbe);
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
            self.end = Some(End::Abort(a.clone()));
            self.step(now, call(op, Answer::None, Vec::new()));
            return false;
        }
        let wrote_held = self.kernel.wrote_held(&op);
        match self.kernel.perform(&self.s, &op) {
            Perform::Blocked => false,
            Perform::Fault(f) => {
                self.end = Some(End::Fault(format!("{op}: {f}")));
                self.step(now, call(op, Answer::Fault(f.to_string()), wrote_held));
                false
            }
            Perform::Done(outcome) => {
                self.step(
                    now,
                    call(op.clone(), Answer::Returned(outcome.clone()), wrote_held),
                );
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
                // `drop=K`: the K-th segment carrying new sequence space never arrives;
                // its flight expires and the model's `Lose` fires (`expire`).
                if self.new_high.is_none_or(|h| seq > h) {
                    self.new_high = Some(seq);
                    self.new_segments += 1;
                    if self.faults.drop == Some(self.new_segments) {
                        return None;
                    }
                }
                let i = self.flights.iter().position(|f| f.id == flight)?;
                self.flights.remove(i);
                debug_assert_eq!(self.kernel.in_flight_seq(i), seq);
                let (event, ack) = self.kernel.deliver_nth(&self.s, i);
                self.step(now, event);
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
            let (event, c, update) = self.kernel.read_page(&self.s);
            self.step(now, event);
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

/// The application's step: `op`, its answer, and the held pages it wrote.
fn call(op: Op, answer: Answer, wrote_held: Vec<zcsafe_policy::HeldPage>) -> TraceEvent {
    TraceEvent::Call {
        op,
        answer,
        wrote_held,
    }
}
