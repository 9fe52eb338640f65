//! A recorded counterexample's schedule, followed in another scenario: the same moves,
//! in the same order — do they do the same there?
//!
//! `zcsafe replay TRACE --on kernel` asks it of a remote-class counterexample found
//! behind the model's NIC before it drives a TUN device through it
//! ([`RemoteDevice::Tun`](zcsafe_policy::RemoteDevice)): a counterexample that needs the
//! NIC's late DMA read goes otherwise behind a TUN device, at a step this names, and the
//! kernel would diverge there.
//!
//! Each recorded step is matched against the moves enabled in the followed state, by what
//! a replay can check of it: the call and its answer, the segment an event moves and the
//! stream page its bytes hold. Which page a segment references and who holds a page
//! after a fill are left out (a device that copied holds a copy where a NIC holds the
//! page: the same bytes).

use crate::checker::{take, Move, State, Step as Taken};
use crate::config::Scenario;
use crate::kernel::Kernel;
use crate::timeline::describe;
use zcsafe_policy::{Event, Policy, Trace, Verdict};

/// How a trace's schedule went in the followed scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Followed {
    /// Steps that went as recorded, from the first.
    pub same: usize,
    /// The first step that did not, if any.
    pub difference: Option<Difference>,
    /// How the followed path ended, if it did (a corruption, a fault).
    pub ended: Option<Verdict>,
}

/// The first step of a schedule that goes otherwise in the followed scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// 1-based, as `zcsafe explain` numbers steps.
    pub step: usize,
    /// What the trace recorded there.
    pub recorded: Event,
    /// What the same move (the same kind of event, on the same segment) does in the
    /// followed scenario; `None` when no such move can be taken there.
    pub here: Option<Event>,
}

/// Follows `trace`'s steps with `policy` in `s`, from the start, until a step goes
/// otherwise or the trace ends.
pub fn follow<P: Policy>(policy: P, s: &Scenario, trace: &Trace) -> Followed {
    let mut st = State {
        policy,
        kernel: Kernel::new(s),
    };
    for (i, step) in trace.steps.iter().enumerate() {
        let want = checkable(&step.event);
        let mut candidates = Vec::new();
        if matches!(step.event, Event::Call { .. }) {
            candidates.push(Move::App);
        } else {
            st.kernel
                .enabled_each(s, |e| candidates.push(Move::Kernel(e)));
        }
        let mut alike = None;
        let mut taken = None;
        for mv in candidates {
            let here = describe(s, &st, mv);
            if checkable(&here) == want {
                taken = Some(mv);
                break;
            }
            if alike.is_none() && same_move(&here, &step.event) {
                alike = Some(here);
            }
        }
        let differs = |here| Followed {
            same: i,
            difference: Some(Difference {
                step: i + 1,
                recorded: step.event.clone(),
                here,
            }),
            ended: None,
        };
        let Some(mv) = taken else {
            return differs(alike);
        };
        match take(s, &st, mv) {
            Taken::Next(n) => st = n,
            Taken::End(_, ending) => {
                return Followed {
                    same: i + 1,
                    difference: None,
                    ended: Some(ending.verdict()),
                }
            }
            Taken::Blocked => return differs(None),
        }
    }
    Followed {
        same: trace.steps.len(),
        difference: None,
        ended: None,
    }
}

/// `e` as a replay checks it: no page references, no holders, no note of where the
/// device copied.
fn checkable(e: &Event) -> Event {
    let mut e = e.clone();
    match &mut e {
        Event::Call { wrote_held, .. } => wrote_held.clear(),
        Event::Transmit {
            payload,
            frags_copied,
            ..
        }
        | Event::Retransmit {
            payload,
            frags_copied,
            ..
        } => {
            payload.page = None;
            *frags_copied = false;
        }
        Event::TxComplete { payload, .. }
        | Event::Deliver { payload, .. }
        | Event::Read { payload, .. } => payload.page = None,
        _ => {}
    }
    e
}

/// The same kind of event on the same segment (or request), whatever it carried.
fn same_move(a: &Event, b: &Event) -> bool {
    let on = |e: &Event| match e {
        Event::Transmit { seq, .. }
        | Event::Retransmit { seq, .. }
        | Event::TxComplete { seq, .. }
        | Event::Lose { seq }
        | Event::Deliver { seq, .. } => Some(*seq as u64),
        Event::Read { seq, .. } => Some(*seq),
        Event::UringExec { user_data, .. }
        | Event::UringFail { user_data }
        | Event::UringNotifFlush { user_data } => Some(*user_data as u64),
        _ => None,
    };
    std::mem::discriminant(a) == std::mem::discriminant(b) && on(a) == on(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check, CheckOptions};
    use zcsafe_policies::uring_zc_naive::UringZcNaive;
    use zcsafe_policies::vmsplice_double_buffer::VmspliceDoubleBuffer;
    use zcsafe_policies::Catalogued;
    use zcsafe_policy::{Profile, RemoteDevice, TransportClass};

    fn nic() -> Scenario {
        Scenario::standard(TransportClass::Remote, Profile::classic())
    }

    fn counterexample<P: Policy>(p: P, s: &Scenario) -> Trace {
        check(p, s, &CheckOptions::default())
            .unwrap()
            .trace
            .expect("a counterexample")
    }

    /// The NIC's counterexample of the policy `build` makes, followed behind a TUN device.
    fn nic_trace_behind_tun<P: Policy>(build: impl Fn(&Scenario) -> P) -> (Trace, Followed) {
        let s = nic();
        let t = counterexample(build(&s), &s);
        let tun = s.clone().with_device(RemoteDevice::Tun);
        let f = follow(build(&tun), &tun, &t);
        (t, f)
    }

    #[test]
    fn a_trace_follows_itself_to_its_corruption() {
        let s = nic();
        let t = counterexample(UringZcNaive::new(&s.geometry).unwrap(), &s);
        let f = follow(UringZcNaive::new(&s.geometry).unwrap(), &s, &t);
        assert_eq!(
            (f.same, f.difference, f.ended),
            (t.steps.len(), None, Some(Verdict::Corrupt))
        );
    }

    /// The NIC's counterexample rewrites `buf[0]` after transmission, before the DMA:
    /// behind a TUN device the bytes were copied at transmission, so its TX completion
    /// carries the page's first bytes.
    #[test]
    fn the_nic_counterexample_of_uring_zc_naive_goes_otherwise_behind_tun_at_the_device_read() {
        let (_, f) = nic_trace_behind_tun(|s| UringZcNaive::new(&s.geometry).unwrap());
        let d = f.difference.expect("a difference");
        let Event::TxComplete { seq, payload } = &d.recorded else {
            panic!("the difference is the device's read: {d:?}")
        };
        assert_ne!(
            payload.content,
            Some(*seq as u64),
            "the NIC read the rewritten page"
        );
        match &d.here {
            Some(Event::TxComplete {
                seq: s2,
                payload: p2,
            }) => {
                assert_eq!(s2, seq);
                assert_eq!(
                    p2.content,
                    Some(*seq as u64),
                    "tun copied the page's own bytes"
                );
            }
            other => panic!("the same device read, other bytes: {other:?}"),
        }
        assert_eq!(f.same, d.step - 1);
    }

    /// vmsplice'd pages are no zero-copy frags: a TUN device reads them when the peer
    /// reads the fd, as the NIC does at TX completion, so the counterexample holds.
    #[test]
    fn a_vmsplice_counterexample_holds_behind_tun() {
        let (_, f) = nic_trace_behind_tun(|s| VmspliceDoubleBuffer::new(&s.geometry).unwrap());
        assert_eq!((f.difference, f.ended), (None, Some(Verdict::Corrupt)));
    }
}
