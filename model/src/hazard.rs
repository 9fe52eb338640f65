//! The scenario setting that would reach a hazard a search never reached.
//!
//! A `safe` over a scenario that never wrapped the counter says nothing about the
//! policy's wrap handling. [`hint`] names the knob (a `zcsafe check` flag where there is
//! one) that opens each hazard, so the verdict's detail can say how to close the gap.

use crate::config::Scenario;
use zcsafe_policy::{Hazard, TransportClass};

/// How `scenario` could be changed so that a search reaches `h`.
pub fn hint(h: Hazard, scenario: &Scenario) -> &'static str {
    let cfg = &scenario.config;
    let no_faults = cfg.losses == 0 && cfg.spurious_rto == 0;
    match h {
        Hazard::Reuse | Hazard::ReuseBeforeRead | Hazard::Release | Hazard::ReleaseBeforeRead => {
            "try a longer --stream, so that every slot is used again"
        }
        Hazard::ReuseWhileHeld => "try a longer --stream or a larger --sndbuf/--rcvbuf",
        Hazard::Retransmission | Hazard::RetransmitAfterReuse if no_faults => {
            "try --losses 1 or --spurious-rto 1"
        }
        Hazard::Retransmission | Hazard::RetransmitAfterReuse => {
            "try a longer --stream or more --losses/--spurious-rto"
        }
        Hazard::OutOfOrderCompletion if no_faults => {
            "try --spurious-rto 1, a retransmitted clone outliving the original, or --losses 1"
        }
        Hazard::OutOfOrderCompletion if cfg.zc_optmem < 2 => {
            "try --zc-optmem 2: two notifications must be pending at once"
        }
        Hazard::OutOfOrderCompletion => "try a larger --sndbuf and --cwnd, or a longer --stream",
        Hazard::CounterWrap => "try a narrower --zc-id-bits or a longer --stream",
        Hazard::Copied if cfg.transport == TransportClass::Remote => {
            "try -t local or --device tun: local delivery and a TUN device copy MSG_ZEROCOPY data"
        }
        Hazard::Copied => "try a kernel profile whose local delivery copies zero-copy frags",
        Hazard::Enobufs => "try --zc-optmem 1",
        Hazard::CancelAfterQueued => {
            "try requests of several pages and a send buffer one page short of two (the liburing-643 fixture's tuning)"
        }
    }
}
