//! `zcsafe explain TRACE [--svg FILE]`: any trace — a model counterexample, a fixture, a
//! recorded kernel or simulation run — as an annotated timeline: lanes for the
//! application, pipe, write queue, wire/device and peer, a column per buffer page, and
//! one plain sentence per step saying who still holds the pages and why.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use zcsafe_explain::{load, LoadError, Selection};
use zcsafe_policy::Trace;

#[derive(clap::Args)]
pub struct Args {
    /// A trace JSON file: a fixture, `zcsafe check --json` output, a finding or a run report.
    trace: PathBuf,
    /// With a results file holding several counterexamples: the policy to explain.
    #[arg(long, short = 'p', value_name = "NAME")]
    policy: Option<String>,
    /// With a results file: the transport (class) to explain.
    #[arg(long, short = 't', value_name = "TRANSPORT")]
    transport: Option<String>,
    /// Write the timeline as an SVG sequence diagram to FILE instead of printing the text
    /// (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let sel = Selection {
        policy: args.policy,
        transport: args.transport,
    };
    let trace = load_trace(&args.trace, &sel)?;
    match &args.svg {
        None => print!("{}", zcsafe_explain::text::render(&trace)),
        Some(p) if p.as_os_str() == "-" => print!("{}", zcsafe_explain::svg::render(&trace)),
        Some(p) => {
            std::fs::write(p, zcsafe_explain::svg::render(&trace))
                .with_context(|| format!("writing {}", p.display()))?;
            println!(
                "wrote {}: the timeline of {} over {}, {} steps",
                p.display(),
                trace.policy,
                trace.transport,
                trace.steps.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// [`load()`], with the options that narrow a file of several traces named: the library
/// says the selection is ambiguous, `explain` and `replay` say how to narrow it.
pub(crate) fn load_trace(path: &std::path::Path, sel: &Selection) -> Result<Trace> {
    load(path, sel).map_err(|e| match e {
        LoadError::Ambiguous { .. } => {
            anyhow::anyhow!("{e}: pick one with --policy and/or --transport")
        }
        e => e.into(),
    })
}
