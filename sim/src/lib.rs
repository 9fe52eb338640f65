//! Deterministic simulation of zero-copy senders.
//!
//! The exhaustive checker (`zcsafe-model`) explores every order of a tiny bounded world.
//! This crate runs the same policy code and the same kernel rules in bigger, messier
//! worlds, three ways:
//!
//! - **turmoil** ([`run`](mod@run), [`simulate`]): two simulated hosts, the sender (policy and
//!   sender-side kernel) and the receiver (peer TCP and the reading application).
//!   Segments and ACKs are turmoil datagrams, so latency, jitter, loss, hold/release and
//!   partitions apply ([`Faults`]); timers run in turmoil time. A run is a pure
//!   function of its seed: the same seed gives the byte-identical [`Trace`].
//! - **proptest** ([`strategy`]): whole scenarios — chunk, pipe, send buffer, window,
//!   faults, reader pace, stream length — generated and shrunk to a small reproducer.
//! - **loom** (feature `loom`, `interleave` and `pool`): the policy and the kernel's
//!   asynchronous agents as threads over one `Mutex<Kernel>`, and a zero-copy buffer
//!   pool written with atomics, explored interleaving by interleaving.
//!
//! Kernel rules come only from `zcsafe_model` (through `zcsafe_model::split`); nothing
//! here decides what a segment, an ACK or a page reference does.
//!
//! [`Trace`]: zcsafe_policy::Trace

// Unsafe only where loom needs it: the pool model reads and writes its UnsafeCell.
#![deny(unsafe_code)]

pub mod bench;
pub mod faults;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod strategy;
mod wire;
mod world;

#[cfg(feature = "loom")]
pub mod interleave;
#[cfg(feature = "loom")]
#[allow(unsafe_code)]
pub mod pool;

pub use faults::{Faults, FaultsError, Window};
pub use run::{replay_command, run, run_entry, simulate, SimError, SimOptions, SimReport, SimRun};
pub use scenario::SimScenario;
