//! `zcsafe`: when may user space overwrite a buffer it handed to the kernel?
//!
//! The command line as a library, so that a library author's own binary gets every
//! command for their policies beside the catalogue ([`main_with`]); the `zcsafe` binary is
//! [`main`]. Each subcommand lives in `cmd/`; this file only parses and dispatches. Exit status
//! everywhere ([`zcsafe_policy::Results::exit_code`]): 0 when every verdict is as
//! expected, 1 when any contradicts its expectation, 2 for a usage or environment error or
//! when nothing was judged (no verdict without a completed run: `output`), 3 when some
//! finding could not be judged (`error`). Output depends only on the seed and options;
//! wall-clock figures appear only with `--timings`.

#![forbid(unsafe_code)]

mod cmd;
mod junit;
mod known;
mod output;
mod progress;
mod table;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Find buffer-reuse bugs in Linux zero-copy send paths.
///
/// zcsafe runs one implementation of each buffer-reuse policy (copy, vmsplice double
/// buffer, SIOCOUTQ drain, MSG_ZEROCOPY completions, io_uring SEND_ZC, sendfile, …)
/// against a formal model of the kernel, and reports which policies let the receiver see
/// bytes written after the send — with the shortest counterexample.
#[derive(Parser)]
#[command(name = "zcsafe", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the reuse policies zcsafe knows, one line each.
    Policies(cmd::policies::Args),
    /// Judge policies by an exhaustive check of the kernel model.
    Check(cmd::check::Args),
    /// Simulate policies over a faulty network (turmoil), deterministically by seed.
    Sim(cmd::sim::Args),
    /// Run policies with real system calls on this kernel (loopback, veth), or judge an
    /// external sender program (--external).
    Run(cmd::run::Args),
    /// Measure this kernel's profile by small experiments.
    Probe(cmd::probe::Args),
    /// The verifying receiver alone, for a sender on another host.
    Receive(cmd::receive::Args),
    /// One policy's stream, sender side only, to a receiver anywhere (`zcsafe receive` on
    /// another host; `run --external` around it, e.g. with --sanitize).
    Send(cmd::send::Args),
    /// An annotated timeline of a trace: who holds each page at each step, and why.
    Explain(cmd::explain::Args),
    /// Replay a trace on a backend (model, sim, kernel): does it end the same way?
    Replay(cmd::replay::Args),
    /// The fixtures: literature cases and shipped bugs; --check runs them all.
    Fixtures(cmd::fixtures::Args),
    /// Debian kernels in QEMU × policies × guest transports (loopback, veth, two NICs),
    /// one report; `matrix merge` joins per-kernel results.
    // Boxed: its many flags make it the largest variant by far.
    Matrix(Box<cmd::matrix::Args>),
    /// The cost of each safe policy against plain send(): throughput, sender CPU per GiB
    /// and the ratio to copy, across chunk sizes and transports, in the same run.
    Bench(cmd::bench::Args),
    /// Run an unmodified program with the zero-copy sanitizer preloaded: every write to
    /// bytes an in-flight MSG_ZEROCOPY send still holds is reported where it happens.
    Sanitize(cmd::sanitize::Args),
}

/// `zcsafe … | head` closes our stdout early. Rust ignores SIGPIPE (sockets need that:
/// a vanished receiver must be an error, not a kill), so `println!` panics instead; end
/// quietly the way Unix tools do, with the status a shell reports for SIGPIPE.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// The `zcsafe` command line over the built-in policies.
pub fn main() -> ExitCode {
    main_with(Vec::new())
}

/// The `zcsafe` command line over the built-in policies and `policies`, a library author's
/// own ([`Catalogued`](zcsafe_policies::Catalogued) types, each as its
/// [`Entry::of`](zcsafe_policies::Entry::of)). Every command — `check`, `sim`, `run`,
/// `replay`, `explain`, `bench`, `matrix` (which carries this very binary into its guests)
/// — finds them by name. The whole binary, in the author's crate:
///
/// ```no_run
/// # use zcsafe_policies::{Entry, copy::Copy as MyPolicy};
/// fn main() -> std::process::ExitCode {
///     zcsafe_cli::main_with(vec![Entry::of::<MyPolicy>()])
/// }
/// ```
pub fn main_with(policies: Vec<zcsafe_policies::Entry>) -> ExitCode {
    quiet_on_closed_stdout();
    if let Err(err) = zcsafe_policies::registry::register(policies) {
        eprintln!("zcsafe: error: {err}");
        return ExitCode::from(2);
    }
    if let Some(name) = std::env::args_os()
        .next()
        .as_deref()
        .map(std::path::Path::new)
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
    {
        zcsafe_policies::registry::set_program(name);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Policies(args) => cmd::policies::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::Sim(args) => cmd::sim::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Probe(args) => cmd::probe::run(args),
        Command::Receive(args) => cmd::receive::run(args),
        Command::Send(args) => cmd::send::run(args),
        Command::Explain(args) => cmd::explain::run(args),
        Command::Replay(args) => cmd::replay::run(args),
        Command::Fixtures(args) => cmd::fixtures::run(args),
        Command::Matrix(args) => cmd::matrix::run(*args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Sanitize(args) => cmd::sanitize::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("zcsafe: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
