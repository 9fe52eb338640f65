//! The real kernel driven through a model counterexample's schedule, with a conformance
//! check at every step (`zcsafe replay TRACE --on kernel` for a remote-class model trace).
//!
//! The sender is the host's TCP over the `tun` transport ([`crate::tun`]); the policy
//! runs again, one operation at a time, by the [`Executor`], and each of its operations
//! must be the one the trace recorded; the peer's side of each step is done by the
//! replayer itself on the TUN fd, in the trace's order. One model page is one MSS-sized
//! segment (MTU 4136: MSS 4096, timestamps off), so model sequence number `k` is stream
//! bytes `[4096k, 4096(k+1))`.
//!
//! | model step | driven as | checked |
//! |---|---|---|
//! | `Call` | the policy's next operation, by the executor | the same operation; the same answer (bytes over pages) |
//! | `Transmit k` | the peer opens its window to the end of `k` (an ACK-only window update) | the tap ([`crate::tun::tap`]) sees segment `k`, a first transmission, carrying stream page `content` |
//! | `Retransmit k` | the peer keeps its ACK back past the RTO | the tap sees segment `k` again, within [`RTO_WAIT`] |
//! | `TxComplete k` | the peer reads the next data segment from the TUN fd (`tun_put_user`: the device reads the pages) | it is `k`, carrying `content` |
//! | `Lose k` | the read segment is discarded | it is `k` |
//! | `Deliver k` | the read segment goes into the peer's TCP | it is `k`; in order as the model says |
//! | `Ack a, window w` | the peer sends an ACK for what it accepted | it accepted `a` pages; then the kernel processed it (`tcpi_bytes_acked`) |
//! | `Read k` | the receiver checks stream page `k` of what the peer accepted | the same content (the wrong page, in a counterexample) |
//! | `UringExec` | nothing: `io_uring_enter` of the submit call issued it (`io_issue_sqe`) | — |
//!
//! **The window is the schedule's gate.** The model may transmit any time cwnd and the
//! window allow, the kernel transmits at once; so the peer closes its window right after
//! the handshake (its SYN-ACK offers 65535 bytes, which keeps the kernel's MSS whole:
//! `tcp_bound_to_half_wnd`), and its right edge only ever moves to the end of the segment the trace
//! transmits next. An `Ack`'s window `w` is therefore advertised as `min(a + w, gate) − a`
//! (the model's `w` is kept in the report). Zero-window probes (`tcp_send_probe0`,
//! no payload) are counted and ignored.
//!
//! After every step, whatever else the kernel put on the device is read from the tap at
//! once (no wait: a transmission happens inside the call or the ACK's softirq that
//! caused it); a data segment the model did not transmit there is a divergence.
//! Every wait is a `poll` of a descriptor with a deadline.

use crate::error::KernelError;
use crate::executor::{Executor, Performed};
use crate::transport::Transport;
use crate::tun::connection::{Connection, State};
use crate::tun::device::TunDevice;
use crate::tun::script::Decisions;
use crate::tun::segment::Segment;
use crate::tun::tap::Tap;
use crate::veth::Network;
use serde::Serialize;
use std::collections::VecDeque;
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use zcsafe_policy::{
    stream, Answer, Event, Geometry, Op, Outcome, PeerScript, Policy, Region, Trace, Verdict,
};

/// Bytes of one model page: the peer's MSS.
pub const PAGE: u64 = crate::tun::connection::MSS as u64;
/// How long a transmission the schedule caused may take to reach the device.
pub const STEP_WAIT: Duration = Duration::from_secs(2);
/// How long a retransmission by the RTO may take: `TCP_RTO_MIN` is 200 ms, the first
/// RTO after the handshake 1 s at most (`TCP_TIMEOUT_INIT`), with one backoff to spare.
pub const RTO_WAIT: Duration = Duration::from_secs(4);

/// A segment as the kernel transmitted or the device read it, in model units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SegmentSeen {
    /// First stream page it carries (its sequence number over [`PAGE`]).
    pub seq: u64,
    /// Bytes it carries.
    pub len: u64,
    /// It starts below the highest sequence the tap had seen: a retransmission.
    pub retransmission: bool,
    /// The stream page whose bytes it carries (`None`: not one page's stream bytes).
    pub content: Option<u64>,
}

/// What the kernel (or the replayer's peer) did at a step that agreed with the model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Observed {
    /// The policy's operation and the kernel's answer (in model units).
    Call { answer: Answer },
    /// The tap saw this transmission.
    Transmitted { segment: SegmentSeen },
    /// The peer read this segment from the TUN fd.
    DeviceRead { segment: SegmentSeen },
    /// The peer discarded the segment it read.
    Lost { seq: u64 },
    /// The peer's TCP took the segment (in order or kept beyond a gap).
    Delivered { seq: u64, in_order: bool },
    /// The peer ACKed `ack` pages advertising `window` bytes (the model said `model_window`
    /// pages; see the module's note on the gate).
    AckSent {
        ack: u64,
        window: u32,
        model_window: u32,
    },
    /// The receiver read stream page `seq` and found the bytes of page `content`.
    Read { seq: u64, content: Option<u64> },
    /// io_uring ran the request inside the submit call (`io_uring_enter`).
    RanAtSubmit,
}

/// Where the kernel did not do what the model says it does at that step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Divergence {
    /// The policy asked for another operation (it saw other answers before).
    DifferentOp { expected: Op, policy: Op },
    /// The kernel answered the operation otherwise (in model units).
    DifferentAnswer { expected: Answer, kernel: Answer },
    /// Nothing was transmitted (or read from the device) within the wait.
    NoSegment { waited_ms: u64 },
    /// Another segment than the model's.
    DifferentSegment {
        expected_seq: u64,
        expected_retransmission: bool,
        seen: SegmentSeen,
    },
    /// The right segment, carrying the bytes of another stream page.
    DifferentContent {
        seq: u64,
        expected: Option<u64>,
        kernel: Option<u64>,
    },
    /// The kernel transmitted a data segment where the model transmits none.
    UnexpectedSegment { seen: SegmentSeen },
    /// The peer's TCP had accepted another amount than the model's ACK acknowledges.
    DifferentAck { expected: u64, accepted_pages: u64 },
    /// The segment went into the peer's TCP in order where the model says beyond a gap,
    /// or the other way round.
    DifferentOrder { seq: u64, expected_in_order: bool },
    /// The receiver's page had not arrived.
    NotReceived { seq: u64 },
    /// The kernel did not take the ACK within the wait (`tcpi_bytes_acked`).
    AckNotTaken { ack: u64 },
}

/// Why a step cannot be made to happen on the kernel from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotDrivable {
    /// `tcp_send_probe0` fires on the kernel's own timer; the gate keeps it out of the way.
    ZeroWindowProbe,
    /// A `SEND_ZC` failing before it runs: only the model can make io_uring fail it.
    UringFail,
    /// The NOTIF of a failed `SEND_ZC`: follows a [`NotDrivable::UringFail`].
    UringNotifFlush,
    /// A linked timeout firing, or its disarmed CQE, at the model's chosen moment: the
    /// kernel's timer and task work run on their own clock.
    UringLinkTimeout,
    /// Receive autotuning of the model's peer: the replayer's peer has no buffer to grow.
    RcvbufGrow,
    /// A read of the pipe by another process: the remote class has none.
    PipeRead,
    /// A step of a kernel run or a version-1 trace: no schedule to follow.
    NotAModelStep,
}

/// What one step came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum StepResult {
    Conforms {
        observed: Observed,
    },
    Diverged {
        divergence: Divergence,
    },
    NotDrivable {
        why: NotDrivable,
    },
    /// An earlier divergence left the schedule unfollowable.
    NotReached,
}

/// One step of the trace and what the kernel did there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepCheck {
    /// 1-based, as `zcsafe explain` numbers steps.
    pub step: usize,
    /// The model's step.
    pub expected: Event,
    pub result: StepResult,
    /// Microseconds since the first operation, when the step was done.
    #[serde(skip)]
    pub at_us: u64,
}

/// A schedule replay, step by step.
#[derive(Clone, Debug, Serialize)]
#[must_use = "a report says where the kernel diverged: print it or hand it on"]
pub struct Conformance {
    pub steps: Vec<StepCheck>,
    /// Steps that diverged.
    pub divergences: usize,
    /// Steps that could not be driven.
    pub not_drivable: usize,
    /// The verdict the replay reached: `corrupt` when a receiver read found the wrong
    /// page, `inconclusive` otherwise (a trace's prefix of the stream proves no safety),
    /// `error` when the schedule could not be followed to its end.
    pub verdict: Verdict,
    /// The last receiver read: which page, and whose bytes it held.
    pub read: Option<(u64, Option<u64>)>,
    /// Segments without payload the kernel sent (the handshake's ACK, zero-window
    /// probes), which no step is about. Not serialised: how many the handshake loop
    /// reads before the replay starts depends on timing.
    #[serde(skip)]
    pub empty_segments: u64,
    /// Wall time of the replay: namespace and device set-up to tear-down.
    #[serde(skip)]
    pub elapsed_ms: u64,
}

impl Conformance {
    /// One sentence for the replay report.
    pub fn summary(&self) -> String {
        let reads = match self.read {
            Some((seq, Some(c))) if c != seq => {
                format!("the receiver read stream page {seq} but got the bytes of page {c}")
            }
            Some((seq, Some(_))) => format!("the receiver read stream page {seq} intact"),
            Some((seq, None)) => format!("the receiver read stream page {seq}: not stream bytes"),
            None => "no receiver read was reached".into(),
        };
        format!(
            "{} steps driven on the kernel, {} divergence(s), {} not drivable: {reads}",
            self.steps.len(),
            self.divergences,
            self.not_drivable
        )
    }
}

/// Model units to the kernel's bytes.
fn region(r: Region) -> Region {
    Region::new(r.offset * PAGE, r.len * PAGE)
}

/// The trace's operation in the kernel's bytes.
pub fn op_in_bytes(op: &Op) -> Op {
    let mut op = op.clone();
    match &mut op {
        Op::Fill { buf, stream } => {
            *buf = region(*buf);
            *stream *= PAGE;
        }
        Op::Send { buf, .. }
        | Op::Vmsplice { buf, .. }
        | Op::UringSendZc { buf, .. }
        | Op::UringSend { buf, .. }
        | Op::Munmap { buf }
        | Op::Mmap { buf } => *buf = region(*buf),
        Op::Splice { len } => *len *= PAGE,
        Op::WriteFile {
            region: r, stream, ..
        } => {
            *r = region(*r);
            *stream *= PAGE;
        }
        Op::Sendfile { region: r, .. } => *r = region(*r),
        Op::WaitAppAck { beyond } => *beyond *= PAGE,
        // No sizes: listed, so that a new operation with a region cannot be missed here.
        Op::EnableZerocopy
        | Op::Siocoutq
        | Op::ReadErrqueue { .. }
        | Op::UringWaitCqe
        | Op::CreateFile { .. }
        | Op::RemoveFile { .. }
        | Op::Finish
        | Op::Abort(_) => {}
    }
    op
}

/// The kernel's answer in model units (byte counts over [`PAGE`], when whole pages).
fn answer_in_pages(p: &Performed) -> Answer {
    let pages = |n: u64| if n % PAGE == 0 { n / PAGE } else { n };
    match p {
        Performed::Outcome(Outcome::Done(n)) => Answer::Returned(Outcome::Done(pages(*n))),
        Performed::Outcome(Outcome::Cqe(c)) => {
            let mut c = *c;
            if c.res > 0 && !c.notif {
                c.res = pages(c.res as u64) as i64;
            }
            Answer::Returned(Outcome::Cqe(c))
        }
        Performed::Outcome(o) => Answer::Returned(o.clone()),
        Performed::Stuck(w) => Answer::Stuck(w.clone()),
        Performed::Failed(w) => Answer::Failed(w.clone()),
    }
}

/// The kernel geometry of a model trace: every page one [`PAGE`], a real 32-bit counter.
pub fn kernel_geometry(model: &Geometry) -> Geometry {
    Geometry::kernel(
        model.chunk * PAGE,
        model.buffer * PAGE,
        model.pipe * PAGE,
        model.stream * PAGE,
    )
}

/// Whose stream page `bytes` (one page) hold: the page every word was written for, at
/// its own place in the page, if they all agree.
fn content_of(bytes: &[u8], seed: u64) -> Option<u64> {
    let mut page = None;
    for (i, w) in bytes.chunks_exact(8).enumerate() {
        let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        let at = stream::carried_offset(v, seed)?;
        if at % PAGE != i as u64 * 8 || page.is_some_and(|q| q != at / PAGE) {
            return None;
        }
        page = Some(at / PAGE);
    }
    page
}

/// `tcpi_bytes_acked` of `fd` (`struct tcp_info`, offset 120 since Linux 4.2).
fn bytes_acked(fd: i32) -> Option<u64> {
    let mut buf = [0u8; 232];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: TCP_INFO writes at most `len` bytes into our buffer.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (r == 0 && len >= 128).then(|| u64::from_le_bytes(buf[120..128].try_into().expect("8")))
}

/// The replayer's side of the connection: the device, the tap, the peer's TCP.
struct Peer {
    dev: TunDevice,
    tap: Tap,
    conn: Connection,
    seed: u64,
    /// Highest stream byte the tap saw transmitted.
    highest: u64,
    /// Highest stream byte read from the device.
    read_highest: u64,
    /// Right edge of the window the peer advertised, stream bytes.
    gate: u64,
    /// Segments read from the device, not yet delivered or lost: (stream offset, packet).
    wire: VecDeque<(u64, Vec<u8>)>,
    /// The stream as the peer accepted it.
    stream: Vec<u8>,
    /// Segments without payload the kernel sent: the handshake's, zero-window probes.
    empty: u64,
}

impl Peer {
    /// A data segment of `packet`, its retransmission flag measured against `highest`
    /// (the tap's or the device's own: the device reads later than the tap sees).
    fn seen(
        packet: &[u8],
        conn: &Connection,
        seed: u64,
        highest: &mut u64,
        empty: &mut u64,
    ) -> Option<SegmentSeen> {
        let seg = Segment::parse(packet).ok()?;
        if seg.payload.is_empty() {
            *empty += 1;
            return None;
        }
        let at = conn.offset_of(seg.seq);
        let end = at + seg.payload.len() as u64;
        let retransmission = at < *highest;
        *highest = (*highest).max(end);
        Some(SegmentSeen {
            seq: at / PAGE,
            len: seg.payload.len() as u64,
            retransmission,
            content: (at % PAGE == 0 && seg.payload.len() as u64 == PAGE)
                .then(|| content_of(seg.payload, seed))
                .flatten(),
        })
    }

    /// The next data segment the tap sees before `deadline`.
    fn transmitted(&mut self, deadline: Instant) -> Result<Option<SegmentSeen>, KernelError> {
        loop {
            let Some(p) = self.tap.recv(deadline)? else {
                return Ok(None);
            };
            let p = p.to_vec();
            let mut ignored = 0;
            if let Some(s) = Peer::seen(&p, &self.conn, self.seed, &mut self.highest, &mut ignored)
            {
                return Ok(Some(s));
            }
        }
    }

    /// The next data segment read from the TUN fd before `deadline` (the device read).
    fn device_read(&mut self, deadline: Instant) -> Result<Option<SegmentSeen>, KernelError> {
        loop {
            let Some(p) = self.dev.recv(deadline)? else {
                return Ok(None);
            };
            let p = p.to_vec();
            if let Some(s) = Peer::seen(
                &p,
                &self.conn,
                self.seed,
                &mut self.read_highest,
                &mut self.empty,
            ) {
                self.wire.push_back((s.seq * PAGE, p));
                return Ok(Some(s));
            }
            // The handshake's last ACK and probes: the peer's TCP takes them as usual.
            if let Ok(seg) = Segment::parse(&p) {
                self.conn.on_segment(&seg, Instant::now());
            }
        }
    }

    fn send_ack(&mut self, window: u32) -> Result<(), KernelError> {
        if let Some(out) = self.conn.ack_now(window, Instant::now()) {
            self.dev.send(&out.packet)?;
        }
        Ok(())
    }

    /// The window that moves the right edge to `gate`.
    fn window_to(&self, gate: u64) -> u32 {
        gate.saturating_sub(self.conn.accepted()) as u32
    }
}

/// Replays `trace` (a remote-class model counterexample) on this host's kernel, driving
/// `policy` (built for [`kernel_geometry`]) with `seed`'s stream.
pub fn replay<P: Policy>(
    mut policy: P,
    trace: &Trace,
    op_timeout: Duration,
) -> Result<Conformance, KernelError> {
    let begun = Instant::now();
    let g = kernel_geometry(&trace.geometry);
    g.validate()?;
    let seed = 0;
    let mut net = Network::setup(Transport::Tun(PeerScript::default()))?;
    let dev = net.tun.take().expect("the tun transport has a device");
    let tap = net.in_sender(|| Tap::open(crate::tun::device::DEVICE))??;
    let me = SocketAddrV4::new(crate::tun::PEER_ADDR, crate::tun::PEER_PORT);
    let mut conn = Connection::new(me, Decisions::new(PeerScript::default()));
    // The SYN-ACK offers a full window: the kernel bounds its MSS by half the largest
    // window it ever saw (`tcp_sync_mss` → `tcp_bound_to_half_wnd`), so a first window
    // of one page would make every segment half a page. Nothing is queued yet, so the
    // window is closed at once after the handshake (below).
    conn.follow_schedule(0xffff);
    let mut peer = Peer {
        dev,
        tap,
        conn,
        seed,
        highest: 0,
        read_highest: 0,
        gate: 0,
        wire: VecDeque::new(),
        stream: Vec::new(),
        empty: 0,
    };
    let addr = SocketAddr::V4(me);
    // The handshake: the kernel's connect on one thread, the peer's answers on this one.
    let sock = std::thread::scope(|s| -> Result<TcpStream, KernelError> {
        let c = s.spawn(|| net.in_sender(|| TcpStream::connect_timeout(&addr, op_timeout)));
        let deadline = Instant::now() + op_timeout;
        while peer.conn.state != State::Established && Instant::now() < deadline {
            if let Some(p) = peer
                .dev
                .recv(deadline.min(Instant::now() + Duration::from_millis(50)))?
            {
                let p = p.to_vec();
                if let Ok(seg) = Segment::parse(&p) {
                    peer.conn.on_segment(&seg, Instant::now());
                }
            }
            while let Some(out) = peer.conn.poll_transmit(Instant::now()) {
                peer.dev.send(&out.packet)?;
            }
        }
        let sock = c
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))?
            .map_err(|e| KernelError::io(format!("connecting to {addr}"), e))?;
        if peer.conn.state != State::Established {
            return Err(KernelError::Timeout {
                what: "the handshake's last ACK on the TUN device".into(),
                secs: op_timeout.as_secs_f64(),
            });
        }
        Ok(sock)
    })?;
    // Close the window: the peer's first ACK after its SYN-ACK carries a newer sequence
    // number than the SYN-ACK's (`tcp_may_update_window`: after `snd_wl1`), so the
    // kernel takes the smaller window.
    peer.send_ack(0)?;
    // The tap saw the handshake; nothing of it is data.
    while peer.transmitted(Instant::now())?.is_some() {}
    // A second descriptor of the sender's socket, for `TCP_INFO` while the executor
    // owns the first.
    let info = sock
        .try_clone()
        .map_err(|e| KernelError::io("dup of the sender's socket", e))?;
    let info_fd = info.as_raw_fd();
    let mut ex = Executor::new(g, seed, sock, op_timeout, crate::Consumed::default())?;
    let start = Instant::now();
    let mut checks: Vec<StepCheck> = Vec::new();
    let mut stopped = false;
    let mut read = None;
    for (i, step) in trace.steps.iter().enumerate() {
        let at_us = start.elapsed().as_micros() as u64;
        let check = |result| StepCheck {
            step: i + 1,
            expected: step.event.clone(),
            result,
            at_us,
        };
        if stopped {
            checks.push(check(StepResult::NotReached));
            continue;
        }
        let result = drive(
            &step.event,
            &mut policy,
            &mut ex,
            &mut peer,
            info_fd,
            &mut read,
        )?;
        if matches!(
            result,
            StepResult::Diverged {
                divergence: Divergence::DifferentOp { .. } | Divergence::NoSegment { .. }
            }
        ) {
            stopped = true;
        }
        checks.push(check(result));
        // Whatever else the kernel transmitted at this step.
        while let Some(seen) = peer.transmitted(Instant::now())? {
            checks.push(StepCheck {
                step: i + 1,
                expected: step.event.clone(),
                result: StepResult::Diverged {
                    divergence: Divergence::UnexpectedSegment { seen },
                },
                at_us,
            });
        }
    }
    ex.abort_connection();
    let empty = peer.empty;
    drop(info);
    drop(ex);
    drop(peer);
    drop(net);
    let divergences = checks
        .iter()
        .filter(|c| matches!(c.result, StepResult::Diverged { .. }))
        .count();
    let not_drivable = checks
        .iter()
        .filter(|c| matches!(c.result, StepResult::NotDrivable { .. }))
        .count();
    let verdict = match read {
        _ if stopped => Verdict::Error,
        Some((seq, c)) if c != Some(seq) => Verdict::Corrupt,
        _ => Verdict::Inconclusive,
    };
    Ok(Conformance {
        empty_segments: empty,
        steps: checks,
        divergences,
        not_drivable,
        verdict,
        read,
        elapsed_ms: begun.elapsed().as_millis() as u64,
    })
}

/// Drives one model step and checks it.
fn drive<P: Policy>(
    ev: &Event,
    policy: &mut P,
    ex: &mut Executor,
    peer: &mut Peer,
    info_fd: i32,
    read: &mut Option<(u64, Option<u64>)>,
) -> Result<StepResult, KernelError> {
    let ok = |observed| Ok(StepResult::Conforms { observed });
    let diverged = |divergence| Ok(StepResult::Diverged { divergence });
    let waited = |d: Duration| Divergence::NoSegment {
        waited_ms: d.as_millis() as u64,
    };
    match ev {
        Event::Call { op, answer, .. } => {
            let expected = op_in_bytes(op);
            let asked = policy.poll_op();
            if asked != expected {
                return diverged(Divergence::DifferentOp {
                    expected,
                    policy: asked,
                });
            }
            let performed = match &asked {
                Op::Finish => {
                    ex.shutdown_write();
                    Performed::Outcome(Outcome::Ok)
                }
                _ => ex.perform(&asked),
            };
            let kernel = match (&asked, &performed) {
                (Op::Finish | Op::Abort(_), _) => Answer::None,
                _ => answer_in_pages(&performed),
            };
            if let Performed::Outcome(o) = performed {
                if !matches!(asked, Op::Finish | Op::Abort(_)) {
                    policy.handle(o);
                }
            }
            if &kernel != answer {
                return diverged(Divergence::DifferentAnswer {
                    expected: answer.clone(),
                    kernel,
                });
            }
            ok(Observed::Call { answer: kernel })
        }
        Event::Transmit { seq, payload, .. } | Event::Retransmit { seq, payload, .. } => {
            let again = matches!(ev, Event::Retransmit { .. });
            let seq = *seq as u64;
            let wait = if again {
                RTO_WAIT
            } else {
                // Open the window to the end of this segment.
                peer.gate = peer.gate.max((seq + 1) * PAGE);
                let w = peer.window_to(peer.gate);
                peer.send_ack(w)?;
                STEP_WAIT
            };
            let Some(seen) = peer.transmitted(Instant::now() + wait)? else {
                return diverged(waited(wait));
            };
            let kind = seen.retransmission == again && seen.len == PAGE;
            match the_traced_segment(seen, seq, kind, again, payload.content) {
                Ok(segment) => ok(Observed::Transmitted { segment }),
                Err(d) => diverged(d),
            }
        }
        Event::TxComplete { seq, payload } => {
            let seq = *seq as u64;
            let Some(seen) = peer.device_read(Instant::now() + STEP_WAIT)? else {
                return diverged(waited(STEP_WAIT));
            };
            let again = seen.retransmission;
            match the_traced_segment(seen, seq, true, again, payload.content) {
                Ok(segment) => ok(Observed::DeviceRead { segment }),
                Err(d) => diverged(d),
            }
        }
        Event::Lose { seq } | Event::Deliver { seq, .. } => {
            let seq = *seq as u64;
            let Some((at, packet)) = peer.wire.pop_front() else {
                return diverged(Divergence::NotReceived { seq });
            };
            if at / PAGE != seq {
                return diverged(Divergence::NotReceived { seq });
            }
            let Event::Deliver { in_order, .. } = ev else {
                return ok(Observed::Lost { seq });
            };
            let seg = Segment::parse(&packet).expect("parsed when read");
            let arrival = peer.conn.on_segment(&seg, Instant::now());
            for (off, bytes) in &arrival.accepted {
                let off = *off as usize;
                if peer.stream.len() < off + bytes.len() {
                    peer.stream.resize(off + bytes.len(), 0);
                }
                peer.stream[off..off + bytes.len()].copy_from_slice(bytes);
            }
            let took = !arrival.accepted.is_empty();
            if took != *in_order {
                return diverged(Divergence::DifferentOrder {
                    seq,
                    expected_in_order: *in_order,
                });
            }
            ok(Observed::Delivered {
                seq,
                in_order: took,
            })
        }
        Event::Ack { ack, window } => {
            let ack = *ack as u64;
            let accepted = peer.conn.accepted();
            if accepted != ack * PAGE {
                return diverged(Divergence::DifferentAck {
                    expected: ack,
                    accepted_pages: accepted / PAGE,
                });
            }
            let edge = (accepted + *window as u64 * PAGE).min(peer.gate.max(accepted));
            peer.gate = peer.gate.max(edge);
            let w = peer.window_to(edge);
            peer.send_ack(w)?;
            // Condition: the kernel took it (`tcp_ack` raised `bytes_acked`).
            let deadline = Instant::now() + STEP_WAIT;
            loop {
                if bytes_acked(info_fd).is_some_and(|b| b >= accepted) {
                    break;
                }
                if Instant::now() >= deadline {
                    return diverged(Divergence::AckNotTaken { ack });
                }
                // Wake on the socket's own events or every millisecond: tcp_info has no
                // descriptor readiness of its own.
                let _ = crate::sys::poll_until(
                    info_fd,
                    libc::POLLERR,
                    Instant::now() + Duration::from_millis(1),
                );
            }
            ok(Observed::AckSent {
                ack,
                window: w,
                model_window: *window,
            })
        }
        Event::Read {
            seq,
            payload,
            from_pipe: false,
        } => {
            let (a, b) = ((*seq * PAGE) as usize, ((*seq + 1) * PAGE) as usize);
            if peer.stream.len() < b {
                return diverged(Divergence::NotReceived { seq: *seq });
            }
            let content = content_of(&peer.stream[a..b], peer.seed);
            *read = Some((*seq, content));
            if content != payload.content {
                return diverged(Divergence::DifferentContent {
                    seq: *seq,
                    expected: payload.content,
                    kernel: content,
                });
            }
            ok(Observed::Read { seq: *seq, content })
        }
        Event::UringExec { .. } => ok(Observed::RanAtSubmit),
        Event::Read { .. } => Ok(StepResult::NotDrivable {
            why: NotDrivable::PipeRead,
        }),
        Event::ZeroWindowProbe => Ok(StepResult::NotDrivable {
            why: NotDrivable::ZeroWindowProbe,
        }),
        Event::UringFail { .. } => Ok(StepResult::NotDrivable {
            why: NotDrivable::UringFail,
        }),
        Event::UringNotifFlush { .. } => Ok(StepResult::NotDrivable {
            why: NotDrivable::UringNotifFlush,
        }),
        Event::UringLinkTimeout { .. } | Event::UringTimeoutDisarmed { .. } => {
            Ok(StepResult::NotDrivable {
                why: NotDrivable::UringLinkTimeout,
            })
        }
        Event::RcvbufGrow { .. } => Ok(StepResult::NotDrivable {
            why: NotDrivable::RcvbufGrow,
        }),
        Event::Unrecorded { .. }
        | Event::Accepted { .. }
        | Event::Checked { .. }
        | Event::Ended { .. }
        | Event::Legacy { .. } => Ok(StepResult::NotDrivable {
            why: NotDrivable::NotAModelStep,
        }),
    }
}

/// `seen` if it is the trace's segment `seq`, of the kind the trace expects (`kind`:
/// first transmission or retransmission, a whole page) and carrying `content`; else how
/// it differs. `retransmission` is what the divergence reports as expected.
fn the_traced_segment(
    seen: SegmentSeen,
    seq: u64,
    kind: bool,
    retransmission: bool,
    content: Option<u64>,
) -> Result<SegmentSeen, Divergence> {
    if !kind || seen.seq != seq {
        return Err(Divergence::DifferentSegment {
            expected_seq: seq,
            expected_retransmission: retransmission,
            seen,
        });
    }
    if seen.content != content {
        return Err(Divergence::DifferentContent {
            seq,
            expected: content,
            kernel: seen.content,
        });
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation that names a region or a length is scaled to the kernel's bytes;
    /// the plain io_uring `SEND` was once left in pages, so the policy (built in bytes)
    /// asked for another operation than the trace's at its first send.
    #[test]
    fn operations_are_scaled_from_pages_to_bytes() {
        let page = Region::new(1, 1);
        let bytes = Region::new(PAGE, PAGE);
        for (model, kernel) in [
            (
                Op::UringSend {
                    buf: page,
                    user_data: 3,
                    msg_zerocopy: true,
                },
                Op::UringSend {
                    buf: bytes,
                    user_data: 3,
                    msg_zerocopy: true,
                },
            ),
            (
                Op::Send {
                    buf: page,
                    zerocopy: true,
                },
                Op::Send {
                    buf: bytes,
                    zerocopy: true,
                },
            ),
            (
                Op::Fill {
                    buf: page,
                    stream: 2,
                },
                Op::Fill {
                    buf: bytes,
                    stream: 2 * PAGE,
                },
            ),
            (Op::Splice { len: 2 }, Op::Splice { len: 2 * PAGE }),
            (Op::UringWaitCqe, Op::UringWaitCqe),
        ] {
            assert_eq!(op_in_bytes(&model), kernel);
        }
    }
}
