//! Turning a path of moves into a [`Trace`]: each move becomes a typed step, described
//! from the state just before it ([`record`](crate::record)), with the completions it made
//! visible and who holds each page after it. `zcsafe_explain` renders it.

use crate::checker::{take, Ending, Move, State, Step as Taken};
use crate::config::Scenario;
use crate::kernel::Perform;
use zcsafe_policy::{
    Answer, Backend, Event, Op, Policy, Step, Trace, TraceProfile, TraceTransport, Verdict,
    TRACE_FORMAT_VERSION,
};

/// Replays `path` from `root`, recording each move and who holds each page after it.
pub(crate) fn replay<P: Policy>(
    s: &Scenario,
    root: State<P>,
    path: &[Move],
    ending: &Ending,
) -> Trace {
    let mut st = root;
    let mut steps = Vec::new();
    for (i, &mv) in path.iter().enumerate() {
        let event = describe(s, &st, mv);
        let after = match take(s, &st, mv) {
            Taken::Next(n) => n,
            Taken::End(n, _) => {
                debug_assert_eq!(i, path.len() - 1, "only the last move ends a path");
                n
            }
            Taken::Blocked => unreachable!("paths only hold moves that were taken"),
        };
        steps.push(Step {
            at_us: None,
            event,
            completions: after.kernel.completions_since(&st.kernel),
            holders: after.kernel.page_holders(),
        });
        st = after;
    }
    let (verdict, summary) = match ending {
        Ending::Corrupt(c) => (
            Verdict::Corrupt,
            match c.meant_for {
                Some(m) => format!(
                    "the receiver read stream page {} but got the bytes of page {m}: the buffer was reused {} page(s) too early",
                    c.offset,
                    m.saturating_sub(c.offset)
                ),
                None => format!("the receiver read stream page {} but got zeroes", c.offset),
            },
        ),
        Ending::Stuck => (
            Verdict::Stuck,
            match path.len() {
                0 => "nothing can happen at all".into(),
                _ => "the sender waits for something that can no longer happen".into(),
            },
        ),
        Ending::Fault(f) => (Verdict::Error, format!("the policy faulted: {f}")),
        Ending::Abort(zcsafe_policy::Abort::Unsupported(r)) => (Verdict::Unsupported, format!("unsupported: {r}")),
        Ending::Abort(zcsafe_policy::Abort::Failed(r)) => (Verdict::Error, format!("the policy gave up: {r}")),
    };
    Trace {
        format: TRACE_FORMAT_VERSION,
        policy: String::new(),
        transport: TraceTransport::Class(s.config.transport),
        device: s.device().unwrap_or_default(),
        backend: Backend::Model,
        profile: TraceProfile::Named(s.config.profile.name.clone()),
        geometry: s.geometry,
        steps,
        verdict,
        summary,
        scenario: Some(s.sizes()),
    }
}

/// The trace event of `mv`, about to be taken in `st`.
pub(crate) fn describe<P: Policy>(s: &Scenario, st: &State<P>, mv: Move) -> Event {
    match mv {
        Move::App => {
            let op = st.policy.poll_op();
            Event::Call {
                wrote_held: st.kernel.wrote_held(&op),
                answer: answer(s, st, &op),
                op,
            }
        }
        Move::Kernel(ev) => st.kernel.describe(s, ev),
    }
}

/// What the kernel answers `op` in this state (the move is taken, so it does not block).
fn answer<P: Policy>(s: &Scenario, st: &State<P>, op: &Op) -> Answer {
    if matches!(op, Op::Abort(_) | Op::Finish) {
        return Answer::None;
    }
    match st.kernel.clone().perform(s, op) {
        Perform::Done(o) => Answer::Returned(o),
        Perform::Fault(f) => Answer::Fault(f.to_string()),
        Perform::Blocked => Answer::None,
    }
}
