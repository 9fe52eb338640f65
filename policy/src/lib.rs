//! The contract between a buffer-reuse policy and the backends that judge it.
//!
//! A *policy* is the part of a zero-copy sender that decides when a user buffer may be
//! written again. zcsafe judges one implementation of it against several backends — an
//! exhaustive model checker, simulations, the host kernel, kernels in VMs — so the policy
//! must not do I/O itself. It is a sans-IO state machine (as in `quinn-proto`):
//!
//! ```text
//!   loop {
//!       let op = policy.poll_op();          // what the sender wants done next
//!       if op == Op::Finish { break }
//!       let outcome = backend.perform(op);  // real syscall, or a model transition
//!       policy.handle(outcome);             // the policy learns what happened
//!   }
//! ```
//!
//! [`Op::Fill`] is the reuse moment: it writes stream bytes into the user buffer. The model
//! checks it against the kernel's live page references; a real kernel can only show the
//! result at the receiver, which checks every byte against the [`stream`] pattern.
//!
//! To check your own policy, implement [`Policy`] (derive `Clone, PartialEq, Eq, Hash,
//! Debug`) and hand a constructor to `zcsafe_model::check`. See `examples/ring-policy`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod any;
pub mod evidence;
pub mod expect;
pub mod failure;
pub mod geometry;
pub mod hazard;
pub mod host;
pub mod junit;
pub mod known;
pub mod op;
pub mod outcome;
pub mod peer;
pub mod profile;
pub mod report;
pub mod retry;
pub mod socket;
pub mod stream;
pub mod table;
pub mod timing;
pub mod trace;
pub mod transport;
pub mod verdict;
pub mod window;

pub use any::AnyPolicy;
pub use evidence::NoEvidence;
pub use expect::Expectation;
pub use failure::{FailureScenario, FailureScenarioError};
pub use geometry::{Geometry, GeometryError, Pipeline, Region};
pub use hazard::{Hazard, HazardMarks, HazardSet, Hazards, Observer};
pub use host::{HostTransport, UnknownHostTransport};
pub use known::{Known, KnownDifference, KnownError, KnownFile};
pub use op::{Abort, FileId, Op, UringZcOpcode, UserData};
pub use outcome::{Cqe, Errno, Outcome, ZcNotification, IORING_NOTIF_USAGE_ZC_COPIED};
pub use peer::{PeerScript, PeerScriptError};
pub use profile::{GiftSupport, Profile, WindowRule};
pub use report::{
    exit_status, Evidence, Finding, Outcomes, Results, ScenarioSizes, SweepStep,
    RESULTS_FORMAT_VERSION,
};
pub use retry::{settle, RetryBudget};
pub use socket::SocketKind;
pub use table::{Align, Table};
pub use timing::{FindingTiming, Timing};
pub use trace::{
    Actor, Answer, Backend, Completion, Event, Flag, HeldPage, Holder, Mismatch, Page, PageHolders,
    Payload, Step, StreamEnd, Trace, TraceProfile, TraceTransport, UnknownBackend,
    TRACE_FORMAT_VERSION,
};
pub use transport::{RemoteDevice, TransportClass, UnknownRemoteDevice, UnknownTransportClass};
pub use verdict::Verdict;
pub use window::{ReceiveWindow, WIDE_RCVBUF};

use std::fmt::Debug;
use std::hash::Hash;

/// A buffer-reuse policy: a deterministic state machine that asks for operations and
/// learns their outcomes.
///
/// The protocol is strictly alternating: the backend calls [`poll_op`](Policy::poll_op),
/// performs the operation, then calls [`handle`](Policy::handle) with its outcome, and
/// repeats until the policy returns [`Op::Finish`] or [`Op::Abort`]. `poll_op` must not
/// change what the policy would do next if called twice without a `handle` in between
/// (backends may call it to look at the pending operation).
///
/// The bounds exist for the model checker: it clones a policy at every branch point and
/// hashes it to recognise states it has already explored. Keep the state small and
/// canonical (no timestamps, no counters that never matter again).
pub trait Policy: Clone + Eq + Hash + Debug + Send + 'static {
    /// The next operation the sender wants performed.
    #[must_use = "the policy asks for this operation: perform it and pass the outcome to handle()"]
    fn poll_op(&self) -> Op;

    /// The outcome of the operation last returned by [`poll_op`](Policy::poll_op).
    ///
    /// The operation it answers is not passed in: it is `self.poll_op()`, which is pure
    /// and cheap, so call it first when the answer's meaning depends on it (every
    /// catalogue policy does: `let op = self.poll_op();` to name the operation in an
    /// [`Abort`]), and keep in your state only what `poll_op` cannot recompute.
    fn handle(&mut self, outcome: Outcome);
}
