//! The checker's verdicts other than safe/corrupt, shown with tiny inline policies.

use zcsafe_model::{check, CheckOptions, Scenario};
use zcsafe_policy::{Abort, Op, Outcome, Policy, Profile, Region, TransportClass, Verdict};

/// Performs `ops` in order, then finishes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Script(Vec<Op>, usize);

impl Policy for Script {
    fn poll_op(&self) -> Op {
        self.0.get(self.1).cloned().unwrap_or(Op::Finish)
    }
    fn handle(&mut self, _: Outcome) {
        self.1 += 1;
    }
}

fn verdict(ops: Vec<Op>) -> (Verdict, String) {
    let mut s = Scenario::standard(TransportClass::Remote, Profile::classic());
    s.geometry.stream = 1;
    let r = check(Script(ops, 0), &s, &CheckOptions::default()).unwrap();
    (r.verdict, r.detail)
}

fn send_one() -> Vec<Op> {
    vec![
        Op::Fill {
            buf: Region::new(0, 1),
            stream: 0,
        },
        Op::Send {
            buf: Region::new(0, 1),
            zerocopy: false,
        },
    ]
}

#[test]
fn waiting_for_a_notification_that_never_comes_is_stuck() {
    let mut ops = send_one();
    ops.push(Op::ReadErrqueue { block: true }); // no MSG_ZEROCOPY send was made
    let (v, detail) = verdict(ops);
    assert_eq!(v, Verdict::Stuck, "{detail}");
    assert!(detail.contains("can no longer happen"), "{detail}");
}

#[test]
fn a_stream_that_never_arrives_is_stuck_too() {
    let (v, _) = verdict(vec![Op::Finish]);
    assert_eq!(v, Verdict::Stuck, "the receiver waits for one page forever");
}

#[test]
fn writing_outside_the_buffer_is_an_error() {
    let (v, detail) = verdict(vec![Op::Fill {
        buf: Region::new(5, 1),
        stream: 0,
    }]);
    assert_eq!(v, Verdict::Error);
    assert!(detail.contains("outside the buffer"), "{detail}");
}

#[test]
fn an_unsupported_abort_is_unsupported() {
    let (v, detail) = verdict(vec![Op::Abort(Abort::Unsupported("no io_uring".into()))]);
    assert_eq!(v, Verdict::Unsupported);
    assert!(detail.contains("no io_uring"));
}

#[test]
fn sending_the_stream_once_is_safe() {
    let (v, detail) = verdict(send_one());
    assert_eq!(v, Verdict::Safe, "{detail}");
}
