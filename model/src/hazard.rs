//! The scenario setting that would reach a hazard a search never reached.
//!
//! A `safe` over a scenario that never wrapped the counter says nothing about the
//! policy's wrap handling. [`hint`] names the knob (a `zcsafe check` flag where there is
//! one) that opens each hazard, so the verdict's detail can say how to close the gap.

use crate::config::Scenario;
use zcsafe_policy::{Hazard, Hazards, TransportClass};

/// How `scenario` could be changed so that a search reaches `h`.
pub fn hint(h: Hazard, scenario: &Scenario) -> &'static str {
    let cfg = &scenario.config;
    let no_faults = cfg.losses == 0 && cfg.spurious_rto == 0;
    match h {
        Hazard::Reuse | Hazard::ReuseBeforeRead | Hazard::Release | Hazard::ReleaseBeforeRead => {
            "a longer --stream, so that every slot is used again"
        }
        Hazard::ReuseWhileHeld => "a longer --stream or a larger --sndbuf/--rcvbuf",
        Hazard::Retransmission | Hazard::RetransmitAfterReuse if no_faults => {
            "--losses 1 or --spurious-rto 1"
        }
        Hazard::Retransmission | Hazard::RetransmitAfterReuse => {
            "a longer --stream or more --losses/--spurious-rto"
        }
        Hazard::OutOfOrderCompletion => {
            "--spurious-rto 1, a retransmitted clone outliving the original, or --losses 1"
        }
        Hazard::CounterWrap => "a narrower --zc-id-bits or a longer --stream",
        Hazard::Copied if cfg.transport == TransportClass::Remote => {
            "-t local: local delivery copies MSG_ZEROCOPY data"
        }
        Hazard::Copied => "a kernel profile whose local delivery copies zero-copy frags",
        Hazard::Enobufs => "--zc-optmem 1",
    }
}

/// The clause a `safe` verdict's detail ends with ([`Hazards::clause`], hinted for
/// `scenario`).
pub fn clause(hazards: &Hazards, scenario: &Scenario) -> String {
    hazards.clause(|h| hint(h, scenario))
}
