//! One policy on one transport, `repeat` times: the verdict, its evidence and a trace.

use crate::error::KernelError;
use crate::executor::Executor;
use crate::exposure::Exposure;
use crate::receiver::{self, Diagnosis, ReaderSpeed, Received, ReceiverOptions};
use crate::transport::Transport;
use crate::tun::device::TunDevice;
use crate::tun::PeerStats;
use crate::veth::Network;
use serde::Serialize;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use zcsafe_policy::{
    Backend, Event, Geometry, Hazard, Hazards, Observer, PeerScript, Policy, ReceiveWindow,
    SocketKind, Step, Trace, TraceProfile, TraceTransport, Verdict, TRACE_FORMAT_VERSION,
};

/// Options of a kernel run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub transport: Transport,
    pub geometry: Geometry,
    /// Stream seed of repetition 0; repetition `i` uses `seed + i`.
    pub seed: u64,
    pub repeat: u32,
    pub reader: ReaderSpeed,
    /// `SO_RCVBUF` of the receiving socket, set before the connection arrives (the
    /// policy's [`ReceiveWindow`]); `None` leaves the kernel's default and autotuning.
    pub rcvbuf: Option<u32>,
    /// `SO_SNDBUF` of the sending socket (the kernel doubles it); `None` leaves the
    /// default and autotuning. A small one makes a send stall part-way once the
    /// receiver's window is closed: what a linked timeout needs to cancel it after it
    /// queued part of its bytes.
    pub sndbuf: Option<u32>,
    /// The longest any single blocking operation may wait.
    pub op_timeout: Duration,
    /// The longest a whole repetition may take.
    pub run_timeout: Duration,
    /// The kernel profile the trace records: by default, measured on this kernel.
    pub profile: TraceProfile,
    /// The socket the policy sends on (its entry's [`zcsafe_policy::Pipeline::socket`]).
    pub socket: SocketKind,
}

/// Default stream: 1 MiB in 64 KiB chunks from a 128 KiB buffer, through a 64 KiB pipe.
pub fn default_geometry() -> Geometry {
    Geometry::kernel(64 << 10, 128 << 10, 64 << 10, 1 << 20)
}

/// [`default_geometry`] for a policy on `socket`: on UDP a chunk is one datagram, so
/// 32 KiB chunks (a 64 KiB one exceeds [`receiver::datagram::MAX_PAYLOAD`]) from a
/// 64 KiB buffer — two slots, as the TCP default has.
pub fn default_geometry_for(socket: SocketKind) -> Geometry {
    match socket {
        SocketKind::Tcp => default_geometry(),
        SocketKind::Udp => Geometry::kernel(32 << 10, 64 << 10, 64 << 10, 1 << 20),
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            transport: Transport::Loopback,
            geometry: default_geometry(),
            seed: 0,
            repeat: 3,
            reader: ReaderSpeed::Slow,
            rcvbuf: ReceiveWindow::Wide.rcvbuf(),
            sndbuf: None,
            op_timeout: Duration::from_secs(10),
            run_timeout: Duration::from_secs(60),
            profile: TraceProfile::Probed(crate::sys::kernel_release()),
            socket: SocketKind::Tcp,
        }
    }
}

/// What one repetition showed, and how to rerun it.
#[derive(Clone, Debug, Serialize)]
pub struct Evidence {
    pub verdict: Verdict,
    /// One sentence: what happened.
    pub detail: String,
    pub bytes_expected: u64,
    pub bytes_received: u64,
    pub corrupt_words: u64,
    pub first_corrupt_offset: Option<u64>,
    /// The stream offset the first wrong bytes were written for.
    pub meant_for: Option<u64>,
    /// `meant_for − first_corrupt_offset` when the wrong bytes overwrote the right ones:
    /// how early the buffer was reused.
    pub reused_early_by: Option<u64>,
    /// What went wrong: reuse, interleaved, lost or repeated bytes.
    pub diagnosis: Option<Diagnosis>,
    pub transport: String,
    pub reader: String,
    pub seed: u64,
    pub repeat_index: u32,
    pub geometry: Geometry,
    pub ops: u64,
    pub elapsed_ms: u64,
    /// Segments the lossy transport dropped in this repetition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_packets: Option<u64>,
    /// What the `tun` transport's peer counted: segments, retransmissions, losses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerStats>,
    pub kernel: String,
    /// How far this repetition's reuses exercised the hazard.
    pub exposure: Exposure,
    /// The hazards this repetition reached, in the vocabulary every backend reports in.
    pub hazards: Hazards,
    /// A UDP run's sends and their notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sends: Option<crate::executor::Sends>,
    /// What a UDP run's datagram receiver counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datagrams: Option<receiver::datagram::Datagrams>,
}

/// The verdict of a policy on one transport over all repetitions.
#[derive(Clone, Debug, Serialize)]
#[must_use = "a report says what was judged: print it or hand it on"]
pub struct RunReport {
    pub policy: String,
    pub transport: String,
    pub verdict: Verdict,
    /// The deciding repetition: the first corrupt one, else the first that was not safe,
    /// else the last.
    pub evidence: Evidence,
    /// Every repetition, in order.
    pub runs: Vec<Evidence>,
    /// The deciding repetition's trace.
    pub trace: Trace,
}

/// Priority of a repetition's verdict when combining: any corrupt run decides.
fn rank(v: Verdict) -> u8 {
    match v {
        Verdict::Corrupt => 4,
        Verdict::Error => 3,
        Verdict::Stuck => 2,
        Verdict::Unsupported => 1,
        Verdict::Safe | Verdict::Inconclusive => 0,
    }
}

/// Runs the policy built by `make` `opts.repeat` times over `opts.transport`.
pub fn run_policy<P: Policy>(
    make: impl Fn(&Geometry) -> P,
    name: &str,
    opts: &RunOptions,
) -> Result<RunReport, KernelError> {
    try_run_policy(|g| Ok::<P, std::convert::Infallible>(make(g)), name, opts)
}

/// [`run_policy`] for constructors that can refuse a geometry (catalogue entries).
pub fn try_run_policy<P: Policy, E: std::fmt::Display>(
    make: impl Fn(&Geometry) -> Result<P, E>,
    name: &str,
    opts: &RunOptions,
) -> Result<RunReport, KernelError> {
    opts.geometry.validate()?;
    let build = |g: &Geometry| {
        make(g).map_err(|e| KernelError::Usage(format!("{name} cannot use this geometry: {e}")))
    };
    build(&opts.geometry)?;
    if opts.socket == SocketKind::Udp {
        let max = receiver::datagram::MAX_PAYLOAD;
        if opts.geometry.chunk > max {
            return Err(KernelError::Usage(format!(
                "{name} sends a chunk per UDP datagram: {} bytes exceed the {max} a datagram carries (use {} byte chunks)",
                opts.geometry.chunk,
                default_geometry_for(SocketKind::Udp).chunk
            )));
        }
    }
    if opts.repeat == 0 {
        return Err(KernelError::Usage(
            "repeat must be at least 1: zero runs would judge nothing".into(),
        ));
    }
    let mut runs = Vec::new();
    let mut best: Option<(Evidence, Trace)> = None;
    for i in 0..opts.repeat {
        let (ev, trace) = run_once(build(&opts.geometry)?, name, opts, i)?;
        let better = match &best {
            None => true,
            Some((b, _)) => rank(ev.verdict) > rank(b.verdict),
        };
        runs.push(ev.clone());
        if better {
            best = Some((ev, trace));
        }
    }
    let (evidence, trace) = best.expect("repeat >= 1");
    Ok(RunReport {
        policy: name.to_string(),
        transport: opts.transport.label(),
        verdict: evidence.verdict,
        evidence,
        runs,
        trace,
    })
}

/// Who takes the stream: the verifying receiver's socket, or the `tun` peer.
enum FarEnd {
    Listener(std::net::TcpListener),
    Peer(TunDevice, PeerScript),
}

impl FarEnd {
    /// Receives one connection's stream (consumes the device: one connection per run).
    fn serve(
        self,
        addr: SocketAddr,
        ropts: &ReceiverOptions,
        cancel: &AtomicBool,
    ) -> (Received, Option<PeerStats>) {
        match self {
            FarEnd::Listener(l) => (receiver::serve_one_until(&l, ropts, cancel), None),
            FarEnd::Peer(mut dev, script) => {
                let SocketAddr::V4(me) = addr else {
                    unreachable!("the peer's address is IPv4")
                };
                let r = crate::tun::peer::serve(&mut dev, me, script, ropts, cancel);
                (r.received, Some(r.stats))
            }
        }
    }
}

/// Which repetition of which policy runs, and how.
#[derive(Clone, Copy)]
struct Repetition<'a> {
    name: &'a str,
    opts: &'a RunOptions,
    index: u32,
    /// The stream's seed: `opts.seed + index`.
    seed: u64,
}

/// One repetition, on the socket the policy sends on, over a network set up for it.
fn run_once<P: Policy>(
    policy: P,
    name: &str,
    opts: &RunOptions,
    index: u32,
) -> Result<(Evidence, Trace), KernelError> {
    let rep = Repetition {
        name,
        opts,
        index,
        seed: opts.seed.wrapping_add(index as u64),
    };
    let net = Network::setup(opts.transport)?;
    match opts.socket {
        SocketKind::Tcp => run_stream(policy, rep, net),
        SocketKind::Udp => run_datagrams(policy, rep, net),
    }
}

/// One repetition on a connected TCP stream.
fn run_stream<P: Policy>(
    mut policy: P,
    rep: Repetition<'_>,
    mut net: Network,
) -> Result<(Evidence, Trace), KernelError> {
    let (opts, seed, g) = (rep.opts, rep.seed, rep.opts.geometry);
    let start = Instant::now();
    let consumed = crate::exposure::Consumed::default();
    let ropts = ReceiverOptions {
        seed,
        expect: Some(g.stream),
        reader: opts.reader,
        app_ack: true,
        idle_timeout: opts.op_timeout + Duration::from_secs(2),
        accept_timeout: opts.op_timeout,
        consumed: consumed.clone(),
        // The executor measures its own reuses against `consumed` ([`crate::exposure`]).
        sender_queues: None,
    };
    let host = net.host;
    let far = match (net.tun.take(), opts.transport) {
        (Some(dev), Transport::Tun(script)) => FarEnd::Peer(dev, script),
        _ => {
            let listener =
                net.in_receiver(|| receiver::listen(SocketAddr::new(host.into(), 0)))??;
            if let Some(bytes) = opts.rcvbuf {
                receiver::set_rcvbuf(&listener, bytes)?;
            }
            FarEnd::Listener(listener)
        }
    };
    let addr = match &far {
        FarEnd::Listener(l) => l
            .local_addr()
            .map_err(|e| KernelError::io("getsockname", e))?,
        FarEnd::Peer(..) => SocketAddr::new(host.into(), crate::tun::PEER_PORT),
    };
    let cancel = AtomicBool::new(false);
    let timeout = opts.op_timeout;
    std::thread::scope(|s| -> Result<(Evidence, Trace), KernelError> {
        let rx = s.spawn(|| far.serve(addr, &ropts, &cancel));
        let sock = net.in_sender(|| TcpStream::connect_timeout(&addr, timeout))?;
        let sock = match sock {
            Ok(s) => s,
            Err(e) => {
                // Wake the receiver's accept: connect to it ourselves and hang up.
                cancel.store(true, Ordering::Relaxed);
                if !matches!(opts.transport, Transport::Tun(_)) {
                    let _ = net.in_receiver(|| TcpStream::connect(addr));
                }
                let _ = rx.join();
                return Err(KernelError::io(format!("connecting to {addr}"), e));
            }
        };
        if let Some(bytes) = opts.sndbuf {
            let v = i32::try_from(bytes)
                .map_err(|_| KernelError::Usage(format!("SO_SNDBUF {bytes} is too large")))?;
            let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
            crate::sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, v)
                .map_err(|e| KernelError::io("setsockopt(SO_SNDBUF)", e))?;
        }
        let mut ex = Executor::new(g, seed, sock, opts.op_timeout, consumed.clone())?;
        let driven = crate::send::drive(&mut policy, &mut ex, start, opts.run_timeout);
        let (received, peer): (Received, Option<PeerStats>) =
            rx.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        ex.drain_until_eof(Instant::now() + Duration::from_secs(2));
        let seen = Seen {
            dropped: net.dropped_packets(),
            retransmits: ex.total_retransmits(),
            exposure: ex.exposure(),
            sends: None,
            received,
            peer,
        };
        drop(ex);
        Ok(seen.record(driven, rep, start))
    })
}

/// One repetition on a connected UDP socket: a datagram per send to the datagram
/// receiver ([`receiver::datagram`]) in the receiving namespace (or on loopback), or to
/// the `tun` device's peer ([`crate::tun::peer::serve_datagrams`]); the reuses measured
/// against the error queue ([`crate::executor::Sends`]).
fn run_datagrams<P: Policy>(
    mut policy: P,
    rep: Repetition<'_>,
    mut net: Network,
) -> Result<(Evidence, Trace), KernelError> {
    let (opts, seed, g) = (rep.opts, rep.seed, rep.opts.geometry);
    net.carry_datagrams()?;
    let start = Instant::now();
    let ropts = ReceiverOptions {
        seed,
        expect: Some(g.stream),
        idle_timeout: opts.op_timeout + Duration::from_secs(2),
        ..ReceiverOptions::default()
    };
    let host = net.host;
    let mut far = match net.tun.take() {
        Some(dev) => Err(dev),
        // Room for the whole stream: the sender never waits for the reader.
        None => Ok(net.in_receiver(|| {
            receiver::datagram::bind(SocketAddr::new(host.into(), 0), g.stream + g.chunk)
        })??),
    };
    let addr = match &far {
        Ok(s) => s
            .local_addr()
            .map_err(|e| KernelError::io("getsockname", e))?,
        Err(_) => SocketAddr::new(host.into(), crate::tun::PEER_PORT),
    };
    let sock = net.in_sender(|| {
        let s = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))?;
        s.connect(addr)?;
        Ok::<_, std::io::Error>(s)
    })?;
    let sock =
        sock.map_err(|e| KernelError::io(format!("connecting a UDP socket to {addr}"), e))?;
    let cancel = AtomicBool::new(false);
    std::thread::scope(|s| -> Result<(Evidence, Trace), KernelError> {
        let rx = s.spawn(|| match &mut far {
            Ok(sock) => receiver::datagram::serve(sock, &ropts, &cancel),
            Err(dev) => crate::tun::peer::serve_datagrams(dev, addr.port(), &ropts, &cancel),
        });
        let mut ex = match Executor::udp(g, seed, sock, opts.op_timeout) {
            Ok(ex) => ex,
            Err(e) => {
                cancel.store(true, Ordering::Relaxed);
                let _ = rx.join();
                return Err(e);
            }
        };
        let driven = crate::send::drive(&mut policy, &mut ex, start, opts.run_timeout);
        let received = rx.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        let seen = Seen {
            dropped: net.dropped_packets(),
            retransmits: None,
            exposure: ex.exposure(),
            sends: ex.sends(),
            received,
            peer: None,
        };
        drop(ex);
        Ok(seen.record(driven, rep, start))
    })
}

/// What one repetition's sender and receiver counted, for its evidence and trace.
struct Seen {
    received: Received,
    peer: Option<PeerStats>,
    dropped: Option<u64>,
    retransmits: Option<u64>,
    exposure: Exposure,
    sends: Option<crate::executor::Sends>,
}

impl Seen {
    /// The repetition's evidence and trace: the verdict, the counts, the sender's calls
    /// and the receiver's checks on one timeline.
    fn record(
        self,
        driven: crate::send::Driven,
        rep: Repetition<'_>,
        start: Instant,
    ) -> (Evidence, Trace) {
        let Repetition {
            name,
            opts,
            index,
            seed,
        } = rep;
        let g = opts.geometry;
        let crate::send::Driven {
            ending,
            mut steps,
            ops,
            omitted,
            observed,
        } = driven;
        let Seen {
            received,
            peer,
            dropped,
            retransmits,
            exposure,
            sends,
        } = self;
        let hazards = repetition_hazards(&observed, &exposure, retransmits, &peer, sends);
        let (verdict, detail) = judge(ending, &received, sends);
        // Merge the receiver's log into the timeline.
        steps.extend(received.log.iter().cloned());
        steps.sort_by_key(|(t, _)| *t);
        let mut steps: Vec<Step> = steps
            .into_iter()
            .map(|(t, event)| Step {
                at_us: Some(t.saturating_duration_since(start).as_micros() as u64),
                ..Step::new(event)
            })
            .collect();
        if omitted > 0 {
            steps.push(Step::new(Event::Unrecorded { calls: omitted }));
        }
        let ev = Evidence {
            verdict,
            detail: detail.clone(),
            bytes_expected: g.stream,
            bytes_received: received.bytes,
            corrupt_words: received.corrupt_words,
            first_corrupt_offset: received.first_corrupt,
            meant_for: received.meant_for,
            reused_early_by: received.reused_early_by(),
            diagnosis: received.diagnosis,
            transport: opts.transport.label(),
            reader: opts.reader.label(),
            seed,
            repeat_index: index,
            geometry: g,
            ops,
            elapsed_ms: start.elapsed().as_millis() as u64,
            dropped_packets: dropped,
            peer,
            exposure,
            hazards,
            sends,
            datagrams: received.datagrams,
            kernel: crate::sys::kernel_release(),
        };
        let trace = Trace {
            format: TRACE_FORMAT_VERSION,
            policy: name.to_string(),
            transport: TraceTransport::Host(opts.transport),
            device: Default::default(),
            backend: Backend::Kernel,
            profile: opts.profile.clone(),
            geometry: g,
            steps,
            verdict,
            summary: detail,
            scenario: None,
        };
        (ev, trace)
    }
}

/// What would make a kernel run reach a hazard its repetitions never reached.
fn kernel_hint(h: Hazard) -> &'static str {
    match h {
        Hazard::Retransmission | Hazard::RetransmitAfterReuse => {
            "try -t tun --peer drop=3: a lost segment is sent again"
        }
        // Measured on host 6.18 over loopback, veth, veth-slow, veth-lossy and tun with
        // `drop=3` and `hold-acks`: never. `tcp_clean_rtx_queue` frees what the peer
        // acknowledged in sequence order, and these devices drop their clones at once
        // (`tun_net_xmit` copies the frags), so only a clone a NIC keeps past its ACK
        // completes out of order.
        Hazard::OutOfOrderCompletion => {
            "try `zcsafe check --losses 1`: on this host TCP completes in order (tcp_clean_rtx_queue)"
        }
        Hazard::Copied => {
            "try -t loopback or -t tun: local delivery and a TUN device copy MSG_ZEROCOPY data"
        }
        Hazard::Enobufs => "try a lower net.core.optmem_max",
        Hazard::CancelAfterQueued => {
            "try --reader crawl: a receiver that stops reading closes the window, so a send stalls part-way and its timeout fires"
        }
        Hazard::CounterWrap => "try `zcsafe check`: the kernel's counter is 32 bits wide",
        _ => "try a longer stream, --bytes, or more --repeat",
    }
}

/// [`kernel_hint`] for a UDP run: a reuse before its notification needs a datagram the
/// kernel holds past `sendmsg`, which only a queue on the way (a qdisc) gives locally.
fn udp_hint(h: Hazard) -> &'static str {
    match h {
        Hazard::ReuseBeforeRead | Hazard::ReuseWhileHeld => {
            "-t veth-slow: its tbf qdisc holds datagrams (a policy that waits for its notifications never reaches it)"
        }
        _ => kernel_hint(h),
    }
}

/// What one repetition reached: the calls' answers, the reuses the executor timed against
/// the receiver, the sender's retransmissions (`TCP_INFO`), and — over `tun` — whether a
/// retransmission carried rewritten bytes. On UDP the reuses are timed against the error
/// queue, so one made before its notification is also `reuse-while-held`, and the
/// notifications the executor read say whether the kernel copied.
fn repetition_hazards(
    observed: &Observer,
    exposure: &Exposure,
    retransmits: Option<u64>,
    peer: &Option<PeerStats>,
    sends: Option<crate::executor::Sends>,
) -> Hazards {
    let mut h = observed.hazards().clone();
    exposure.add_to(&mut h);
    if let Some(s) = sends {
        h.on_socket(SocketKind::Udp);
        if exposure.reuses_while_unread > 0 {
            h.add_count(Hazard::ReuseWhileHeld, exposure.reuses_while_unread);
        }
        if s.copied > 0 && observed.hazards().count(Hazard::Copied) == 0 {
            h.add_count(Hazard::Copied, s.copied);
        }
    }
    if let Some(n) = retransmits.filter(|n| *n > 0) {
        h.add_count(Hazard::Retransmission, n);
    }
    if peer.as_ref().is_some_and(|p| p.stale_words > 0) {
        h.add_count(Hazard::RetransmitAfterReuse, 1);
    }
    h
}

/// The verdict of one repetition: what the receiver saw decides, unless the sender could
/// not finish. A UDP run that lost, repeated or reordered a datagram is `inconclusive`
/// before anything else: its wrong bytes may be a gap, not a reuse.
fn judge(
    ending: Option<(Verdict, String)>,
    r: &Received,
    sends: Option<crate::executor::Sends>,
) -> (Verdict, String) {
    let gap = r.datagrams.zip(sends).and_then(|(d, s)| d.gap(s.datagrams));
    if let Some(gap) = gap {
        let mut d = format!(
            "{}; but {gap}, so the bytes say nothing about reuse",
            r.summary()
        );
        if let Some((v, why)) = &ending {
            d += &format!("; the sender also ended {v}: {why}");
        }
        return (Verdict::Inconclusive, d);
    }
    if r.is_corrupt() {
        let mut d = r.summary();
        if let Some((v, why)) = &ending {
            d += &format!("; the sender also ended {v}: {why}");
        }
        return (Verdict::Corrupt, d);
    }
    if let Some((v, why)) = ending {
        return (v, why);
    }
    if r.is_intact() {
        return (Verdict::Safe, r.summary());
    }
    (Verdict::Error, r.summary())
}

impl RunReport {
    /// How long the repetitions took, for the separate `timing` object (`--timings`),
    /// apart from the finding so that the finding holds only what the run decided.
    pub fn timing(&self) -> zcsafe_policy::FindingTiming {
        let runs_ms: Vec<f64> = self.runs.iter().map(|r| r.elapsed_ms as f64).collect();
        zcsafe_policy::FindingTiming {
            policy: self.policy.clone(),
            transport: self.transport.clone(),
            elapsed_ms: runs_ms.iter().sum(),
            runs_ms,
        }
    }

    /// Repetitions that saw corrupt bytes.
    pub fn corrupt_runs(&self) -> usize {
        self.runs
            .iter()
            .filter(|r| r.verdict == Verdict::Corrupt)
            .count()
    }

    /// Every repetition's reuses together.
    pub fn exposure(&self) -> Exposure {
        self.runs
            .iter()
            .fold(Exposure::default(), |a, r| a + r.exposure)
    }

    /// Every repetition's hazards together, each one never reached with the setting
    /// that would reach it.
    pub fn hazards(&self) -> Hazards {
        let all = self.runs.iter().fold(Hazards::default(), |mut a, r| {
            a.merge(&r.hazards);
            a
        });
        match self.sends() {
            Some(_) => all.with_hints(udp_hint),
            None => all.with_hints(kernel_hint),
        }
    }

    /// A UDP run's sends over every repetition (`None` on TCP).
    pub fn sends(&self) -> Option<crate::executor::Sends> {
        self.runs
            .iter()
            .filter_map(|r| r.sends)
            .reduce(|a, b| a + b)
    }

    /// The verdict with its evidence weighed: a `safe` run is `inconclusive` (with the
    /// reason) when the policy never reused a buffer, or when the expectation or the model
    /// says this policy corrupts here and no reuse happened while the previous bytes were
    /// still unread — the one moment its failure needs. On UDP that moment is a reuse
    /// before the send's notification ([`crate::executor::Sends`]): after it the receiver
    /// reads a copy however far behind it is.
    pub fn judged(
        &self,
        expected: &zcsafe_policy::Expectation,
        predicted: Option<Verdict>,
    ) -> (Verdict, String) {
        let x = self.exposure();
        let detail = self.evidence.detail.clone();
        if self.verdict != Verdict::Safe {
            return (self.verdict, detail);
        }
        let fails_here =
            expected.verdict == Verdict::Corrupt || predicted == Some(Verdict::Corrupt);
        if x.moments() == 0 {
            return (
                Verdict::Inconclusive,
                format!("{detail}; but the policy never rewrote or gave back a page it had sent, so nothing could be reused too early (a longer stream, --bytes, makes it reuse)"),
            );
        }
        let sends = self.sends();
        // A send with a linked timeout is judged by what happens when the timer cancels
        // it after part of it was queued: a run in which that never happened is no proof.
        if self
            .hazards()
            .unreached()
            .any(|h| h == Hazard::CancelAfterQueued)
        {
            return (
                Verdict::Inconclusive,
                format!("{detail}; but no linked timeout cancelled a send after it had queued part of its bytes, the moment this policy is about ({})", kernel_hint(Hazard::CancelAfterQueued)),
            );
        }
        if fails_here && x.moments_while_unread() == 0 {
            let why = match sends {
                Some(s) => format!(
                    "every one of its {} reuses came after the kernel had let go of the page: \
                     {} of {} zero-copy datagrams were notified by the end, {} COPIED, each notification \
                     already queued when the policy rewrote the slot (the kernel copied the frags inside \
                     sendmsg; -t veth-slow holds datagrams in a tbf qdisc)",
                    x.moments(),
                    s.notified,
                    s.zerocopy,
                    s.copied
                ),
                None => format!(
                    "none of its {} reuses came while the previous bytes were still unread (the receiver was always ahead)",
                    x.moments()
                ),
            };
            return (
                Verdict::Inconclusive,
                format!("{detail}; but {why}, so the window its failure needs never opened"),
            );
        }
        if let Some(s) = sends.filter(|s| s.fills_while_held == 0) {
            return (
                Verdict::Inconclusive,
                format!(
                    "{detail}; but the kernel never held a datagram past its sendmsg: at each of {} fills \
                     every earlier zero-copy datagram was notified already ({} of {} by the end, {} COPIED: \
                     the kernel copied the frags inside the call), so the reuse its rule guards against could \
                     never have been early (-t veth-slow holds datagrams in a tbf qdisc)",
                    x.moments(),
                    s.notified,
                    s.zerocopy,
                    s.copied
                ),
            );
        }
        let exercised = match sends {
            Some(s) => format!(
                "{} of {} fills came while the kernel still held an earlier datagram, {} of {} reuses \
                 before their send's notification",
                s.fills_while_held,
                s.datagrams,
                x.moments_while_unread(),
                x.moments()
            ),
            None => format!(
                "{} of {} reuses came while the previous bytes were still unread (up to {} bytes behind)",
                x.moments_while_unread(),
                x.moments(),
                x.max_unread_bytes
            ),
        };
        (
            Verdict::Safe,
            format!("{detail}; {exercised}; {}", self.hazards().clause()),
        )
    }

    /// This report in the shape every command's JSON uses (backend `kernel`), beside the
    /// policy's expectation and, when given, the model's prediction for the same profile.
    pub fn to_finding(
        &self,
        expected: &zcsafe_policy::Expectation,
        predicted: Option<Verdict>,
    ) -> zcsafe_policy::Finding {
        let e = &self.evidence;
        let (verdict, detail) = self.judged(expected, predicted);
        let mut counts = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            counts.insert(k.into(), v);
        };
        put("bytes_expected", e.bytes_expected.into());
        put("bytes_received", e.bytes_received.into());
        put("corrupt_words", e.corrupt_words.into());
        put("first_corrupt_offset", e.first_corrupt_offset.into());
        put("meant_for", e.meant_for.into());
        put("reused_early_by", e.reused_early_by.into());
        put(
            "diagnosis",
            serde_json::to_value(e.diagnosis).unwrap_or_default(),
        );
        put("seed", e.seed.into());
        put("repeat_index", e.repeat_index.into());
        put("repeat", (self.runs.len() as u64).into());
        put("corrupt_runs", (self.corrupt_runs() as u64).into());
        put("reader", e.reader.clone().into());
        put("ops", e.ops.into());
        // The wall clock is not evidence that repeats: it goes in `timing()`.
        if let Some(d) = e.dropped_packets {
            put("dropped_packets", d.into());
        }
        if let Some(p) = &e.peer {
            put("peer", serde_json::to_value(p).unwrap_or_default());
        }
        put(
            "geometry",
            serde_json::to_value(e.geometry).unwrap_or_default(),
        );
        put(
            "exposure",
            serde_json::to_value(self.exposure()).unwrap_or_default(),
        );
        if let Some(sends) = self.sends() {
            put("sends", serde_json::to_value(sends).unwrap_or_default());
        }
        if let Some(d) = e.datagrams {
            put("datagrams", serde_json::to_value(d).unwrap_or_default());
        }
        zcsafe_policy::Finding {
            policy: self.policy.clone(),
            transport: self.transport.clone(),
            backend: "kernel".into(),
            kernel: Some(e.kernel.clone()),
            verdict,
            expected: expected.verdict,
            expected_why: expected.why.into(),
            predicted,
            evidence: zcsafe_policy::Evidence {
                detail,
                // A safe run's trace is long and says nothing; keep the ones that explain.
                trace: (verdict != Verdict::Safe).then(|| self.trace.clone()),
                counts,
                attempts: Vec::new(),
                hazards: Some(self.hazards()),
                ..Default::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::Sends;
    use crate::receiver::datagram::Datagrams;
    use crate::receiver::StreamEnd;

    fn received(corrupt_words: u64, datagrams: Datagrams, bytes: u64) -> Received {
        Received {
            bytes,
            expected: Some(4 << 15),
            corrupt_words,
            first_corrupt: (corrupt_words > 0).then_some(1 << 15),
            meant_for: None,
            diagnosis: None,
            held: Default::default(),
            datagrams: Some(datagrams),
            end: StreamEnd::Eof,
            error: None,
            elapsed_ms: 0,
            log: Vec::new(),
        }
    }

    #[test]
    fn a_lost_datagram_makes_wrong_bytes_inconclusive_not_corrupt() {
        let sends = Sends {
            datagrams: 4,
            ..Sends::default()
        };
        // Three of four arrived: the later ones sit one place early and read as wrong.
        let lost = Datagrams {
            received: 3,
            out_of_place: 2,
            ..Datagrams::default()
        };
        let (v, why) = judge(None, &received(8192, lost, 3 << 15), Some(sends));
        assert_eq!(v, Verdict::Inconclusive, "{why}");
        assert!(why.contains("3 of 4 datagrams arrived"), "{why}");
        // All four arrived and a place is missing: the bytes were rewritten.
        let all = Datagrams {
            received: 4,
            out_of_place: 1,
            ..Datagrams::default()
        };
        let (v, why) = judge(None, &received(4096, all, 4 << 15), Some(sends));
        assert_eq!(v, Verdict::Corrupt, "{why}");
        // The same wrong bytes on TCP (no datagram counts) are corrupt as before.
        let tcp = Received {
            datagrams: None,
            ..received(8192, lost, 3 << 15)
        };
        assert_eq!(judge(None, &tcp, None).0, Verdict::Corrupt);
    }
}
