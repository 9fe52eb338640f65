//! One BFS level, expanded on several threads and merged in the order a single thread
//! would have taken: the same states get the same indices, the same first ending is
//! found, so the report is the same bytes whatever the thread count (docs/design.md §11).
//!
//! Expanding (applying every enabled move to a scratch copy, fingerprinting the result)
//! is the cost, and it only reads the visited set; so the level is cut into runs that
//! workers take in turn, each run recording what its states produced. The merge then
//! walks the runs in order on one thread, inserting fingerprints and numbering states.

use super::visited::{Fingerprint, Prefix, Visited};
use super::{apply_app, apply_event, moves_into, Applied, Ending, Move, State};
use crate::config::Scenario;
use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::Mutex;
use zcsafe_policy::{Hazards, Policy};

/// What one state of a run produced, in move order.
#[derive(Clone, Copy)]
pub(crate) enum Record {
    /// The next state of the run starts; its records follow.
    Begin,
    /// It is complete: the receiver has the whole stream (not expanded).
    Complete,
    /// No move is enabled in it.
    Stuck,
    /// A move to a state reached before (an earlier level, or earlier in this run).
    Seen,
    /// A move to a state not seen before this run: the next of the run's `states`.
    New(Move, Fingerprint),
    /// A move that ended the path: the next of the run's `endings`.
    Ended(Move),
}

/// The records of one run of states, with the states and endings they refer to.
pub(crate) struct Expansion<P> {
    pub(crate) records: Vec<Record>,
    pub(crate) states: Vec<State<P>>,
    pub(crate) endings: Vec<Ending>,
    /// The hazards the run's moves reached and opened (blocked calls excluded).
    pub(crate) hazards: Hazards,
}

/// States per run: small enough to balance two workers, large enough that taking a run
/// costs nothing next to expanding it.
const RUN: usize = 512;

/// Fingerprints first seen in the current run, so a run hands on each new state once.
type RunSeen = HashSet<Fingerprint, BuildHasherDefault<super::visited::Identity>>;

/// The states of a level, in runs: the new states one run of the previous level found
/// become one run of this level, in place (no copy, no reallocation). A worker takes a
/// run whole, so a policy need only be `Send`, and an expanded run's states are freed
/// at once.
pub(crate) struct Runs<P> {
    runs: Vec<Vec<State<P>>>,
}

impl<P> Runs<P> {
    /// A level of the one state `root`.
    pub(crate) fn root(root: State<P>) -> Self {
        Runs {
            runs: vec![vec![root]],
        }
    }

    pub(crate) fn new() -> Self {
        Runs { runs: Vec::new() }
    }

    /// Appends a run of states.
    pub(crate) fn push_run(&mut self, run: Vec<State<P>>) {
        if !run.is_empty() {
            self.runs.push(run);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// States in the level.
    pub(crate) fn len(&self) -> usize {
        self.runs.iter().map(Vec::len).sum()
    }
}

/// Splits runs longer than [`RUN`], so that two workers have more than one run each.
fn split_long<P>(runs: Vec<Vec<State<P>>>) -> Vec<Vec<State<P>>> {
    let mut out = Vec::with_capacity(runs.len());
    for mut run in runs {
        while run.len() > 2 * RUN {
            let rest = run.split_off(RUN);
            out.push(std::mem::replace(&mut run, rest));
        }
        out.push(run);
    }
    out
}

/// Expands `level` on `threads` workers; the runs come back in level order.
pub(crate) fn expand<P: Policy>(
    scenario: &Scenario,
    visited: &Visited,
    level: Runs<P>,
    threads: usize,
) -> Vec<Expansion<P>> {
    let level = split_long(level.runs);
    let runs = level.len();
    if threads <= 1 || runs <= 1 {
        let mut seen = RunSeen::default();
        return (level.into_iter())
            .map(|run| expand_run(scenario, visited, run, &mut seen))
            .collect();
    }
    let queue = Mutex::new(level.into_iter().enumerate());
    let mut done: Vec<(usize, Expansion<P>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.min(runs))
            .map(|_| {
                scope.spawn(|| {
                    let mut seen = RunSeen::default();
                    let mut mine = Vec::new();
                    loop {
                        let taken = queue.lock().expect("no worker panics holding it").next();
                        let Some((i, run)) = taken else {
                            break mine;
                        };
                        mine.push((i, expand_run(scenario, visited, run, &mut seen)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a checker worker panicked"))
            .collect()
    });
    done.sort_unstable_by_key(|d| d.0);
    done.into_iter().map(|d| d.1).collect()
}

/// Expands one run of states in order, stopping at a corruption (the merge stops there
/// too: it is the strongest finding, and nothing after it is counted).
fn expand_run<P: Policy>(
    scenario: &Scenario,
    visited: &Visited,
    run: Vec<State<P>>,
    seen: &mut RunSeen,
) -> Expansion<P> {
    seen.clear();
    let mut out = Expansion {
        records: Vec::with_capacity(run.len() * 4),
        states: Vec::new(),
        endings: Vec::new(),
        hazards: Hazards::default(),
    };
    let Some(first) = run.first() else {
        return out;
    };
    // One scratch kernel for every move; a scratch policy only for the application's
    // move (kernel events leave the policy as it is).
    let mut kernel = first.kernel.clone();
    let mut policy = first.policy.clone();
    let mut moves = Vec::new();
    for st in &run {
        out.records.push(Record::Begin);
        if st.kernel.complete(scenario) {
            out.records.push(Record::Complete);
            continue;
        }
        moves_into(scenario, st, &mut moves);
        let unchanged_policy = Prefix::of(&st.policy);
        let mut moved = false;
        for &mv in &moves {
            kernel.clone_from(&st.kernel);
            let (applied, after, prefix) = match mv {
                Move::App => {
                    policy.clone_from(&st.policy);
                    let applied = apply_app(scenario, &mut policy, &mut kernel);
                    (applied, &policy, None)
                }
                Move::Kernel(ev) => (
                    apply_event(scenario, &mut kernel, ev),
                    &st.policy,
                    Some(unchanged_policy),
                ),
            };
            // Taken whatever happened, so the next move's scratch copy starts clean; a
            // blocked call did nothing, so what it marked does not count.
            let marks = kernel.take_marks();
            if !matches!(applied, Applied::Blocked) {
                out.hazards.add(marks);
            }
            match applied {
                Applied::Blocked => {}
                Applied::Next => {
                    moved = true;
                    let fp = prefix.unwrap_or_else(|| Prefix::of(after)).then(&kernel);
                    if visited.contains(fp) || !seen.insert(fp) {
                        out.records.push(Record::Seen);
                    } else {
                        out.records.push(Record::New(mv, fp));
                        out.states.push(State {
                            policy: after.clone(),
                            kernel: kernel.clone(),
                        });
                    }
                }
                Applied::End(ending) => {
                    moved = true;
                    let corrupt = matches!(ending, Ending::Corrupt(_));
                    out.records.push(Record::Ended(mv));
                    out.endings.push(ending);
                    if corrupt {
                        return out;
                    }
                }
            }
        }
        if !moved {
            out.records.push(Record::Stuck);
        }
    }
    out
}
