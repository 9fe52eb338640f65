//! A sweep: a family of scenarios for one pipeline, from small to large, each checked
//! with [`check`] under a state bound, up to the first that yields a counterexample.
//!
//! A `safe` from one scenario says nothing about a larger one, and the scenario that
//! exposes a bug is rarely the first an author thinks of (issue 19: a 4-slot ring's bug
//! shows only once four sends are in flight and a 2-bit counter wraps). The sweep walks
//! the stream from one reuse of the first slot up to [`Pipeline::derived_chunks`], each
//! with the widest counter that still wraps early enough ([`Pipeline::wrapping_bits`]),
//! so the smallest scenario that fails is found first and named. The windows stay the
//! derived ones: smaller windows are a smaller pipeline than the policy declares (fewer
//! sends outstanding), whose verdicts its expectation does not speak of — a 4-slot
//! ring behind a 2-page send buffer strands a wrapped range before anything corrupts.

use crate::checker::{check, CheckError, CheckOptions, CheckReport};
use crate::config::Scenario;
use zcsafe_policy::{Geometry, Pipeline, Policy, Profile, TransportClass, Verdict};

/// One scenario of the sweep and what the check of it found.
#[derive(Debug)]
pub struct SweepStep {
    /// The scenario checked.
    pub scenario: Scenario,
    /// The check's report, or why it could not finish (the state bound, an invalid
    /// scenario, a policy that cannot be built for it).
    pub outcome: Result<CheckReport, SweepStepError>,
}

/// Why one step of a sweep has no verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SweepStepError {
    /// The check failed: over the step's state bound, or a scenario the model refuses.
    #[error(transparent)]
    Check(#[from] CheckError),
    /// The policy refuses the step's geometry.
    #[error("the policy cannot be built for this scenario: {0}")]
    Build(String),
}

impl SweepStep {
    /// The step's verdict, if its check finished.
    pub fn verdict(&self) -> Option<Verdict> {
        self.outcome.as_ref().ok().map(|r| r.verdict)
    }
}

/// The steps a sweep took, in order; the last one is the counterexample if any was found.
#[derive(Debug)]
#[must_use = "a sweep says which scenario failed: print it or hand it on"]
pub struct SweepReport {
    /// Every step checked, smallest first.
    pub steps: Vec<SweepStep>,
}

impl SweepReport {
    /// The smallest step whose verdict is not `safe` (the sweep stops there).
    pub fn counterexample(&self) -> Option<&SweepStep> {
        self.steps
            .last()
            .filter(|s| s.verdict().is_some_and(|v| v != Verdict::Safe))
    }

    /// The largest step that finished `safe` (what "none found up to" means).
    pub fn largest_safe(&self) -> Option<&SweepStep> {
        self.steps
            .iter()
            .rev()
            .find(|s| s.verdict() == Some(Verdict::Safe))
    }
}

/// The family of scenarios the sweep walks for `pipeline`, smallest first: the derived
/// windows, and the stream from `slots + 1` chunks (one reuse of the first slot) to the
/// derived length. The last one is [`Scenario::derived`].
pub fn family(pipeline: &Pipeline, transport: TransportClass, profile: &Profile) -> Vec<Scenario> {
    let derived = Scenario::derived(pipeline, transport, profile.clone());
    ((pipeline.slots + 1)..=pipeline.derived_chunks())
        .map(|chunks| {
            let mut s = derived.clone();
            s.geometry.stream = chunks * pipeline.chunk;
            s.geometry.zc_id_bits = pipeline.wrapping_bits(chunks);
            s
        })
        .collect()
}

/// Checks `policy`, built by `build` for each scenario of [`family`], step by step under
/// `opts` (its `max_states` bounds every step), until a step's verdict is not `safe`
/// or a step cannot finish. `progress` sees each step as it ends.
pub fn sweep<P: Policy>(
    build: impl Fn(&Geometry) -> Result<P, String>,
    pipeline: &Pipeline,
    transport: TransportClass,
    profile: &Profile,
    opts: &CheckOptions,
    mut progress: impl FnMut(usize, usize, &SweepStep),
) -> SweepReport {
    let family = family(pipeline, transport, profile);
    let total = family.len();
    let mut steps = Vec::new();
    for (i, scenario) in family.into_iter().enumerate() {
        let outcome = match build(&scenario.geometry) {
            Err(e) => Err(SweepStepError::Build(e)),
            Ok(p) => check(p, &scenario, opts).map_err(SweepStepError::from),
        };
        let step = SweepStep { scenario, outcome };
        progress(i + 1, total, &step);
        let stop = step.verdict() != Some(Verdict::Safe);
        steps.push(step);
        if stop {
            break;
        }
    }
    SweepReport { steps }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_family_grows_and_ends_at_the_derived_scenario() {
        let p = Pipeline::ring(4);
        let f = family(&p, TransportClass::Local, &Profile::classic());
        assert_eq!(f.len(), 8, "streams 5..=12");
        assert_eq!(
            f.last(),
            Some(&Scenario::derived(
                &p,
                TransportClass::Local,
                Profile::classic()
            ))
        );
        for s in &f {
            s.validate().expect("every step is a runnable scenario");
        }
        let size = |s: &Scenario| (s.geometry.stream, s.geometry.zc_id_bits);
        assert!(f.windows(2).all(|w| size(&w[0]) < size(&w[1])));
        assert_eq!(p.wrapping_bits(9), 2);
        assert_eq!(p.wrapping_bits(8), 2, "never below 2^bits >= 4 outstanding");
        assert_eq!(Pipeline::STANDARD.wrapping_bits(5), 1);
    }
}
