//! What the literature and the kernel source lead us to expect of a policy.
//!
//! A verdict that contradicts its expectation is news: either the model is wrong or the
//! kernel changed. Expectations are written down before any backend runs, with the reason.

use crate::verdict::Verdict;
use serde::Serialize;

/// An expected verdict and the one-line reason for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Expectation {
    pub verdict: Verdict,
    pub why: &'static str,
}

impl Expectation {
    pub const fn new(verdict: Verdict, why: &'static str) -> Self {
        Expectation { verdict, why }
    }

    pub const fn safe(why: &'static str) -> Self {
        Self::new(Verdict::Safe, why)
    }

    pub const fn corrupt(why: &'static str) -> Self {
        Self::new(Verdict::Corrupt, why)
    }

    pub const fn unsupported(why: &'static str) -> Self {
        Self::new(Verdict::Unsupported, why)
    }
}
