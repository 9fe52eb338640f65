//! What the literature and the kernel source lead us to expect of a policy.
//!
//! A verdict that contradicts its expectation is news: either the model is wrong or the
//! kernel changed. Expectations are written down before any backend runs, with the reason.

use crate::verdict::Verdict;
use serde::Serialize;

/// An expected verdict and the one-line reason for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Expectation {
    /// The verdict a correct backend should reach; a different one is a contradiction.
    pub verdict: Verdict,
    /// Why (the kernel function or paper behind it), printed beside a contradiction so
    /// the reader can tell whether the expectation or the backend is wrong.
    pub why: &'static str,
}

impl Expectation {
    /// Written down before any backend runs, so a verdict is compared, not accepted.
    #[must_use]
    pub const fn new(verdict: Verdict, why: &'static str) -> Self {
        Expectation { verdict, why }
    }

    /// Shorthand for the catalogue's tables: `safe`, because `why`.
    #[must_use]
    pub const fn safe(why: &'static str) -> Self {
        Self::new(Verdict::Safe, why)
    }

    /// Shorthand for the catalogue's tables: `corrupt`, because `why`.
    #[must_use]
    pub const fn corrupt(why: &'static str) -> Self {
        Self::new(Verdict::Corrupt, why)
    }

    /// Shorthand for the catalogue's tables: the kernel lacks what the policy needs.
    #[must_use]
    pub const fn unsupported(why: &'static str) -> Self {
        Self::new(Verdict::Unsupported, why)
    }
}
