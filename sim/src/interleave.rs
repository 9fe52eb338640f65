//! The policy and the kernel's asynchronous agents as loom threads.
//!
//! Five threads (loom's limit), one `Mutex<Kernel>`:
//!
//! | thread | moves (the model's events) |
//! |---|---|
//! | main: the application | the policy's operations (`Kernel::perform`) |
//! | tcp (softirq) | `Transmit`, `Ack`, `Retransmit`, io_uring `SEND_ZC` execution |
//! | device | `DeviceComplete` (TX completion) |
//! | network | `Deliver`, `Lose` |
//! | receiver | `Read`, which checks the bytes |
//!
//! Each thread takes the lock, fires one of its enabled events (the model's rules, the
//! model's budgets) and wakes the others; with nothing to do it waits on a condition
//! variable rather than spinning, so an execution has few branches. loom explores the
//! orders in which they take the lock,
//! bounded by `LOOM_MAX_PREEMPTIONS`; a corruption panics with the receiver's finding,
//! which loom reports with the interleaving that led there.

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use zcsafe_model::kernel::{Corruption, Event, Kernel, Perform};
use zcsafe_model::Scenario;
use zcsafe_policy::{Op, Policy};

/// Which agent a thread plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Agent {
    Tcp,
    Device,
    Network,
    Receiver,
}

impl Agent {
    fn owns(self, ev: Event) -> bool {
        matches!(
            (self, ev),
            (
                Agent::Tcp,
                Event::Transmit | Event::Ack | Event::Retransmit | Event::UringExec(_)
            ) | (Agent::Device, Event::DeviceComplete)
                | (Agent::Network, Event::Deliver | Event::Lose)
                | (Agent::Receiver, Event::Read)
        )
    }
}

/// The shared state: the kernel and the application's policy.
struct Shared<P> {
    kernel: Kernel,
    policy: P,
    /// Set when the run is over (stream complete, or nothing can move).
    over: bool,
}

impl<P: Policy> Shared<P> {
    /// Ends the run when the stream is complete or when no move is left.
    fn settle(&mut self, s: &Scenario) {
        if self.kernel.complete(s) {
            self.over = true;
            return;
        }
        let app_can = !self.kernel.finished && {
            let mut k = self.kernel.clone();
            !matches!(k.perform(s, &self.policy.poll_op()), Perform::Blocked)
        };
        if !app_can && self.kernel.enabled(s).is_empty() {
            self.over = true;
        }
    }
}

/// One execution: call inside `loom::model`. Panics with a description when the
/// receiver reads bytes that are not the stream's, when the policy faults, or when
/// the run ends stuck.
pub fn execution<P: Policy>(policy: P, s: &Scenario) {
    let shared = Arc::new((
        Mutex::new(Shared {
            kernel: Kernel::new(s),
            policy,
            over: false,
        }),
        Condvar::new(),
    ));
    let agents: Vec<_> = [Agent::Tcp, Agent::Device, Agent::Network, Agent::Receiver]
        .into_iter()
        .map(|agent| {
            let shared = shared.clone();
            let s = s.clone();
            thread::spawn(move || {
                let (lock, changed) = &*shared;
                let mut g = lock.lock().unwrap();
                loop {
                    if g.over {
                        return;
                    }
                    let mine = g.kernel.enabled(&s).into_iter().find(|&e| agent.owns(e));
                    match mine {
                        Some(ev) => {
                            if let Some(Corruption { offset, meant_for }) = g.kernel.fire(&s, ev) {
                                g.over = true;
                                changed.notify_all();
                                drop(g);
                                panic!(
                                    "corrupt: the receiver read stream page {offset} but got {}",
                                    meant_for.map_or("zeroes".into(), |m| format!(
                                        "the bytes of page {m}"
                                    ))
                                );
                            }
                            g.settle(&s);
                            changed.notify_all();
                            // Let another thread take the lock between two events.
                            drop(g);
                            g = lock.lock().unwrap();
                        }
                        None => g = changed.wait(g).unwrap(),
                    }
                }
            })
        })
        .collect();
    // The application.
    {
        let (lock, changed) = &*shared;
        let mut g = lock.lock().unwrap();
        while !g.over && !g.kernel.finished {
            let op = g.policy.poll_op();
            if let Op::Abort(a) = &op {
                panic!("the policy aborted: {a:?}");
            }
            let st = &mut *g;
            match st.kernel.perform(s, &op) {
                Perform::Blocked => {
                    g = changed.wait(g).unwrap();
                    continue;
                }
                Perform::Fault(f) => panic!("the policy faulted: {op}: {f}"),
                Perform::Done(outcome) => {
                    if op != Op::Finish {
                        st.policy.handle(outcome);
                    }
                }
            }
            st.settle(s);
            changed.notify_all();
            drop(g);
            g = lock.lock().unwrap();
        }
    }
    for a in agents {
        a.join().unwrap();
    }
    let g = shared.0.lock().unwrap();
    assert!(
        g.kernel.complete(s),
        "stuck: the application waits for `{}` and nothing can move",
        g.policy.poll_op()
    );
}

/// A scenario small enough for loom: a one-page buffer reused for a two-page stream,
/// one page of send buffer and window, no loss, no spurious RTO.
pub fn tiny(mut s: Scenario) -> Scenario {
    s.geometry.chunk = 1;
    s.geometry.buffer = 1;
    s.geometry.stream = 2;
    s.config.sndbuf = 1;
    s.config.cwnd = 1;
    s.config.rcvbuf = 1;
    s.config.losses = 0;
    s.config.spurious_rto = 0;
    s
}
