//! Explaining a trace to a person: who holds each buffer page, step by step.
//!
//! Every backend (the model checker, the simulator, the real kernel) records a run as one
//! [`Trace`]. This crate turns any of them into an annotated timeline:
//!
//! - [`load`] reads a trace file — a bare trace, a `Results` JSON (`zcsafe check --json`,
//!   `zcsafe run --json`) with a selection, a single finding or a kernel run report — and
//!   says exactly what is wrong with a file that is none of these;
//! - [`lanes`] maps every step onto the lanes of a sequence diagram (application, pipe,
//!   write queue, wire/device, peer) and onto one lane per buffer page, and writes the
//!   plain sentence that says who still holds each page and why;
//! - [`text`] renders that for a terminal, [`svg`] as a sequence diagram for documents.
//!
//! Rendering is deterministic (no clocks, no hash-map order), so rendered figures can be
//! committed and checked for staleness.
//!
//! [`Trace`]: zcsafe_policy::Trace

#![forbid(unsafe_code)]

pub mod lanes;
pub mod load;
pub mod meaning;
pub mod svg;
pub mod text;

pub use lanes::{Arrow, Lane, Timeline};
pub use load::{load, parse, LoadError, Selection};
