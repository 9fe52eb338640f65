//! `zcsafe sanitize -- PROGRAM ARGS…`: runs an unmodified, dynamically linked program with
//! the sanitizer runtime preloaded (`zcsafe-sanitizer`, docs/design.md §8) and reports
//! every write to bytes an in-flight `MSG_ZEROCOPY` send still holds. With `{host}` or
//! `{port}` among the arguments, the verifying receiver of `run --external` judges the
//! stream too (`zcsafe_kernel::run_sender`); otherwise the program talks to its own peers.

mod elf;
mod findings;
mod symbol;

use crate::output::{self, TimingArgs};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use zcsafe_kernel::{run_sender, veth, ExternalOptions, ReaderSpeed, Sender, Transport};
use zcsafe_policy::{Results, Verdict};
use zcsafe_sanitizer_events::{read_log, Event, ABORT_ENV, REPORT_ENV};

/// The runtime's file name, built by `cargo build -p zcsafe-sanitizer` next to `zcsafe`.
const RUNTIME: &str = "libzcsafe_sanitizer.so";

/// Environment variable naming the runtime explicitly.
const RUNTIME_ENV: &str = "ZCSAFE_SANITIZER_LIB";

#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 no premature write (submissions were tracked), \
1 a premature write (or, with the receiver, a corrupt stream), 2 the program cannot be \
sanitized (statically linked, not found, no runtime), 3 the program failed without a \
premature write, 4 nothing was tracked (inconclusive)."
)]
pub struct Args {
    /// Print one JSON object (`results`, as every judging command does).
    #[arg(long)]
    json: bool,
    /// Stop the program at its first premature write (it is killed by SIGSEGV at the
    /// store, or aborts in the system call that wrote).
    #[arg(long)]
    abort: bool,
    /// With `{host}`/`{port}` among the arguments: the receiver's transport, loopback or
    /// veth (root).
    #[arg(long, short = 't', default_value = "loopback")]
    transport: String,
    /// The receiver's stream seed (the program gets it in ZCSAFE_SEED).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How the receiver reads: fast, slow (default), crawl, or PAUSE_MS,SLICE_BYTES,INTERVAL_MS.
    #[arg(long, default_value = "slow")]
    reader: String,
    /// The exact stream length the receiver expects (default: any non-empty stream).
    #[arg(long, value_name = "N")]
    bytes: Option<u64>,
    /// Seconds the program may run before it is killed (its verdict is then `error`).
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    timeout: u64,
    #[command(flatten)]
    timings: TimingArgs,
    #[command(flatten)]
    junit: crate::junit::JunitArgs,
    /// The program and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROGRAM ARGS"
    )]
    program: Vec<String>,
}

/// The runtime next to the running `zcsafe` (or named by ZCSAFE_SANITIZER_LIB).
fn runtime() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(RUNTIME_ENV) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("{RUNTIME_ENV}={} is not a file", p.display());
        }
        return Ok(p);
    }
    let exe = std::env::current_exe().context("where is zcsafe?")?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    [dir.join(RUNTIME), dir.join("..").join(RUNTIME)]
        .into_iter()
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "the sanitizer runtime {RUNTIME} is not next to {} (build it: `cargo build \
                 --release -p zcsafe-sanitizer`, which `make build` does, or name it in {RUNTIME_ENV})",
                exe.display()
            )
        })
}

/// The report file, removed when dropped.
struct ReportFile(PathBuf);

impl Drop for ReportFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The runtime, ready to be preloaded into a program, and the file it reports to (removed
/// when dropped). `sanitize` and `run --external --sanitize` share it.
pub(crate) struct Preload {
    runtime: PathBuf,
    report: ReportFile,
    abort: bool,
}

impl Preload {
    /// Finds the runtime and creates an empty report file (named after this process, so
    /// that two zcsafe runs never share one).
    pub(crate) fn new(abort: bool) -> Result<Preload> {
        let runtime = runtime()?;
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let report = ReportFile(std::env::temp_dir().join(format!(
            "zcsafe-sanitize-{}-{nonce}.jsonl",
            std::process::id()
        )));
        std::fs::File::create(&report.0)
            .with_context(|| format!("cannot create the report file {}", report.0.display()))?;
        Ok(Preload {
            runtime,
            report,
            abort,
        })
    }

    /// The environment that loads the runtime (before any `LD_PRELOAD` already set).
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        let mut preload = self.runtime.display().to_string();
        if let Some(prev) = std::env::var_os("LD_PRELOAD").filter(|p| !p.is_empty()) {
            preload = format!("{preload}:{}", prev.to_string_lossy());
        }
        let mut env = vec![
            ("LD_PRELOAD".to_string(), preload),
            (REPORT_ENV.to_string(), self.report.0.display().to_string()),
        ];
        if self.abort {
            env.push((ABORT_ENV.to_string(), "1".into()));
        }
        env
    }

    /// What the runtime reported, once the program has ended; an error if it never
    /// started in `program` (which then cannot be sanitized).
    pub(crate) fn events(&self, program: &str) -> Result<Vec<Event<'static>>> {
        let events = read_log(&self.report.0)?;
        if !events.iter().any(|e| matches!(e, Event::Start(_))) {
            bail!(
                "the sanitizer runtime never started in {program} (a setuid program, or one that \
                 clears LD_PRELOAD, cannot be sanitized)"
            );
        }
        Ok(events)
    }

    /// Where the runtime was loaded from.
    pub(crate) fn runtime(&self) -> &Path {
        &self.runtime
    }
}

/// How the program ended, as the receiver's run saw it.
pub(crate) fn ending(r: &zcsafe_kernel::ExternalReport, timeout: Duration) -> findings::Ending {
    match (r.sender_timed_out, r.sender_exit) {
        (true, _) => findings::Ending::Failed(format!(
            "the program did not exit within {} s",
            timeout.as_secs()
        )),
        (false, Some(0)) => findings::Ending::Success,
        (false, Some(c)) => findings::Ending::Failed(format!("the program exited with status {c}")),
        (false, None) => findings::Ending::Failed("the program was killed by a signal".into()),
    }
}

/// The sanitizer's findings, then the receiver's (when it ran).
pub(crate) fn results(
    events: &[Event<'_>],
    name: &str,
    label: &str,
    ending: &findings::Ending,
    receiver: Option<&zcsafe_kernel::ExternalReport>,
) -> Results {
    let mut list = findings::findings(events, name, label, ending);
    if let Some(r) = receiver {
        let mut f = r.to_finding();
        // the wall clock belongs in --timings, as for `run --external`
        f.evidence.counts.remove("elapsed_ms");
        list.push(f);
    }
    Results::new(list)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let started = Instant::now();
    let program = elf::resolve(&args.program[0])?;
    elf::check_preloadable(&program)?;
    let reader = args.reader.parse::<ReaderSpeed>()?;
    let transport = Transport::parse(&args.transport, 0, 0)?;
    if !matches!(transport, Transport::Loopback | Transport::Veth) {
        bail!(
            "--transport {}: sanitize runs its receiver over loopback or veth",
            args.transport
        );
    }
    let preload = Preload::new(args.abort)?;
    let env = preload.env();
    let mut argv = args.program.clone();
    argv[0] = program.display().to_string();
    let sender = Sender { argv, env };
    let timeout = Duration::from_secs(args.timeout.max(1));
    let label;
    let (ending, receiver) = if sender.wants_receiver() {
        if let Some(why) = veth::unavailable(&transport) {
            bail!("{why}; run as root, or use --transport loopback");
        }
        let opts = ExternalOptions {
            transport,
            seed: args.seed,
            reader,
            expect: args.bytes,
            app_ack: false,
            timeout,
        };
        let r = run_sender(&sender, &opts)?;
        label = r.transport.clone();
        let ending = ending(&r, timeout);
        (ending, Some(r))
    } else {
        if args.transport != "loopback" {
            bail!(
                "--transport {} applies to zcsafe's receiver, which runs only when {{host}} or \
                 {{port}} is among the program's arguments",
                args.transport
            );
        }
        label = "own".into();
        (run_own(&sender, timeout, args.json)?, None)
    };
    let events = preload.events(&program.display().to_string())?;
    let name = args.program.join(" ");
    let results = results(&events, &name, &label, &ending, receiver.as_ref());
    let mut timing = zcsafe_policy::Timing {
        total_ms: zcsafe_policy::timing::ms(started.elapsed()),
        ..Default::default()
    };
    timing.push(findings::POLICY, &label, started.elapsed());
    if args.json {
        println!("{}", output::json(&results, &timing, args.timings)?);
    } else {
        print_human(
            &results,
            &events,
            &name,
            preload.runtime(),
            receiver.as_ref(),
        );
        if args.timings.timings {
            print!("{}", crate::table::timing(&timing));
        }
    }
    args.junit.write(|| {
        zcsafe_policy::junit::write("zcsafe sanitize", &zcsafe_policy::junit::cases(&results))
    })?;
    Ok(ExitCode::from(results.exit_code()))
}

/// Runs the program with its own stdio (it talks to its own peers); with `--json` its
/// stdout goes to stderr, so that stdout is the one JSON object.
fn run_own(sender: &Sender, timeout: Duration, json: bool) -> Result<findings::Ending> {
    let mut c = Command::new(&sender.argv[0]);
    c.args(&sender.argv[1..])
        .envs(sender.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .process_group(0);
    if json {
        c.stdout(Stdio::from(std::io::stderr()));
    }
    use std::os::unix::process::CommandExt;
    let mut child = c
        .spawn()
        .with_context(|| format!("cannot start {}", sender.argv[0]))?;
    let (status, timed_out) =
        zcsafe_kernel::external::wait_until(&mut child, Instant::now() + timeout);
    use std::os::unix::process::ExitStatusExt;
    Ok(match status {
        _ if timed_out => findings::Ending::Failed(format!(
            "the program did not exit within {} s (killed)",
            timeout.as_secs()
        )),
        Some(s) if s.success() => findings::Ending::Success,
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => findings::Ending::Failed(format!("the program exited with status {c}")),
            (None, Some(sig)) => {
                findings::Ending::Failed(format!("the program was killed by signal {sig}"))
            }
            _ => findings::Ending::Failed("the program ended in an unknown way".into()),
        },
        None => findings::Ending::Failed("the program's status could not be read".into()),
    })
}

/// How many premature writes the text lists before it says "and N more".
const LISTED: usize = 10;

pub(crate) fn print_human(
    results: &Results,
    events: &[Event<'_>],
    name: &str,
    runtime: &Path,
    receiver: Option<&zcsafe_kernel::ExternalReport>,
) {
    println!("\nzcsafe sanitize: {name}\n  runtime {}", runtime.display());
    if let Some(r) = receiver {
        let word = r.outcome.word();
        println!("  receiver over {}: {word}: {}", r.transport, r.detail);
    }
    let writes: Vec<_> = results
        .results
        .iter()
        .filter(|f| f.policy == findings::POLICY && f.verdict == Verdict::Corrupt)
        .collect();
    for (i, f) in writes.iter().take(LISTED).enumerate() {
        println!("\nPREMATURE WRITE {}: {}", i + 1, f.evidence.detail);
    }
    if writes.len() > LISTED {
        println!(
            "\n… and {} more premature writes (--json lists every one)",
            writes.len() - LISTED
        );
    }
    let t = findings::totals(events);
    let s = &t.sum;
    println!(
        "\ntracked {} zero-copy submission(s) in {} process(es): {} released by a notification \
         the program read, {} by closing the socket, {} in flight at exit; {} notification(s) \
         read; {} write(s) to held bytes; {} write(s) beside them on shared pages and {} system \
         call(s) into lifted pages proceeded",
        s.tracked,
        t.processes,
        s.released,
        s.released_by_close,
        s.in_flight_at_exit,
        s.notifications,
        s.premature_writes,
        s.other_writes,
        s.syscall_lifts
    );
    if s.uring_rings > 0 || s.uring_untracked > 0 {
        println!(
            "  io_uring: {} ring(s) followed, {} io_uring_enter call(s) trapped, {} ring(s) or \
             request(s) not followed (SQPOLL, NO_MMAP), {} request(s) released unseen (CQ ring \
             overwritten before a look)",
            s.uring_rings, s.uring_enters, s.uring_untracked, s.uring_released_unseen
        );
    }
    if s.untracked > 0 {
        println!(
            "  {} MSG_ZEROCOPY call(s) on sockets other than TCP were not tracked",
            s.untracked
        );
    }
    if t.summaries < t.processes {
        println!(
            "  {} of {} process(es) wrote no summary (killed, or exec'd): their counts are missing",
            t.processes - t.summaries,
            t.processes
        );
    }
    for f in results
        .results
        .iter()
        .filter(|f| f.policy == findings::POLICY && f.verdict != Verdict::Corrupt)
    {
        println!("\nverdict: {}: {}", f.verdict, f.evidence.detail);
    }
    if !writes.is_empty() {
        println!("\nverdict: corrupt: {} premature write(s)", writes.len());
    }
}
