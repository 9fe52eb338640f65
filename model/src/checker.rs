//! The exhaustive checker: breadth-first search over policy × kernel states.
//!
//! Breadth-first, so the first counterexample found is a shortest one. States are
//! hashed whole (policy and kernel), so each is expanded once; the parent links rebuild
//! the path, which is then replayed to produce a readable [`Trace`].
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
use indexmap::IndexSet;
use rustc_hash::FxBuildHasher;
use serde::Serialize;
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
    let mut seen: IndexSet<State<P>, FxBuildHasher> = IndexSet::default();
    // parent[i]: the state and move that first reached state i.
    let mut parent: Vec<Option<(u32, Move)>> = vec![None];
    seen.insert(root);
    let mut transitions = 0usize;
    let mut complete = 0usize;
    let mut endings: Vec<(u32, Move, Ending)> = Vec::new();
    let mut stuck: Option<u32> = None;
    let mut head = 0usize;
    'search: while head < seen.len() {
        let st = seen[head].clone();
        if st.kernel.complete(scenario) {
            complete += 1;
            head += 1;
            continue;
        }
        let app = (!st.kernel.finished).then_some(Move::App);
        let kernel = st.kernel.enabled(scenario).into_iter().map(Move::Kernel);
        let mut moved = false;
        for mv in app.into_iter().chain(kernel) {
            let step = take(scenario, &st, mv);
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
                    let first_of_kind = !endings.iter().any(|e| e.2.verdict() == ending.verdict());
                    if first_of_kind {
                        endings.push((head as u32, mv, ending.clone()));
                    }
                    // A corruption is the strongest finding: BFS found a shortest one.
                    if matches!(ending, Ending::Corrupt(_)) {
                        break 'search;
                    }
                }
            }
        }
        if !moved && stuck.is_none() {
            stuck = Some(head as u32);
        }
        head += 1;
    }

    // Which finding to report: a policy that cannot run at all, a policy bug, then
    // corruption, then a stuck state.
    let rank = |v: Verdict| match v {
        Verdict::Unsupported => 0,
        Verdict::Error => 1,
        Verdict::Corrupt => 2,
        _ => 3,
    };
    endings.sort_by_key(|e| rank(e.2.verdict()));
    let path_to = |mut i: u32| {
        let mut path = Vec::new();
        while let Some((p, mv)) = parent[i as usize] {
            path.push(mv);
            i = p;
        }
        path.reverse();
        path
    };
    let root = State {
        policy: seen[0].policy.clone(),
        kernel: Kernel::new(scenario),
    };
    let (verdict, trace, detail) = if let Some((from, mv, ending)) = endings.first() {
        let mut path = path_to(*from);
        path.push(*mv);
        let trace = timeline::replay(scenario, root, &path, ending);
        (ending.verdict(), Some(trace.clone()), trace.summary)
    } else if let Some(i) = stuck {
        let path = path_to(i);
        let trace = timeline::replay(scenario, root, &path, &Ending::Stuck);
        (Verdict::Stuck, Some(trace.clone()), trace.summary)
    } else {
        let detail = format!(
            "no interleaving corrupts the stream: {} states, {} of them with the whole stream read intact",
            seen.len(),
            complete
        );
        (Verdict::Safe, None, detail)
    };
    Ok(CheckReport {
        verdict,
        states: seen.len(),
        transitions,
        complete_states: complete,
        elapsed: start.elapsed(),
        trace,
        detail,
    })
}
