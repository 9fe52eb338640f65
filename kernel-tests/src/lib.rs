//! The real-kernel backend: drives a [`zcsafe_policy::Policy`] with real system calls over
//! loopback and veth pairs between network namespaces, and checks every byte at a
//! verifying receiver — or, over `tun`, at zcsafe's own TCP peer behind a TUN device.
//!
//! - [`run_policy`]: a policy × transport, `repeat` times → [`RunReport`].
//! - [`run_external`]: any sender program that follows the stream pattern.
//! - [`probe`](mod@probe): the running kernel's [`zcsafe_policy::Profile`], measured.
//! - [`receiver::receive`]: the verifying receiver alone.

pub mod app_ack;
pub mod error;
pub mod errqueue;
pub mod executor;
pub mod exposure;
pub mod external;
pub mod netns;
pub mod probe;
pub mod rcvwindow;
pub mod receiver;
pub mod run;
pub mod schedule;
pub mod send;
pub mod skip;
pub mod sock_diag;
pub mod sys;
pub mod transport;
pub mod tun;
pub mod uring;
pub mod veth;

pub use error::KernelError;
pub use exposure::{Consumed, Exposure};
pub use external::{
    run_external, run_sender, ExternalOptions, ExternalOutcome, ExternalReport, Sender,
};
pub use probe::{probe, ProbeReport};
pub use receiver::{receive, ReadSchedule, ReaderSpeed, Received, ReceiverOptions};
pub use run::{
    default_geometry, default_geometry_for, run_policy, try_run_policy, Evidence, RunOptions,
    RunReport,
};
pub use sys::{is_root, kernel_release};
pub use transport::Transport;
