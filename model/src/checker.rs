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
use visited::{fingerprint_parts, Visited};

mod level;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
mod visited;
use level::{Record, Runs};
use std::time::{Duration, Instant};
use zcsafe_policy::{Abort, Hazards, Op, Policy, Trace, Verdict};

/// One move of the explored system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Move {
    /// The application performs its pending operation.
    App,
    Kernel(Event),
}

/// A policy and the kernel it runs on.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct State<P> {
    pub policy: P,
    pub kernel: Kernel,
}

/// By field, so that `clone_from` reuses the kernel's buffers (the checker's scratch
/// state, docs/design.md §11).
impl<P: Clone> Clone for State<P> {
    fn clone(&self) -> Self {
        State {
            policy: self.policy.clone(),
            kernel: self.kernel.clone(),
        }
    }
    fn clone_from(&mut self, source: &Self) {
        self.policy.clone_from(&source.policy);
        self.kernel.clone_from(&source.kernel);
    }
}

/// Limits of one check.
#[derive(Clone, Copy, Debug)]
pub struct CheckOptions {
    /// Give up (with an error) beyond this many states.
    pub max_states: usize,
    /// Stop with no verdict (`inconclusive`, and the [`Coverage`] reached) once the
    /// search holds more than this many bytes by its own account.
    pub max_memory: Option<u64>,
    /// Threads that expand each BFS level; 0 for every available core. The report is
    /// the same whatever the number. Default 1: with the serial merge, two threads were
    /// slower than one on this project's 2-core host even when idle (docs/design.md §11).
    pub threads: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            max_states: 20_000_000,
            max_memory: None,
            threads: 1,
        }
    }
}

impl CheckOptions {
    /// The thread count to use: [`CheckOptions::threads`], or the available cores.
    pub fn threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
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
    /// Set when the memory bound stopped the search (the verdict is then
    /// `inconclusive`): how far it got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
    /// The hazards the explored moves reached (each counted once per move) and the ones
    /// the policy's operations opened but no explored move reached.
    pub hazards: Hazards,
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
    pub(crate) fn verdict(&self) -> Verdict {
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
    // The ending is read by the reference engine (tests); the timeline knows it already.
    End(State<P>, #[cfg_attr(not(test), allow(dead_code))] Ending),
    /// The application's call would block: the move is not enabled.
    Blocked,
}

/// Takes a move. Kernel moves must be enabled; an application move whose call would
/// block yields [`Step::Blocked`] (only trying the call tells).
pub(crate) fn take<P: Policy>(s: &Scenario, st: &State<P>, mv: Move) -> Step<P> {
    let mut next = st.clone();
    match apply(s, &mut next, mv) {
        Applied::Next => Step::Next(next),
        Applied::End(e) => Step::End(next, e),
        Applied::Blocked => Step::Blocked,
    }
}

/// What taking a move in place did.
pub(crate) enum Applied {
    Next,
    End(Ending),
    /// The application's call would block: the move is not enabled, and the state is
    /// left half-changed (the caller starts again from a copy).
    Blocked,
}

/// Takes a move in `st` itself.
pub(crate) fn apply<P: Policy>(s: &Scenario, st: &mut State<P>, mv: Move) -> Applied {
    match mv {
        Move::App => apply_app(s, &mut st.policy, &mut st.kernel),
        Move::Kernel(ev) => apply_event(s, &mut st.kernel, ev),
    }
}

/// The application's move, on a policy and a kernel.
pub(crate) fn apply_app<P: Policy>(s: &Scenario, policy: &mut P, kernel: &mut Kernel) -> Applied {
    let op = policy.poll_op();
    if let Op::Abort(a) = &op {
        return Applied::End(Ending::Abort(a.clone()));
    }
    match kernel.perform(s, &op) {
        Perform::Done(outcome) => {
            if op != Op::Finish {
                policy.handle(outcome);
            }
        }
        Perform::Fault(f) => return Applied::End(Ending::Fault(format!("{op}: {f}"))),
        Perform::Blocked => return Applied::Blocked,
    }
    Applied::Next
}

/// A kernel event: it changes the kernel only, so the checker leaves the policy where
/// it is and copies just the kernel for it.
pub(crate) fn apply_event(s: &Scenario, kernel: &mut Kernel, ev: Event) -> Applied {
    match kernel.fire(s, ev) {
        Some(c) => Applied::End(Ending::Corrupt(c)),
        None => Applied::Next,
    }
}

/// The moves to try in `st`, in the order that makes the search (and so the
/// counterexample it finds first) deterministic: the application, then the kernel's.
#[cfg(test)]
pub(crate) fn moves<P>(s: &Scenario, st: &State<P>) -> impl Iterator<Item = Move> {
    let mut buf = Vec::new();
    moves_into(s, st, &mut buf);
    buf.into_iter()
}

/// [`moves`] into a buffer the caller keeps, cleared first.
pub(crate) fn moves_into<P>(s: &Scenario, st: &State<P>, buf: &mut Vec<Move>) {
    buf.clear();
    if !st.kernel.finished {
        buf.push(Move::App);
    }
    st.kernel.enabled_each(s, |e| buf.push(Move::Kernel(e)));
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
    pub(crate) hazards: Hazards,
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
    let hazards = explored
        .hazards
        .with_hints(|h| crate::hazard::hint(h, scenario));
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
                "no interleaving corrupts the stream: {} states, {} of them with the whole stream read intact; {}",
                explored.states,
                explored.complete,
                hazards.clause()
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
        coverage: None,
        hazards,
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

impl Parents {
    /// Bytes the links hold (their vectors' capacity).
    fn bytes(&self) -> usize {
        self.parent.capacity() * 4 + self.via.capacity() * std::mem::size_of::<Move>()
    }
}

/// Where a running check is: handed to [`check_observed`]'s observer after each BFS
/// level (the CLI draws its progress line from it).
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Distinct states found so far.
    pub states: usize,
    /// Moves taken so far.
    pub transitions: usize,
    /// The BFS level just expanded (the root is level 0).
    pub depth: usize,
    /// What the search holds now, by its own account ([`Coverage::held_bytes`]).
    pub held_bytes: u64,
    pub elapsed: Duration,
}

/// How far a check got before its memory bound stopped it (`--max-memory`). A bounded
/// run gives no verdict: what it did not explore may hold a counterexample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// The bound, in bytes.
    pub max_memory: u64,
    /// The deepest BFS level it reached: every state up to `depth - 1` moves from the
    /// start was expanded, and some at `depth`.
    pub depth: usize,
    /// What the search held when it stopped, by its own account: the fingerprint table,
    /// the parent links, and the whole states of the level being expanded and the next
    /// (their inline size and their queues' buffers). The process's resident memory is
    /// somewhat more: allocator slack, the candidate successors of the level in flight.
    pub held_bytes: u64,
}

/// What the search holds of one whole state: its inline size, its heap buffers.
fn state_bytes<P>(st: &State<P>) -> u64 {
    (std::mem::size_of::<State<P>>() + st.kernel.heap_bytes()) as u64
}

/// Checks `policy` exhaustively in `scenario`.
pub fn check<P: Policy>(
    policy: P,
    scenario: &Scenario,
    opts: &CheckOptions,
) -> Result<CheckReport, CheckError> {
    check_observed(policy, scenario, opts, &mut |_| {})
}

/// [`check`], telling `observe` where it is after each BFS level.
pub fn check_observed<P: Policy>(
    policy: P,
    scenario: &Scenario,
    opts: &CheckOptions,
    observe: &mut dyn FnMut(&Progress),
) -> Result<CheckReport, CheckError> {
    scenario.validate()?;
    let start = Instant::now();
    let threads = opts.threads();
    let root = State {
        policy,
        kernel: Kernel::new(scenario),
    };
    let mut visited = Visited::default();
    visited.insert(fingerprint_parts(&root.policy, &root.kernel));
    let mut parents = Parents::default();
    // The level being expanded, whose first state has index `base`, and the next one,
    // with what each holds (`state_bytes`).
    let mut level_bytes = state_bytes(&root);
    let mut level = Runs::root(root.clone());
    let mut base = 0usize;
    let mut states = 1usize;
    let mut transitions = 0usize;
    let mut complete = 0usize;
    let mut depth = 0usize;
    let mut findings = Findings::default();
    let mut hazards = Hazards::default();
    let mut bounded = None;
    'search: while !level.is_empty() {
        let width = level.len();
        // The level's states are still counted as held until it is merged: the bound
        // stops at the same state whatever the threads did.
        let runs = level::expand(scenario, &visited, level, threads);
        let mut next = Runs::new();
        let mut next_bytes = 0u64;
        // The index of the state whose records are being merged, plus one.
        let mut head = base as u32;
        for run in runs {
            hazards.merge(&run.hazards);
            // The run's new states that are new to the whole search too, in place.
            let mut found = run.states;
            let mut keep = Vec::with_capacity(found.len());
            let mut new_states = found.iter();
            let mut endings = run.endings.into_iter();
            for rec in run.records {
                match rec {
                    Record::Begin => head += 1,
                    Record::Complete => complete += 1,
                    Record::Stuck => findings.stuck(head - 1),
                    Record::Seen => transitions += 1,
                    Record::New(mv, fp) => {
                        transitions += 1;
                        let n = new_states.next().expect("one state per New record");
                        keep.push(visited.insert(fp));
                        if keep[keep.len() - 1] {
                            parents.push(head - 1, mv);
                            next_bytes += state_bytes(n);
                            states += 1;
                            if states > opts.max_states {
                                return Err(CheckError::TooManyStates(opts.max_states));
                            }
                            if let Some(max) = opts.max_memory {
                                let held = held(&visited, &parents, level_bytes + next_bytes);
                                if held > max {
                                    bounded = Some(Coverage {
                                        max_memory: max,
                                        depth: depth + 1,
                                        held_bytes: held,
                                    });
                                    break 'search;
                                }
                            }
                        }
                    }
                    Record::Ended(mv) => {
                        transitions += 1;
                        let ending = endings.next().expect("one ending per Ended record");
                        if findings.ending(head - 1, mv, ending) {
                            break 'search;
                        }
                    }
                }
            }
            let mut keep = keep.into_iter();
            found.retain(|_| keep.next().expect("one decision per state"));
            next.push_run(found);
        }
        base += width;
        depth += 1;
        observe(&Progress {
            states,
            transitions,
            depth,
            held_bytes: held(&visited, &parents, next_bytes),
            elapsed: start.elapsed(),
        });
        level = next;
        level_bytes = next_bytes;
    }
    drop(visited);
    let explored = Explored {
        states,
        transitions,
        complete,
        hazards,
    };
    if let Some(coverage) = bounded {
        return Ok(bounded_report(explored, coverage, start));
    }
    Ok(report(
        scenario,
        root,
        explored,
        findings,
        |i| parents.path_to(i),
        start,
    ))
}

/// What the search holds, by its own account (see [`Coverage::held_bytes`]).
fn held(visited: &Visited, parents: &Parents, whole_states: u64) -> u64 {
    (visited.bytes() + parents.bytes()) as u64 + whole_states
}

/// The report of a search its memory bound stopped: no verdict it has not earned.
fn bounded_report(explored: Explored, coverage: Coverage, start: Instant) -> CheckReport {
    let detail = format!(
        "no verdict: the memory bound of {} stopped the search after {} states, at depth {} (every state up to depth {} expanded); a larger bound or a smaller scenario may decide it",
        human_bytes(coverage.max_memory),
        explored.states,
        coverage.depth,
        coverage.depth.saturating_sub(1),
    );
    CheckReport {
        verdict: Verdict::Inconclusive,
        states: explored.states,
        transitions: explored.transitions,
        complete_states: explored.complete,
        elapsed: start.elapsed(),
        trace: None,
        detail,
        coverage: Some(coverage),
        hazards: explored.hazards,
    }
}

/// `1.5 GiB`, `300 MiB`: sizes as a person reads them.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
