//! The cost of every buffer-reuse policy against plain `send()`, measured on the running
//! kernel with the same sans-IO policies the model checks (`zcsafe bench`).
//!
//! For each transport and chunk size the bench runs *rounds*; in every round each
//! policy sends one stream, `copy` first. Ratios to `copy` are taken inside a round (the
//! same minutes, the same machine load) and their median over the measured rounds is
//! reported; the first `warmup` rounds are discarded (and size the streams: each stream
//! is sized to take about `target_run` at the speed the warm-up measured). Absolute
//! numbers are medians too, with their spread, but only ratios are comparable between
//! runs of the bench.
//!
//! The receiver is zcsafe's verifying receiver reading as fast as it can (256 KiB reads,
//! every word checked). Policies pipeline over `slots` chunk-sized buffer slots.
//!
//! The crate's modules are its nouns: the options ([`BenchOptions`]), the rounds
//! ([`run`], one [`measure`]d stream each), the statistics ([`Stat`],
//! [`in_round_ratio`]), the report ([`BenchReport`]) and its [`render`]ing. This file
//! only re-exports them, so every public path stays `zcsafe_bench::…`.

mod error;
pub mod measure;
mod options;
pub mod render;
mod report;
mod rounds;
mod stats;

pub use error::BenchError;
pub use options::{
    parse_size, parse_sizes, sndbuf_ceiling, BenchOptions, BASELINE, DEFAULT_CHUNKS,
    DEFAULT_POLICIES,
};
pub use report::{BenchReport, BenchResult};
pub use rounds::{geometry, run};
pub use stats::{in_round_ratio, Stat};
