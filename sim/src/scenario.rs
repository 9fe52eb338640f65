//! One simulated world: the model's scenario (sizes, profile, transport) and the faults.

use crate::faults::Faults;
use serde::{Deserialize, Serialize};
use zcsafe_model::Scenario;
use zcsafe_policy::{Pipeline, Profile, TransportClass};

/// A scenario for the simulator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimScenario {
    /// Sizes and kernel switches, exactly as the checker takes them. The loss and
    /// spurious-RTO budgets are ignored: the simulated network and timers decide.
    pub model: Scenario,
    pub faults: Faults,
}

impl SimScenario {
    /// The checker's standard scenario with a longer stream (16 pages): a run is cheap
    /// and the network, not a bound, limits what happens.
    pub fn standard(transport: TransportClass, profile: Profile) -> SimScenario {
        SimScenario::from_model(Scenario::standard(transport, profile), Faults::default())
            .with_stream(16)
    }

    /// The checker's scenario derived from a policy's declared pipeline
    /// ([`Scenario::derived`]) with a stream of at least `pages`: a 4-slot ring gets its
    /// four slots and the windows to fill them. For [`Pipeline::STANDARD`] (every
    /// built-in policy) it is [`SimScenario::standard`] exactly.
    pub fn derived(
        pipeline: &Pipeline,
        transport: TransportClass,
        profile: Profile,
        pages: u64,
    ) -> SimScenario {
        let model = Scenario::derived(pipeline, transport, profile);
        let pages = pages.max(model.geometry.stream);
        SimScenario::from_model(model, Faults::default()).with_stream(pages)
    }

    /// Wraps a checker scenario, lifting its fault budgets.
    pub fn from_model(mut model: Scenario, faults: Faults) -> SimScenario {
        model.config.losses = u8::MAX;
        model.config.spurious_rto = u8::MAX;
        SimScenario { model, faults }
    }

    /// The same world with a stream of `pages` (rounded down to whole chunks).
    pub fn with_stream(mut self, pages: u64) -> SimScenario {
        let chunk = self.model.geometry.chunk;
        self.model.geometry.stream = (pages / chunk).max(1) * chunk;
        self
    }

    pub fn transport(&self) -> TransportClass {
        self.model.config.transport
    }
}
