//! `copy`: plain `send()`, buffer reused at once — the baseline.
//!
//! `tcp_sendmsg_locked` copies user bytes into skb pages the kernel owns, so the buffer
//! is free the moment `send` returns. Every other policy is measured against this one.

use crate::script::{scripted_policy, Action, Script};
use crate::{BuildError, Catalogued};
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass};

scripted_policy!(
    Copy,
    Script {
        setup: &[],
        per_chunk: &[Action::Fill, Action::Send { zerocopy: false }],
    }
);

impl Catalogued for Copy {
    const NAME: &'static str = "copy";
    const SUMMARY: &'static str = "plain send(), buffer reused at once (baseline)";
    const ORIGIN: &'static str = "send(2): tcp_sendmsg_locked copies into pages the kernel owns";

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        Ok(Self::scripted(g))
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe("send() copies the bytes before it returns")
    }
}
