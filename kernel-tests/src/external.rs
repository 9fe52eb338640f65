//! External mode: any sender program, in any language, that sends the stream pattern.
//!
//! The command runs through `sh -c` inside the sender's namespace with `{host}` and
//! `{port}` replaced (and `ZCSAFE_HOST`, `ZCSAFE_PORT`, `ZCSAFE_SEED` in its environment);
//! it must connect, send the stream and close. The receiver judges the bytes.
//!
//! The answer is one [`Finding`] of policy [`EXTERNAL_POLICY`] ([`ExternalReport::to_finding`]),
//! so `zcsafe run --external --json` prints the `results` shape of every other command and
//! the VM matrix reads a guest's external run like any policy cell.

use crate::error::KernelError;
use crate::receiver::{self, ReaderSpeed, Received, ReceiverOptions, StreamEnd};
use crate::transport::Transport;
use crate::veth::Network;
use serde::Serialize;
use std::io::Read;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zcsafe_policy::{Evidence, Finding, Results, Verdict};

/// Options of an external run.
#[derive(Clone, Debug)]
pub struct ExternalOptions {
    pub transport: Transport,
    pub seed: u64,
    pub reader: ReaderSpeed,
    /// Exact stream length expected; `None` accepts any non-empty stream.
    pub expect: Option<u64>,
    /// Write consumed-byte counts back (for senders that use application ACKs).
    pub app_ack: bool,
    /// The sender must have exited by then.
    pub timeout: Duration,
}

impl Default for ExternalOptions {
    fn default() -> Self {
        ExternalOptions {
            transport: Transport::Loopback,
            seed: 0,
            reader: ReaderSpeed::Slow,
            expect: None,
            app_ack: false,
            timeout: Duration::from_secs(60),
        }
    }
}

/// The policy name of an external sender's finding.
pub const EXTERNAL_POLICY: &str = "external";

/// What any sender is expected to do, whatever its reuse policy.
pub const EXTERNAL_EXPECTATION: &str = "an external sender must deliver the stream intact";

/// The four answers of an external run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalOutcome {
    /// Every byte arrived as the stream pattern says, and the kernel was seen holding
    /// stream bytes between the two programs (exit 0).
    Intact,
    /// Every byte arrived intact, but the kernel was never seen holding any: the receiver
    /// always found its queue empty and the sender's socket had nothing unacknowledged, so
    /// no reuse could have been too early — `inconclusive` (exit 4).
    Unexercised,
    /// The receiver saw bytes written after they were handed to the kernel (exit 1).
    Corrupted,
    /// The run itself failed: sender exit status, no connection, timeout (exit 2).
    Failed,
}

/// What happened to the external sender's stream.
#[derive(Clone, Debug, Serialize)]
#[must_use = "a report says what was judged: print it or hand it on"]
pub struct ExternalReport {
    pub outcome: ExternalOutcome,
    pub detail: String,
    pub command: String,
    pub transport: String,
    pub received: Received,
    /// How early the buffer was reused, when the receiver's diagnosis is an overwrite
    /// ([`Received::reused_early_by`]); the diagnosis itself is in `received`.
    pub reused_early_by: Option<u64>,
    pub sender_exit: Option<i32>,
    pub sender_timed_out: bool,
    /// The last lines the sender wrote to stderr.
    pub sender_stderr_tail: String,
    pub seed: u64,
    pub reader: String,
    pub elapsed_ms: u64,
}

impl ExternalOutcome {
    /// The word a person reads first.
    pub fn word(self) -> &'static str {
        match self {
            ExternalOutcome::Intact => "INTACT",
            ExternalOutcome::Unexercised => "INTACT, BUT NOT EXERCISED",
            ExternalOutcome::Corrupted => "CORRUPTED",
            ExternalOutcome::Failed => "RUN FAILED",
        }
    }
}

impl ExternalReport {
    /// The verdict: intact is `safe`, intact with nothing ever held `inconclusive`,
    /// corrupted `corrupt`, a failed run `error` (nothing was judged).
    pub fn verdict(&self) -> Verdict {
        match self.outcome {
            ExternalOutcome::Intact => Verdict::Safe,
            ExternalOutcome::Unexercised => Verdict::Inconclusive,
            ExternalOutcome::Corrupted => Verdict::Corrupt,
            ExternalOutcome::Failed => Verdict::Error,
        }
    }

    /// The report as a finding of policy [`EXTERNAL_POLICY`], expected `safe`; every other
    /// field of the report (outcome, bytes, command, sender exit and stderr, …) is in
    /// `evidence.counts`.
    pub fn to_finding(&self) -> Finding {
        let mut counts = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        counts.remove("detail");
        counts.remove("transport");
        Finding {
            policy: EXTERNAL_POLICY.into(),
            transport: self.transport.clone(),
            backend: "kernel".into(),
            kernel: Some(crate::kernel_release()),
            verdict: self.verdict(),
            expected: Verdict::Safe,
            expected_why: EXTERNAL_EXPECTATION.into(),
            predicted: None,
            evidence: Evidence {
                detail: self.detail.clone(),
                trace: None,
                counts,
                attempts: Vec::new(),
                ..Default::default()
            },
        }
    }

    /// The exit status every command uses ([`Results::exit_code`]): 0 intact, 1 corrupted,
    /// 3 the run failed, 4 not exercised.
    pub fn exit_code(&self) -> u8 {
        Results::new(vec![self.to_finding()]).exit_code()
    }
}

const TAIL: usize = 4096;

/// A sender program: its argument vector and extra environment, in which `{host}` and
/// `{port}` are replaced by the receiver's address once it listens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sender {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Set in its environment besides `ZCSAFE_HOST`, `ZCSAFE_PORT`, `ZCSAFE_SEED`.
    pub env: Vec<(String, String)>,
}

impl Sender {
    /// A shell command line, run through `/bin/sh -c`.
    pub fn shell(cmd: &str) -> Sender {
        Sender {
            argv: vec!["/bin/sh".into(), "-c".into(), cmd.into()],
            env: Vec::new(),
        }
    }

    /// Whether an argument asks for the receiver's address.
    pub fn wants_receiver(&self) -> bool {
        self.argv
            .iter()
            .any(|a| a.contains("{host}") || a.contains("{port}"))
    }

    /// The command as a user reads it: the shell line, or the arguments joined.
    fn display(argv: &[String]) -> String {
        match argv {
            [sh, c, cmd] if sh == "/bin/sh" && c == "-c" => cmd.clone(),
            _ => argv.join(" "),
        }
    }
}

/// Waits for `child` until `deadline`; past it, kills its process group (the child was
/// started as a group leader). Returns the status (None if it could not be had) and
/// whether the deadline passed.
pub fn wait_until(
    child: &mut std::process::Child,
    deadline: Instant,
) -> (Option<std::process::ExitStatus>, bool) {
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return (Some(st), false),
            Ok(None) if Instant::now() >= deadline => {
                // SAFETY: kill touches no memory. The group id is our child's pid, and
                // the child is not reaped yet (try_wait said so), so the id cannot have
                // been reused by an unrelated process group.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                return (child.wait().ok(), true);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => return (None, false),
        }
    }
}

/// Runs `cmd` as the sender over `opts.transport` and judges what it sent.
pub fn run_external(cmd: &str, opts: &ExternalOptions) -> Result<ExternalReport, KernelError> {
    if cmd.trim().is_empty() {
        return Err(KernelError::Usage("the external command is empty".into()));
    }
    run_sender(&Sender::shell(cmd), opts)
}

/// Runs `sender` over `opts.transport` and judges what it sent (as [`run_external`]).
pub fn run_sender(sender: &Sender, opts: &ExternalOptions) -> Result<ExternalReport, KernelError> {
    let Some((program, args)) = sender.argv.split_first() else {
        return Err(KernelError::Usage("the sender command is empty".into()));
    };
    let start = Instant::now();
    let net = Network::setup(opts.transport)?;
    let host = net.host;
    let listener = net.in_receiver(|| receiver::listen(SocketAddr::new(host.into(), 0)))??;
    let port = listener
        .local_addr()
        .map_err(|e| KernelError::io("getsockname", e))?
        .port();
    let fill = |s: &str| {
        s.replace("{host}", &host.to_string())
            .replace("{port}", &port.to_string())
    };
    let argv: Vec<String> = std::iter::once(program)
        .chain(args)
        .map(|a| fill(a))
        .collect();
    let command = Sender::display(&argv);
    let ropts = ReceiverOptions {
        seed: opts.seed,
        expect: opts.expect,
        reader: opts.reader,
        app_ack: opts.app_ack,
        idle_timeout: opts.timeout,
        accept_timeout: opts.timeout,
        consumed: Default::default(),
        // Where the sender's socket will be: the sender's namespace (the sock_diag socket
        // answers for the namespace it was opened in). Without it, the receiver's side
        // alone is sampled.
        sender_queues: net
            .in_sender(crate::sock_diag::SockDiag::open)?
            .ok()
            .map(Arc::new),
    };
    let ns_fd = net.sender_ns().map(|ns| ns.open()).transpose()?;
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..])
        .envs(sender.env.iter().map(|(k, v)| (k, fill(v))))
        .env("ZCSAFE_HOST", host.to_string())
        .env("ZCSAFE_PORT", port.to_string())
        .env("ZCSAFE_SEED", opts.seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(fd) = &ns_fd {
        let raw = fd.as_raw_fd();
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe calls are allowed: setns is one, and it touches no memory,
        // only `raw`, which `ns_fd` keeps open until after the spawn.
        unsafe {
            c.pre_exec(move || {
                if libc::setns(raw, libc::CLONE_NEWNET) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let cancel = AtomicBool::new(false);
    std::thread::scope(|s| {
        let rx = s.spawn(|| receiver::serve_one_until(&listener, &ropts, &cancel));
        let mut child = match c.spawn() {
            Ok(ch) => ch,
            Err(e) => {
                cancel.store(true, Ordering::Relaxed);
                let _ = rx.join();
                return Err(KernelError::io(format!("starting `{command}`"), e));
            }
        };
        let tail = Arc::new(Mutex::new(Vec::<u8>::new()));
        let mut err = child.stderr.take().expect("piped");
        let tail2 = Arc::clone(&tail);
        let reader = s.spawn(move || {
            let mut b = [0u8; 1024];
            while let Ok(n) = err.read(&mut b) {
                if n == 0 {
                    break;
                }
                let mut t = tail2.lock().unwrap_or_else(|p| p.into_inner());
                t.extend_from_slice(&b[..n]);
                let excess = t.len().saturating_sub(TAIL);
                t.drain(..excess);
            }
        });
        let (status, timed_out) = wait_until(&mut child, start + opts.timeout);
        cancel.store(true, Ordering::Relaxed);
        let received = rx.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        let _ = reader.join();
        let tail =
            String::from_utf8_lossy(&tail.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
        let code = status.and_then(|s| s.code());
        let (outcome, detail) = judge(&received, code, timed_out, opts.timeout);
        Ok(ExternalReport {
            outcome,
            detail,
            command,
            transport: opts.transport.label(),
            reused_early_by: received.reused_early_by(),
            received,
            sender_exit: code,
            sender_timed_out: timed_out,
            sender_stderr_tail: tail,
            seed: opts.seed,
            reader: opts.reader.label(),
            elapsed_ms: start.elapsed().as_millis() as u64,
        })
    })
}

fn judge(
    r: &Received,
    code: Option<i32>,
    timed_out: bool,
    timeout: Duration,
) -> (ExternalOutcome, String) {
    if r.is_corrupt() {
        let mut d = r.summary();
        if code != Some(0) {
            d += &format!("; the sender exited with {code:?}");
        }
        return (ExternalOutcome::Corrupted, d);
    }
    let failed = |d: String| (ExternalOutcome::Failed, d);
    if timed_out {
        return failed(format!(
            "the sender did not exit within {:.0} s; {}",
            timeout.as_secs_f64(),
            r.summary()
        ));
    }
    match code {
        Some(0) => {}
        Some(c) => {
            return failed(format!(
                "the sender exited with status {c}; {}",
                r.summary()
            ))
        }
        None => {
            return failed(format!(
                "the sender was killed by a signal; {}",
                r.summary()
            ))
        }
    }
    if r.end == StreamEnd::NoConnection {
        return failed("the sender never connected".into());
    }
    if r.end != StreamEnd::Eof || r.length_problem().is_some() {
        return failed(r.summary());
    }
    if r.bytes == 0 {
        return failed("the sender connected but sent nothing".into());
    }
    if !r.held.any() {
        let sender = match r.held.max_unacked {
            Some(_) => "the sender's socket never had bytes unacknowledged",
            None => "the sender's socket could not be looked at",
        };
        return (
            ExternalOutcome::Unexercised,
            format!(
                "{}; but the kernel was never seen holding any of it: every read took all that was queued ({} reads) and {sender}, so no reuse could have come too early (a slower --reader or a longer stream opens the window)",
                r.summary(),
                r.held.samples
            ),
        );
    }
    (
        ExternalOutcome::Intact,
        format!(
            "{}; the kernel held {}; when the sender reused its buffers is not visible from outside (`zcsafe sanitize` sees every write to bytes still in flight)",
            r.summary(),
            r.held.describe()
        ),
    )
}
