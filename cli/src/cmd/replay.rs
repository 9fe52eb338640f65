//! `zcsafe replay TRACE --on model|sim|kernel`: run the policy a trace names again, in
//! the same situation, on a backend, and say whether it ends the same way.
//!
//! Exit status: 0 same outcome, 1 a different one, 2 when the replay could not run
//! (unknown policy, backend not available here).

use anyhow::Result;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use std::path::PathBuf;
use std::process::ExitCode;
use zcsafe_explain::Selection;
use zcsafe_fixtures::{replay_with, Backend};

#[derive(clap::Args)]
pub struct Args {
    /// A trace JSON file (a fixture, `zcsafe check --json` output, a run report).
    trace: PathBuf,
    /// The backend to replay on.
    #[arg(long, default_value = "model",
          value_parser = PossibleValuesParser::new(Backend::ALL.map(Backend::name))
              .map(|s| s.parse::<Backend>().expect("one of Backend::ALL")))]
    on: Backend,
    /// With a results file holding several traces: the policy.
    #[arg(long, short = 'p', value_name = "NAME")]
    policy: Option<String>,
    /// With a results file: the transport.
    #[arg(long, short = 't', value_name = "TRANSPORT")]
    transport: Option<String>,
    /// The kernel profile to replay under, when the trace was made with `--profile FILE`
    /// (a trace keeps only the profile's name): a built-in name or the same file.
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
    /// Print the replay's own timeline too.
    #[arg(long, short = 'v')]
    verbose: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let sel = Selection {
        policy: args.policy,
        transport: args.transport,
    };
    let trace = super::explain::load_trace(&args.trace, &sel)?;
    let backend = args.on;
    let profile = args
        .profile
        .as_deref()
        .map(super::check::load_profile)
        .transpose()?;
    let r = replay_with(&trace, backend, profile.as_ref())?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "policy": r.policy, "backend": r.backend, "transport": r.transport,
                "recorded": r.recorded, "replayed": r.replayed, "same_steps": r.same_steps,
                "same": r.same(), "detail": r.detail}))?
        );
    } else {
        println!(
            "replay of {} ({} trace, {}) on {} over {}",
            r.policy, trace.backend, trace.transport, r.backend, r.transport
        );
        println!("recorded verdict: {}", r.recorded);
        println!("replayed verdict: {}  — {}", r.replayed, r.detail);
        match r.same_steps {
            Some(true) => println!("steps: identical ({} steps)", trace.steps.len()),
            Some(false) => println!("steps: DIFFERENT (the model's counterexample changed)"),
            None => println!("steps: not comparable on this backend (only verdicts are)"),
        }
        println!(
            "{}",
            if r.same() {
                "=> same outcome"
            } else {
                "=> DIFFERENT outcome"
            }
        );
        if args.verbose {
            if let Some(t) = &r.trace {
                print!("\n{}", zcsafe_explain::text::render(t));
            }
        }
    }
    Ok(ExitCode::from(u8::from(!r.same())))
}
