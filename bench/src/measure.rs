//! One measured stream: a policy sends `geometry.stream` bytes to the verifying receiver
//! (fast reader), and we record wall time, the sending thread's CPU time and the user
//! memory the kernel held at once.
//!
//! CPU time comes from `getrusage(RUSAGE_THREAD)` on the thread that performs every
//! system call of the policy (the executor runs on the calling thread). The kernel's
//! `sum_exec_runtime` backs it, so user + sys is exact to the microsecond; the split
//! between user and sys is tick-sampled. `/proc/thread-self/stat` has the same source
//! in clock ticks (10 ms), too coarse for a 100 ms stream. Softirq work the kernel does
//! on this thread (on loopback and veth the whole receive path of the peer socket runs
//! in the sender's `local_bh_enable`) is charged to it: that is part of the cost of
//! sending on a local path, and it is the same for every policy.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use zcsafe_kernel::executor::{Executor, Performed};
use zcsafe_kernel::receiver::{self, ReaderSpeed, Received, ReceiverOptions};
use zcsafe_kernel::veth::Network;
use zcsafe_policy::{Abort, Geometry, Op, Outcome, Policy};

/// What one stream cost.
#[derive(Clone, Debug)]
pub struct Sample {
    pub bytes: u64,
    /// From the first operation to the receiver's end of stream.
    pub wall: Duration,
    /// From the first operation to `Finish` (all bytes handed to the kernel).
    pub send_wall: Duration,
    /// User and system CPU time of the sending thread, first operation to `Finish`.
    pub sender_user: Duration,
    pub sender_sys: Duration,
    /// CPU time of the receiving thread (reads and verification).
    pub receiver_cpu: Duration,
    /// Largest number of user-buffer bytes the kernel held at once, when the policy's
    /// operations tell (`None` for sendfile and gifted pages: the kernel holds pages
    /// the process no longer maps, and nothing says until when).
    pub peak_pinned: Option<u64>,
    pub ops: u64,
    /// Words the receiver found wrong (an unsafe policy may corrupt even here).
    pub corrupt_words: u64,
    /// How far the policy's reuses exercised the hazard.
    pub exposure: zcsafe_kernel::Exposure,
    /// Why the stream did not complete, if it did not.
    pub failure: Option<Failure>,
}

/// Why a stream did not complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The policy stopped because the kernel lacks what it needs (`Abort::Unsupported`,
    /// e.g. no `SEND_ZC` before 6.0): the verdict is `unsupported`, not a failed bench.
    Unsupported(String),
    /// Anything else: a failed call, a stuck wait, a short stream.
    Failed(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unsupported(r) => write!(f, "unsupported: {r}"),
            Failure::Failed(r) => f.write_str(r),
        }
    }
}

impl Sample {
    pub fn sender_cpu(&self) -> Duration {
        self.sender_user + self.sender_sys
    }

    pub fn throughput(&self) -> f64 {
        self.bytes as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Sender CPU seconds per GiB sent.
    pub fn cpu_s_per_gib(&self) -> f64 {
        self.sender_cpu().as_secs_f64() / (self.bytes as f64 / (1u64 << 30) as f64)
    }
}

/// `getrusage(RUSAGE_THREAD)`: (user, system) CPU time of the calling thread.
pub fn thread_cpu() -> (Duration, Duration) {
    // SAFETY: rusage is plain old data (all zeroes is valid), and getrusage writes only
    // into the one we pass, which lives on this stack frame.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// User-buffer bytes the kernel holds, from the operations and their outcomes.
#[derive(Default)]
struct Pinned {
    /// `MSG_ZEROCOPY`: (counter, bytes) of sends without a notification yet.
    zc_next: u32,
    zc: VecDeque<(u32, u64)>,
    /// io_uring SEND_ZC: bytes per user_data until its NOTIF CQE.
    uring: HashMap<u32, u64>,
    /// vmsplice: regions (offset → len) handed to the pipe and not yet refilled or
    /// unmapped by the policy (no kernel signal tells when they are free).
    spliced: BTreeMap<u64, u64>,
    now: u64,
    peak: u64,
    unknown: bool,
}

impl Pinned {
    fn add(&mut self, n: u64) {
        self.now += n;
        self.peak = self.peak.max(self.now);
    }

    fn sub(&mut self, n: u64) {
        self.now = self.now.saturating_sub(n);
    }

    fn forget_region(&mut self, offset: u64, len: u64) {
        let gone: Vec<(u64, u64)> = self
            .spliced
            .range(offset..offset + len)
            .map(|(&o, &l)| (o, l))
            .collect();
        for (o, l) in gone {
            self.spliced.remove(&o);
            self.sub(l);
        }
    }

    fn record(&mut self, g: &Geometry, op: &Op, out: &Outcome) {
        match (op, out) {
            (Op::Send { zerocopy: true, .. }, Outcome::Done(n)) if *n > 0 => {
                self.zc.push_back((self.zc_next, *n));
                self.zc_next = g.zc_next(self.zc_next);
                self.add(*n);
            }
            (Op::ReadErrqueue { .. }, Outcome::Zc(Some(z))) => {
                let mut freed = 0;
                self.zc.retain(|&(id, n)| {
                    let hit = g.zc_in_range(id, z.lo, z.hi);
                    if hit {
                        freed += n;
                    }
                    !hit
                });
                self.sub(freed);
            }
            (Op::UringSendZc { buf, user_data, .. }, Outcome::Ok) => {
                self.uring.insert(*user_data, buf.len);
                self.add(buf.len);
            }
            (Op::UringWaitCqe, Outcome::Cqe(c)) if c.notif || !c.more => {
                if let Some(n) = self.uring.remove(&c.user_data) {
                    self.sub(n);
                }
            }
            (Op::Vmsplice { buf, .. }, Outcome::Done(n)) if *n > 0 => {
                self.spliced.insert(buf.offset, *n);
                self.add(*n);
            }
            (Op::Fill { buf, .. }, Outcome::Ok) => self.forget_region(buf.offset, buf.len),
            // Unmapped (gifted) pages and page-cache pages stay held by the kernel, but
            // nothing tells until when: not user buffer any more, and not known.
            (Op::Munmap { .. } | Op::Sendfile { .. }, _) => self.unknown = true,
            _ => {}
        }
    }

    fn peak(&self) -> Option<u64> {
        (!self.unknown).then_some(self.peak)
    }
}

/// Options of one stream.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    pub geometry: Geometry,
    pub seed: u64,
    /// The receiver writes consumed-byte counts back (for `app-ack`).
    pub app_ack: bool,
    pub op_timeout: Duration,
    pub run_timeout: Duration,
}

/// Sends one stream with `policy` over `net` and measures it.
pub fn measure_stream<P: Policy>(
    mut policy: P,
    net: &Network,
    opts: &StreamOptions,
) -> Result<Sample, String> {
    let g = opts.geometry;
    let consumed = zcsafe_kernel::Consumed::default();
    let ropts = ReceiverOptions {
        seed: opts.seed,
        expect: Some(g.stream),
        reader: ReaderSpeed::Fast,
        app_ack: opts.app_ack,
        idle_timeout: opts.op_timeout + Duration::from_secs(2),
        accept_timeout: opts.op_timeout,
        consumed: consumed.clone(),
        sender_queues: None,
    };
    let host = net.host;
    let listener = net
        .in_receiver(|| receiver::listen(SocketAddr::new(host.into(), 0)))
        .and_then(|r| r)
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let timeout = opts.op_timeout;
    std::thread::scope(|s| {
        let rx = s.spawn(|| {
            let (u0, s0) = thread_cpu();
            let got: Received = receiver::serve_one(&listener, &ropts);
            let end = Instant::now();
            let (u1, s1) = thread_cpu();
            (got, end, (u1 + s1).saturating_sub(u0 + s0))
        });
        let sock = net
            .in_sender(|| TcpStream::connect_timeout(&addr, timeout))
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| format!("connecting to {addr}: {e}")));
        let sock = match sock {
            Ok(s) => s,
            Err(e) => {
                let _ = net.in_receiver(|| TcpStream::connect(addr));
                let _ = rx.join();
                return Err(e);
            }
        };
        let mut ex = match Executor::new(g, opts.seed, sock, opts.op_timeout, consumed.clone()) {
            Ok(ex) => ex,
            Err(e) => {
                let _ = net.in_receiver(|| TcpStream::connect(addr));
                let _ = rx.join();
                return Err(e.to_string());
            }
        };
        // A sender that polls (SIOCOUTQ) naps in microseconds: without this, every nap
        // lasts at least the default 50 µs timer slack.
        // SAFETY: PR_SET_TIMERSLACK takes a plain integer and touches no memory; it
        // changes the calling (sender) thread only.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
        let mut pinned = Pinned::default();
        let mut ops = 0u64;
        let start = Instant::now();
        let deadline = start + opts.run_timeout;
        let (u0, s0) = thread_cpu();
        let failure: Option<Failure> = loop {
            let op = policy.poll_op();
            match &op {
                Op::Finish => {
                    ex.shutdown_write();
                    break None;
                }
                Op::Abort(Abort::Unsupported(r)) => break Some(Failure::Unsupported(r.clone())),
                Op::Abort(Abort::Failed(r)) => {
                    break Some(Failure::Failed(format!("policy gave up: {r}")))
                }
                _ => {}
            }
            if ops % 256 == 0 && Instant::now() > deadline {
                break Some(Failure::Failed(format!(
                    "the stream exceeded {:.0} s after {ops} operations",
                    opts.run_timeout.as_secs_f64()
                )));
            }
            ops += 1;
            match ex.perform(&op) {
                Performed::Outcome(o) => {
                    pinned.record(&g, &op, &o);
                    policy.handle(o);
                }
                Performed::Stuck(w) => break Some(Failure::Failed(format!("{op}: stuck: {w}"))),
                Performed::Failed(w) => break Some(Failure::Failed(format!("{op}: {w}"))),
            }
        };
        let (u1, s1) = thread_cpu();
        let send_wall = start.elapsed();
        if failure.is_some() {
            ex.abort_connection();
        }
        let (got, end, receiver_cpu) = rx.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        ex.drain_until_eof(Instant::now() + Duration::from_secs(2));
        let exposure = ex.exposure();
        drop(ex);
        let failure = failure.or_else(|| {
            (!got.is_intact() && !got.is_corrupt()).then(|| Failure::Failed(got.summary()))
        });
        Ok(Sample {
            bytes: got.bytes,
            wall: end.saturating_duration_since(start),
            send_wall,
            sender_user: u1.saturating_sub(u0),
            sender_sys: s1.saturating_sub(s0),
            receiver_cpu,
            // The same page can be pinned by several sends (zc-naive never waits).
            peak_pinned: pinned.peak().map(|p| p.min(g.buffer)),
            ops,
            corrupt_words: got.corrupt_words,
            exposure,
            failure,
        })
    })
}
