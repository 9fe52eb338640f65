//! What every command that judges prints besides its own text: the evidence check before
//! any verdict, the `--json` object, and the wall clock only when `--timings` asks.

use anyhow::Result;
use std::time::Instant;
use zcsafe_policy::{timing, NoEvidence, Results, Timing};

/// `--timings`: the one switch for wall-clock figures.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct TimingArgs {
    /// Also print how long each finding took: a top-level `timing` object in --json, a
    /// timing section after the text. Without it the output depends only on the seed and
    /// the options, so two runs can be compared with `cmp`.
    #[arg(long)]
    pub timings: bool,
}

/// The wall clock of one command, kept apart from its results.
pub struct Clock {
    started: Instant,
    pub timing: Timing,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            started: Instant::now(),
            timing: Timing::default(),
        }
    }

    /// The timing with the total filled in.
    pub fn finish(mut self) -> Timing {
        self.timing.total_ms = timing::ms(self.started.elapsed());
        self.timing
    }
}

/// Refuses results that would print a verdict no completed run backs (exit 2 with the
/// reason), then renders them as `--json` does: `timing` only when `args.timings`.
pub fn json(results: &Results, timing: &Timing, args: TimingArgs) -> Result<String> {
    require_evidence(results)?;
    Ok(timing::to_json(results, args.timings.then_some(timing))?)
}

/// [`Results::require_evidence`], with the options that ask for runs named (the library
/// cannot know them).
pub fn require_evidence(results: &Results) -> Result<()> {
    results.require_evidence().map_err(|e| match e {
        NoEvidence::ZeroRuns { .. } => anyhow::anyhow!("{e} (e.g. --seeds 1, --repeat 1)"),
        e => e.into(),
    })
}

/// clap value parser of a count that must not be zero (`--seeds`, `--repeat`, …): zero
/// runs would judge nothing, so the error names the option before anything starts.
pub fn at_least_one<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
    T::Err: std::fmt::Display,
{
    let n: T = s.parse().map_err(|e| format!("{e}"))?;
    if n < T::from(1) {
        return Err(
            "must be at least 1: zero runs would judge nothing, and no verdict comes without a run behind it"
                .into(),
        );
    }
    Ok(n)
}
