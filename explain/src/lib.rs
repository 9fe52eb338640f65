//! Explaining a trace to a person: who holds each buffer page, step by step.
//!
//! Every backend (the model checker, the simulator, the real kernel) records a run as one
//! [`Trace`] of typed steps. This crate is the one place that turns them into words and
//! pictures, and every command that shows a trace (`check`, `sim`, `run`, `replay`,
//! `explain`) goes through it:
//!
//! - [`load`](mod@load) reads a trace file — a bare trace, a `Results` JSON (`zcsafe check --json`,
//!   `zcsafe run --json`) with a selection, a single finding or a kernel run report —
//!   converts a version-1 trace on the way, and says exactly what is wrong with a file
//!   that is none of these;
//! - [`words`] writes what each step did and why it matters; [`lanes`] places it on the
//!   lanes of a sequence diagram; [`sentence`] says who still holds each page and why
//!   (or, on a kernel, what the call's answer means, from [`meaning`]);
//! - [`timeline`] lays all that out, and [`text`] renders it for a terminal, [`svg`] as a
//!   sequence diagram for documents.
//!
//! Rendering is deterministic (no clocks, no hash-map order), so rendered figures can be
//! committed and checked for staleness.
//!
//! [`Trace`]: zcsafe_policy::Trace

#![forbid(unsafe_code)]

pub mod lanes;
pub mod load;
pub mod meaning;
pub mod sentence;
pub mod svg;
pub mod text;
pub mod timeline;
pub mod words;

pub use lanes::{Arrow, Lane};
pub use load::{load, parse, LoadError, Selection};
pub use timeline::{Row, Timeline};
