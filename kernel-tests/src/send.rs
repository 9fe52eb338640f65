//! The sender alone: a policy's operations, with real system calls, on a socket connected
//! to any receiver — zcsafe's own in `run`, `zcsafe receive` on another host, or the
//! verifying receiver of `run --external` around `zcsafe send` (which is how a policy runs
//! under the sanitizer: the sender is then a program of its own).

use crate::error::KernelError;
use crate::executor::{Executor, Performed};
use crate::exposure::Consumed;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use zcsafe_policy::{Abort, Answer, Event, Geometry, Observer, Op, Policy, Verdict};

/// Calls recorded in a trace before the rest are only counted.
const MAX_STEPS: usize = 4000;

/// How the policy's run went, sender side.
#[derive(Debug)]
pub(crate) struct Driven {
    /// `None` when the policy finished; else the verdict it ended with and why.
    pub ending: Option<(Verdict, String)>,
    /// The calls made, with when (the first [`MAX_STEPS`]).
    pub steps: Vec<(Instant, Event)>,
    /// Calls made.
    pub ops: u64,
    /// Calls made past [`MAX_STEPS`], not recorded.
    pub omitted: u64,
    /// The hazards the calls and their answers showed (all calls, recorded or not).
    pub observed: Observer,
}

/// Performs `policy`'s operations through `ex` until the policy finishes (the write side
/// is then shut down), aborts, fails, gets stuck, or the run outlives `run_timeout`.
pub(crate) fn drive<P: Policy>(
    policy: &mut P,
    ex: &mut Executor,
    start: Instant,
    run_timeout: Duration,
) -> Driven {
    let mut steps: Vec<(Instant, Event)> = Vec::new();
    let mut omitted = 0u64;
    let mut ops = 0u64;
    let mut observed = Observer::default();
    let deadline = start + run_timeout;
    let ending = loop {
        let op = policy.poll_op();
        match &op {
            Op::Finish => {
                ex.shutdown_write();
                break None;
            }
            Op::Abort(Abort::Unsupported(why)) => {
                let ctx = ex
                    .last_error
                    .clone()
                    .unwrap_or_else(|| format!("Linux {}", crate::sys::kernel_release()));
                break Some((Verdict::Unsupported, format!("{why} ({ctx})")));
            }
            Op::Abort(Abort::Failed(why)) => {
                break Some((Verdict::Error, format!("policy failed: {why}")));
            }
            _ => {}
        }
        if Instant::now() > deadline {
            break Some((
                Verdict::Stuck,
                format!(
                    "the run exceeded {:.0} s after {ops} operations (next: {op})",
                    run_timeout.as_secs_f64()
                ),
            ));
        }
        let t = Instant::now();
        let done = ex.perform(&op);
        ops += 1;
        let answer = match &done {
            Performed::Outcome(o) => {
                observed.call(&op, o);
                Answer::Returned(o.clone())
            }
            Performed::Stuck(w) => Answer::Stuck(w.clone()),
            Performed::Failed(w) => Answer::Failed(w.clone()),
        };
        if steps.len() < MAX_STEPS {
            steps.push((
                t,
                Event::Call {
                    op: op.clone(),
                    answer,
                    // A real kernel does not show which pages it still holds.
                    wrote_held: Vec::new(),
                },
            ));
        } else {
            omitted += 1;
        }
        match done {
            Performed::Outcome(o) => policy.handle(o),
            Performed::Stuck(w) => break Some((Verdict::Stuck, format!("{op}: {w}"))),
            Performed::Failed(w) => break Some((Verdict::Error, format!("{op}: {w}"))),
        }
    };
    if ending.is_some() {
        ex.abort_connection();
    }
    Driven {
        ending,
        steps,
        ops,
        omitted,
        observed,
    }
}

/// Options of [`send_to`].
#[derive(Clone, Debug)]
pub struct SendOptions {
    /// The policy's buffers, chunks and stream length.
    pub geometry: Geometry,
    /// The stream pattern's seed (the receiver must use the same).
    pub seed: u64,
    /// The longest any single blocking operation (the connect too) may wait.
    pub op_timeout: Duration,
    /// The longest the whole stream may take.
    pub run_timeout: Duration,
}

/// What the sender alone can say: whether the policy got through its stream. Whether the
/// bytes arrived intact only the receiver knows.
#[derive(Debug)]
#[must_use = "the sender's ending says whether the stream was sent: report it"]
pub struct SendReport {
    /// `None` when the policy finished its stream; else the verdict it ended with and why
    /// (`unsupported`, `stuck`, `error`).
    pub ending: Option<(Verdict, String)>,
    /// Calls made.
    pub ops: u64,
    /// Stream bytes the policy was to send.
    pub stream: u64,
}

/// Connects to `addr` and sends the stream with `policy` on that socket.
///
/// Policies that wait for the receiver's application-level acknowledgements need a
/// receiver that writes them (`zcsafe receive --app-ack`, `run --external … --app-ack`).
pub fn send_to<P: Policy>(
    mut policy: P,
    addr: SocketAddr,
    opts: &SendOptions,
) -> Result<SendReport, KernelError> {
    opts.geometry.validate()?;
    let start = Instant::now();
    let sock = TcpStream::connect_timeout(&addr, opts.op_timeout)
        .map_err(|e| KernelError::io(format!("connecting to {addr}"), e))?;
    // Nobody publishes how far the receiver read: the exposure this executor measures is
    // not reported.
    let mut ex = Executor::new(
        opts.geometry,
        opts.seed,
        sock,
        opts.op_timeout,
        Consumed::default(),
    )?;
    let driven = drive(&mut policy, &mut ex, start, opts.run_timeout);
    ex.drain_until_eof(Instant::now() + Duration::from_secs(2));
    Ok(SendReport {
        ending: driven.ending,
        ops: driven.ops,
        stream: opts.geometry.stream,
    })
}
