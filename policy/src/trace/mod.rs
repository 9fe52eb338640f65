//! Traces: one serialisable record of a run, shared by every backend.
//!
//! A model counterexample, a simulation failure and a recorded kernel run are all a
//! [`Trace`]: the steps in order, each a typed [`Event`] — the application's call and its
//! answer, a kernel event with the segment it moved, the receiver's check with the
//! offsets it found wrong — and, where the backend can know it, who holds each buffer
//! page afterwards. Nothing in a trace is meaning written as words: `zcsafe explain`
//! (the one renderer) writes the words from these types.
//!
//! # Format versions
//!
//! [`TRACE_FORMAT_VERSION`] is written into every trace. Version 1 (zcsafe before the
//! typed steps) kept each step as an actor and two strings; readers convert it on load
//! (`zcsafe_explain::load`) into [`Event::Legacy`] steps, keeping its words and the marks
//! it spelled in them. Version 2 is this module.

mod page;
mod step;

pub use page::{Actor, Holder, Page, PageHolders};
pub use step::{Answer, Completion, Event, Flag, HeldPage, Mismatch, Payload, Step, StreamEnd};

use crate::geometry::Geometry;
use crate::host::HostTransport;
use crate::transport::{RemoteDevice, TransportClass};
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};

/// Bumped whenever the serialised shape changes incompatibly (1: string steps; 2: typed).
pub const TRACE_FORMAT_VERSION: u32 = 2;

/// A run, step by step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// [`TRACE_FORMAT_VERSION`] of the writer.
    pub format: u32,
    /// The catalogue name of the policy that ran, so `replay` can build it again.
    pub policy: String,
    /// What the bytes went over: a transport class or a concrete host transport.
    pub transport: TraceTransport,
    /// The device behind a remote-class model trace (where it reads the pages); left
    /// out of the file for the default NIC, so older traces read unchanged.
    #[serde(default, skip_serializing_if = "RemoteDevice::is_nic")]
    pub device: RemoteDevice,
    /// Which backend ran it.
    pub backend: Backend,
    /// The kernel profile the run assumed or measured.
    pub profile: TraceProfile,
    /// The sizes the policy was built for; a replay must use the same ones.
    pub geometry: Geometry,
    /// In the order they happened; the last one shows the verdict.
    pub steps: Vec<Step>,
    /// What the run ended in, so a replay can say whether it ends the same way.
    pub verdict: Verdict,
    /// One sentence: what went wrong (or right) at the end.
    pub summary: String,
    /// The model scenario a model trace was found in (windows and faults beside the
    /// geometry), so that a replay explores the same one: a policy's derived scenario is
    /// not the standard one. Absent in kernel and simulator traces and in model traces
    /// written before it (their replays use the standard scenario).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<crate::ScenarioSizes>,
}

/// The backends that judge a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The exhaustive model checker: every interleaving, page holders visible.
    Model,
    /// The deterministic simulation: seeded faults and timing, page holders visible.
    Sim,
    /// Real system calls on a real kernel: page holders invisible, bytes checked.
    Kernel,
}

impl Backend {
    /// Every backend, in the order reports list them.
    pub const ALL: [Backend; 3] = [Backend::Model, Backend::Sim, Backend::Kernel];

    /// The name reports and `--on` use (serde writes the same).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Model => "model",
            Backend::Sim => "sim",
            Backend::Kernel => "kernel",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend name other than `model`, `sim` or `kernel`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?}: use model, sim or kernel")]
pub struct UnknownBackend(pub String);

impl std::str::FromStr for Backend {
    type Err = UnknownBackend;

    /// The names [`Backend::name`] prints.
    fn from_str(s: &str) -> Result<Backend, UnknownBackend> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| UnknownBackend(s.to_string()))
    }
}

/// What a run's bytes went over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceTransport {
    /// A transport class: the model and the simulation reason about classes.
    Class(TransportClass),
    /// A concrete transport of a kernel run.
    Host(HostTransport),
}

impl TraceTransport {
    /// The class, which decides who holds the pages last.
    pub fn class(self) -> TransportClass {
        match self {
            TraceTransport::Class(c) => c,
            TraceTransport::Host(h) => h.class(),
        }
    }
}

impl std::fmt::Display for TraceTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TraceTransport::Class(c) => f.write_str(c.name()),
            TraceTransport::Host(h) => f.write_str(&h.label()),
        }
    }
}

/// The kernel profile of a run.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceProfile {
    /// A profile by name: a built-in one ([`Profile::builtin`](crate::Profile::builtin))
    /// or one read from a file.
    Named(String),
    /// Measured on the running kernel (`zcsafe probe`), whose release this is.
    Probed(String),
}

impl std::fmt::Display for TraceProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TraceProfile::Named(n) => f.write_str(n),
            TraceProfile::Probed(release) => write!(f, "probed on {release}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Op, Outcome, Region};

    #[test]
    fn trace_round_trips_through_json() {
        let t = Trace {
            format: TRACE_FORMAT_VERSION,
            policy: "copy".into(),
            transport: TraceTransport::Host(HostTransport::VethLossy { loss_pct: 5 }),
            device: RemoteDevice::Tun,
            backend: Backend::Model,
            profile: TraceProfile::Probed("6.18.0".into()),
            geometry: Geometry {
                page: 1,
                chunk: 1,
                buffer: 1,
                pipe: 1,
                stream: 2,
                zc_id_bits: 2,
            },
            steps: vec![Step {
                at_us: Some(12_000),
                event: Event::Call {
                    op: Op::Fill {
                        buf: Region::new(0, 1),
                        stream: 0,
                    },
                    answer: Answer::Returned(Outcome::Ok),
                    wrote_held: vec![HeldPage {
                        page: Page::Buf(0),
                        by: vec![Holder::WriteQueue],
                    }],
                },
                completions: vec![Completion::Notif { user_data: 3 }],
                holders: vec![PageHolders {
                    page: Page::File(1, 0),
                    content: Some(0),
                    holders: vec![Holder::WriteQueue],
                }],
            }],
            verdict: Verdict::Safe,
            summary: "all bytes arrived".into(),
            scenario: None,
        };
        let json = serde_json::to_string(&t).unwrap();
        let back: Trace = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert_eq!(t.steps[0].flag(), Some(Flag::ReuseWhileHeld));
        assert_eq!(t.steps[0].actor(), Actor::App);
    }

    #[test]
    fn backends_parse_their_names() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>(), Ok(b));
        }
        assert!("vm".parse::<Backend>().is_err());
    }
}
