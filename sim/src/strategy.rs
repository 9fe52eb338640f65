//! proptest strategies for whole simulated scenarios.
//!
//! A case is a [`SimCase`]: sizes (chunk, buffer slots, pipe, send buffer, congestion
//! and receive windows, stream length, zero-copy counter width), faults (latency,
//! jitter, loss, reordering, reader pace, device delay, RTO) and the seed of the run.
//! Shrinking moves every number towards the smallest, calmest world, so a failure
//! shrinks to a short trace a person can read.

use crate::faults::Faults;
use crate::run::{simulate, SimError, SimRun};
use crate::scenario::SimScenario;
use proptest::prelude::*;
use std::time::Duration;
use zcsafe_model::Scenario;
use zcsafe_policies::Entry;
use zcsafe_policy::{Profile, TransportClass};

/// One generated scenario and its seed.
#[derive(Clone, Debug)]
pub struct SimCase {
    pub scenario: SimScenario,
    pub seed: u64,
}

impl SimCase {
    /// Runs `entry` in this case; `Ok(None)` when the policy cannot be built for the
    /// generated sizes (the case is then not meaningful) or sends on UDP, which the
    /// simulator's TCP network cannot carry ([`crate::run::UDP_UNSUPPORTED`]).
    pub fn run(&self, entry: &Entry) -> Result<Option<SimRun>, SimError> {
        if entry.pipeline.socket != zcsafe_policy::SocketKind::Tcp {
            return Ok(None);
        }
        let Ok(policy) = entry.build(&self.scenario.model.geometry) else {
            return Ok(None);
        };
        if self.scenario.model.validate().is_err() {
            return Ok(None);
        }
        simulate(entry.name, policy, &self.scenario, self.seed).map(Some)
    }
}

fn ms(max: u64) -> impl Strategy<Value = Duration> {
    (0..=max).prop_map(Duration::from_millis)
}

/// Faults, from calm (all zero) to harsh.
pub fn faults() -> impl Strategy<Value = Faults> {
    (
        ms(4),
        ms(10),
        (0u32..=30).prop_map(|p| p as f64 / 100.0),
        (0u32..=30).prop_map(|p| p as f64 / 100.0),
        ms(20),
        ms(10),
        proptest::option::of((2u64..=30).prop_map(Duration::from_millis)),
    )
        .prop_map(
            |(latency, jitter, loss, reorder, slow_reader, device, rto)| Faults {
                latency,
                jitter,
                loss,
                reorder,
                partition: None,
                hold: None,
                slow_reader,
                device,
                rto,
                drop: None,
            },
        )
}

/// Whole scenarios for one transport and profile.
pub fn sim_case(transport: TransportClass, profile: Profile) -> impl Strategy<Value = SimCase> {
    (
        1u64..=2,  // chunk
        1u64..=3,  // buffer slots
        1u64..=2,  // pipe (chunks)
        0u64..=3,  // sndbuf beyond one chunk
        1u64..=3,  // cwnd
        1u64..=3,  // rcvbuf
        2u64..=12, // stream (chunks)
        1u8..=3,   // zc_id_bits
        faults(),
        any::<u64>(),
    )
        .prop_map(
            move |(chunk, slots, pipe, extra, cwnd, rcvbuf, chunks, bits, faults, seed)| {
                let mut m = Scenario::standard(transport, profile.clone());
                m.geometry.chunk = chunk;
                m.geometry.buffer = chunk * slots;
                m.geometry.pipe = chunk * pipe;
                m.geometry.stream = chunk * chunks;
                m.geometry.zc_id_bits = bits;
                m.config.sndbuf = chunk + extra;
                m.config.cwnd = cwnd;
                m.config.rcvbuf = rcvbuf;
                SimCase {
                    scenario: SimScenario::from_model(m, faults),
                    seed,
                }
            },
        )
}
