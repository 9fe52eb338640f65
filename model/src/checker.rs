//! The exhaustive checker: breadth-first search over policy × kernel states.
//!
//! Breadth-first, so the first counterexample found is a shortest one. Each state
//! (policy and kernel) is remembered only by its 64-bit fingerprint (`visited`), so each
//! is expanded once; whole states are kept only for the level being expanded and the
//! next one. A parent index and the move per state rebuild the counterexample's path
//! from the root, which is then replayed to produce a readable [`Trace`]. Memory is
//! therefore fingerprints + 6 bytes a state + two BFS levels (docs/design.md §11).
//!
//! Properties:
//! - **safety**: every page the receiving application reads holds the stream bytes for
//!   its offset. A reuse that only a discarded duplicate (spurious retransmission) sees
//!   is harmless, so the property is judged where it matters — at the receiver. The
//!   timeline still marks every fill of a page the kernel holds.
//! - **progress**: in every reachable state something can happen until the receiver
//!   has the whole stream; a state with no enabled move is `stuck` (a policy waiting for
//!   a signal that can no longer come).

use crate::config::{Scenario, ScenarioError};
use crate::kernel::{Corruption, Event, Kernel, Perform};
use crate::timeline;
use serde::Serialize;
use visited::{fingerprint, Visited};

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
mod visited;
use std::time::{Duration, Instant};
use zcsafe_policy::{Abort, Op, Policy, Trace, Verdict};

/// One move of the explored system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Move {
    /// The application performs its pending operation.
    App,
    Kernel(Event),
}

/// A policy and the kernel it runs on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State<P> {
    pub policy: P,
    pub kernel: Kernel,
}

/// Limits of one check.
#[derive(Clone, Copy, Debug)]
pub struct CheckOptions {
    /// Give up (with an error) beyond this many states.
    pub max_states: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            max_states: 20_000_000,
        }
    }
}

/// Why a check could not be completed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("invalid scenario: {0}")]
    Scenario(#[from] ScenarioError),
    #[error(
        "more than {0} states: shrink the scenario (stream, buffer, losses) or raise the limit"
    )]
    TooManyStates(usize),
}

/// The result of a check.
#[derive(Clone, Debug, Serialize)]
#[must_use = "a report says what was judged: print it or hand it on"]
pub struct CheckReport {
    pub verdict: Verdict,
    /// Distinct states explored.
    pub states: usize,
    /// Moves taken (edges).
    pub transitions: usize,
    /// Paths on which the receiver got the whole stream intact.
    pub complete_states: usize,
    #[serde(serialize_with = "ser_ms")]
    pub elapsed: Duration,
    /// The shortest counterexample (or, for `unsupported`/`error`, the path to it).
    pub trace: Option<Trace>,
    /// One sentence on the outcome.
    pub detail: String,
}

impl CheckReport {
    /// The report with its counterexample labelled as `policy`'s: [`check`] runs a bare
    /// [`Policy`], which has no name, and a trace without one cannot be replayed by name.
    pub fn named(mut self, policy: &str) -> CheckReport {
        if let Some(trace) = &mut self.trace {
            trace.policy = policy.into();
        }
        self
    }
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// What ended a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    Corrupt(Corruption),
    Stuck,
    Fault(String),
    Abort(Abort),
}

impl Ending {
    fn verdict(&self) -> Verdict {
        match self {
            Ending::Corrupt(_) => Verdict::Corrupt,
            Ending::Stuck => Verdict::Stuck,
            Ending::Abort(Abort::Unsupported(_)) => Verdict::Unsupported,
            Ending::Fault(_) | Ending::Abort(Abort::Failed(_)) => Verdict::Error,
        }
    }
}

/// The outcome of taking a move.
pub(crate) enum Step<P> {
    Next(State<P>),
    End(State<P>, Ending),
    /// The application's call would block: the move is not enabled.
    Blocked,
}

/// Takes a move. Kernel moves must be enabled; an application move whose call would
/// block yields [`Step::Blocked`] (only trying the call tells).
pub(crate) fn take<P: Policy>(s: &Scenario, st: &State<P>, mv: Move) -> Step<P> {
    let mut next = st.clone();
    match mv {
        Move::App => {
            let op = next.policy.poll_op();
            if let Op::Abort(a) = &op {
                return Step::End(next, Ending::Abort(a.clone()));
            }
            match next.kernel.perform(s, &op) {
                Perform::Done(outcome) => {
                    if op != Op::Finish {
                        next.policy.handle(outcome);
                    }
                }
                Perform::Fault(f) => return Step::End(next, Ending::Fault(format!("{op}: {f}"))),
                Perform::Blocked => return Step::Blocked,
            }
        }
        Move::Kernel(ev) => {
            if let Some(c) = next.kernel.fire(s, ev) {
                return Step::End(next, Ending::Corrupt(c));
            }
        }
    }
    Step::Next(next)
}

/// The moves to try in `st`, in the order that makes the search (and so the
/// counterexample it finds first) deterministic: the application, then the kernel's.
pub(crate) fn moves<P>(s: &Scenario, st: &State<P>) -> impl Iterator<Item = Move> {
    let app = (!st.kernel.finished).then_some(Move::App);
    app.into_iter()
        .chain(st.kernel.enabled(s).into_iter().map(Move::Kernel))
}

/// What a search found, by state index (indices number states in BFS order).
#[derive(Default)]
pub(crate) struct Findings {
    /// The first ending of each verdict: the state it was reached from, and the move.
    endings: Vec<(u32, Move, Ending)>,
    /// The first state with no enabled move.
    stuck: Option<u32>,
}

impl Findings {
    /// Records an ending reached from state `from` by `mv`; `true` when the search
    /// should stop (a corruption is the strongest finding, and BFS found a shortest one).
    pub(crate) fn ending(&mut self, from: u32, mv: Move, ending: Ending) -> bool {
        let stop = matches!(ending, Ending::Corrupt(_));
        if !self
            .endings
            .iter()
            .any(|e| e.2.verdict() == ending.verdict())
        {
            self.endings.push((from, mv, ending));
        }
        stop
    }

    /// Records that state `at` has no enabled move.
    pub(crate) fn stuck(&mut self, at: u32) {
        self.stuck.get_or_insert(at);
    }

    /// The finding to report: a policy that cannot run at all, a policy bug, then
    /// corruption, then a stuck state. The last move, if the ending is a move's.
    fn worst(mut self) -> Option<(u32, Option<Move>, Ending)> {
        let rank = |v: Verdict| match v {
            Verdict::Unsupported => 0,
            Verdict::Error => 1,
            Verdict::Corrupt => 2,
            _ => 3,
        };
        self.endings.sort_by_key(|e| rank(e.2.verdict()));
        match self.endings.into_iter().next() {
            Some((from, mv, ending)) => Some((from, Some(mv), ending)),
            None => self.stuck.map(|at| (at, None, Ending::Stuck)),
        }
    }
}

/// Counts of a finished search.
pub(crate) struct Explored {
    pub(crate) states: usize,
    pub(crate) transitions: usize,
    pub(crate) complete: usize,
}

/// Builds the report of a search: the worst finding's path (from `path_to`, which gives
/// the moves from the root to a state index) replayed into a trace.
pub(crate) fn report<P: Policy>(
    scenario: &Scenario,
    root: State<P>,
    explored: Explored,
    findings: Findings,
    path_to: impl FnOnce(u32) -> Vec<Move>,
    start: Instant,
) -> CheckReport {
    let (verdict, trace, detail) = match findings.worst() {
        Some((at, last, ending)) => {
            let mut path = path_to(at);
            path.extend(last);
            let trace = timeline::replay(scenario, root, &path, &ending);
            (ending.verdict(), Some(trace.clone()), trace.summary)
        }
        None => (
            Verdict::Safe,
            None,
            format!(
                "no interleaving corrupts the stream: {} states, {} of them with the whole stream read intact",
                explored.states, explored.complete
            ),
        ),
    };
    CheckReport {
        verdict,
        states: explored.states,
        transitions: explored.transitions,
        complete_states: explored.complete,
        elapsed: start.elapsed(),
        trace,
        detail,
    }
}

/// How each state was first reached: `parent[i - 1]` and `via[i - 1]` for state `i > 0`
/// (the root has none). Two flat vectors: 4 + 2 bytes a state, no padding.
#[derive(Default)]
struct Parents {
    parent: Vec<u32>,
    via: Vec<Move>,
}

impl Parents {
    fn push(&mut self, parent: u32, mv: Move) {
        self.parent.push(parent);
        self.via.push(mv);
    }

    /// The moves from the root to state `i`.
    fn path_to(&self, mut i: u32) -> Vec<Move> {
        let mut path = Vec::new();
        while i > 0 {
            let k = i as usize - 1;
            path.push(self.via[k]);
            i = self.parent[k];
        }
        path.reverse();
        path
    }
}

/// Checks `policy` exhaustively in `scenario`.
pub fn check<P: Policy>(
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
    let mut visited = Visited::default();
    visited.insert(fingerprint(&root));
    let mut parents = Parents::default();
    // The level being expanded, whose first state has index `base`, and the next one.
    let mut level = vec![root.clone()];
    let mut next: Vec<State<P>> = Vec::new();
    let mut base = 0usize;
    let mut states = 1usize;
    let mut transitions = 0usize;
    let mut complete = 0usize;
    let mut findings = Findings::default();
    'search: while !level.is_empty() {
        let width = level.len();
        // Expanded states are dropped as the level drains: only unexpanded ones and the
        // next level are held.
        for (k, st) in level.drain(..).enumerate() {
            let head = (base + k) as u32;
            if st.kernel.complete(scenario) {
                complete += 1;
                continue;
            }
            let mut moved = false;
            for mv in moves(scenario, &st) {
                let step = take(scenario, &st, mv);
                if !matches!(step, Step::Blocked) {
                    moved = true;
                    transitions += 1;
                }
                match step {
                    Step::Blocked => {}
                    Step::Next(n) => {
                        if visited.insert(fingerprint(&n)) {
                            parents.push(head, mv);
                            next.push(n);
                            states += 1;
                            if states > opts.max_states {
                                return Err(CheckError::TooManyStates(opts.max_states));
                            }
                        }
                    }
                    Step::End(_, ending) => {
                        if findings.ending(head, mv, ending) {
                            break 'search;
                        }
                    }
                }
            }
            if !moved {
                findings.stuck(head);
            }
        }
        base += width;
        std::mem::swap(&mut level, &mut next);
    }
    drop((level, next, visited));
    let explored = Explored {
        states,
        transitions,
        complete,
    };
    Ok(report(
        scenario,
        root,
        explored,
        findings,
        |i| parents.path_to(i),
        start,
    ))
}
