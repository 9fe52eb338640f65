//! The kernel's zero-copy send path as an explicit state machine, and an exhaustive
//! checker that runs any [`Policy`](zcsafe_policy::Policy) against it.
//!
//! The model follows the holders of a page handed to the kernel (docs/design.md §1): the
//! [`pipe`], the sending [`socket`]'s write and retransmit queues, the [`network`]
//! (device ring, wire, ACKs), the [`peer`]'s receive queue, and [`zerocopy`] completions
//! (error-queue notifications, io_uring CQEs). Kernels differ in a few semantic switches
//! (`zcsafe_policy::Profile`), and the [`config`] sets sizes and fault budgets.
//!
//! ```
//! use zcsafe_model::{check, CheckOptions, Scenario};
//! use zcsafe_policy::{Profile, TransportClass, Verdict};
//! use zcsafe_policies::{siocoutq_drain::SiocoutqDrain, Catalogued};
//!
//! let scenario = Scenario::standard(TransportClass::Local, Profile::classic());
//! let policy = SiocoutqDrain::new(&scenario.geometry).unwrap();
//! let report = check(policy, &scenario, &CheckOptions::default()).unwrap();
//! assert_eq!(report.verdict, Verdict::Corrupt); // local delivery keeps the pages
//! ```

#![forbid(unsafe_code)]

/// `Clone` for a state component, field by field, with a `clone_from` that forwards to
/// each field's own: `Vec` and `VecDeque` then refill the buffers they already have. The
/// checker clones every state into one scratch state per move (docs/design.md §11), so
/// this turns an allocation per queue per move into none. Listing every field is checked:
/// `clone` builds the struct literal, so a field left out does not compile.
macro_rules! clone_reusing {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl Clone for $ty {
            fn clone(&self) -> Self {
                $ty { $($field: self.$field.clone()),* }
            }
            fn clone_from(&mut self, source: &Self) {
                $(self.$field.clone_from(&source.$field);)*
            }
        }
    };
}

pub mod checker;
pub mod config;
pub mod follow;
pub mod hazard;
pub mod kernel;
pub mod memory;
pub mod network;
pub mod peer;
pub mod pipe;
pub mod record;
pub mod socket;
pub mod split;
pub mod sweep;
pub mod timeline;
pub mod window;
pub mod zerocopy;

pub use checker::{
    check, check_observed, CheckError, CheckOptions, CheckReport, Coverage, Progress,
};
pub use config::{ModelConfig, Scenario, ScenarioError};
pub use follow::{follow, Difference, Followed};
pub use sweep::{sweep, SweepReport, SweepStep, SweepStepError};
