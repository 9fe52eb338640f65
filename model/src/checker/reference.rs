//! The checker as it was before fingerprints (issue 16): every whole state kept in an
//! insertion-ordered set. Test-only, so the fingerprinting engine is compared against it
//! on every run of the tests — same verdict, same state count, same counterexample.

use super::{moves, report, take, CheckError, CheckOptions, CheckReport, Explored, Findings};
use super::{State, Step};
use crate::config::Scenario;
use crate::kernel::Kernel;
use indexmap::IndexSet;
use rustc_hash::FxBuildHasher;
use std::time::Instant;
use zcsafe_policy::{Hazards, Policy};

/// [`check`](super::check), keeping whole states.
pub(crate) fn check_whole_states<P: Policy>(
    policy: P,
    scenario: &Scenario,
    opts: &CheckOptions,
) -> Result<CheckReport, CheckError> {
    scenario.validate()?;
    let start = Instant::now();
    let root = State {
        policy,
        kernel: Kernel::new(scenario),
    };
    let mut seen: IndexSet<State<P>, FxBuildHasher> = IndexSet::default();
    // parent[i]: the state and move that first reached state i.
    let mut parent = vec![None];
    seen.insert(root.clone());
    let mut transitions = 0usize;
    let mut complete = 0usize;
    let mut findings = Findings::default();
    let mut hazards = Hazards::default();
    let mut head = 0usize;
    'search: while head < seen.len() {
        let st = seen[head].clone();
        if st.kernel.complete(scenario) {
            complete += 1;
            head += 1;
            continue;
        }
        let mut moved = false;
        for mv in moves(scenario, &st) {
            let mut step = take(scenario, &st, mv);
            if let Step::Next(next) | Step::End(next, _) = &mut step {
                hazards.add(next.kernel.take_marks());
            }
            if !matches!(step, Step::Blocked) {
                moved = true;
                transitions += 1;
            }
            match step {
                Step::Blocked => {}
                Step::Next(next) => {
                    if seen.insert(next) {
                        parent.push(Some((head as u32, mv)));
                        if seen.len() > opts.max_states {
                            return Err(CheckError::TooManyStates(opts.max_states));
                        }
                    }
                }
                Step::End(_, ending) => {
                    if findings.ending(head as u32, mv, ending) {
                        break 'search;
                    }
                }
            }
        }
        if !moved {
            findings.stuck(head as u32);
        }
        head += 1;
    }
    let path_to = |mut i: u32| {
        let mut path = Vec::new();
        while let Some((p, mv)) = parent[i as usize] {
            path.push(mv);
            i = p;
        }
        path.reverse();
        path
    };
    let explored = Explored {
        states: seen.len(),
        transitions,
        complete,
        hazards,
    };
    Ok(report(scenario, root, explored, findings, path_to, start))
}
