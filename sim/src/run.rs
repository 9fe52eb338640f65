//! Running a policy over turmoil: one seed ([`simulate`]) or many ([`run`]).

use crate::faults::Faults;
use crate::rng::Rng;
use crate::scenario::SimScenario;
use crate::wire::Msg;
use crate::world::{End, World};
use rand::SeedableRng;
use serde::Serialize;
use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::time::{Duration, Instant};
use thiserror::Error;
use turmoil::net::UdpSocket;
use zcsafe_model::ScenarioError;
use zcsafe_policies::{BuildError, Entry};
use zcsafe_policy::{
    Abort, Backend, Hazard, Hazards, Pipeline, Policy, Profile, Trace, TraceProfile,
    TraceTransport, TransportClass, Verdict, TRACE_FORMAT_VERSION,
};

const PORT: u16 = 4000;
const TICK: Duration = Duration::from_millis(1);
/// Simulated time after which a run that has not ended counts as stuck.
const LIMIT: Duration = Duration::from_secs(120);

/// Why a simulation could not run.
#[derive(Debug, Error)]
pub enum SimError {
    #[error("invalid scenario: {0}")]
    Scenario(#[from] ScenarioError),
    #[error("cannot build the policy for this scenario: {0}")]
    Build(#[from] BuildError),
    #[error("turmoil: {0}")]
    Turmoil(String),
    /// A run of zero seeds would report `safe` having simulated nothing.
    #[error(
        "no seed to run ({seeds} seed(s) from {first}): ask for at least one (`seeds` 1 or \
         more, with `seed` the first)"
    )]
    NoSeeds { first: u64, seeds: u64 },
}

/// The result of one seed.
#[derive(Clone, Debug)]
pub struct SimRun {
    pub verdict: Verdict,
    pub seed: u64,
    pub faults: Faults,
    /// Simulated time the run took.
    pub sim_time: Duration,
    pub trace: Trace,
    /// The hazards the run reached and opened.
    pub hazards: Hazards,
}

/// Runs `policy` (named `name` in the trace) in `scenario` with `seed`: the same seed
/// gives the same trace, byte for byte.
pub fn simulate<P: Policy>(
    name: &str,
    policy: P,
    scenario: &SimScenario,
    seed: u64,
) -> Result<SimRun, SimError> {
    simulate_with(name, policy, scenario, seed, true)
}

pub(crate) fn simulate_with<P: Policy>(
    name: &str,
    policy: P,
    scenario: &SimScenario,
    seed: u64,
    holders: bool,
) -> Result<SimRun, SimError> {
    scenario.model.validate()?;
    let f = scenario.faults.clone();
    let mut world = World::new(scenario.model.clone(), f.clone(), policy, seed);
    world.holders = holders;
    let world = Rc::new(RefCell::new(world));

    let mut sim = turmoil::Builder::new()
        .simulation_duration(LIMIT)
        .tick_duration(TICK)
        .min_message_latency(f.latency)
        .max_message_latency(f.max_latency())
        .fail_rate(f.loss)
        .repair_rate(1.0)
        .build_with_rng(Box::new(rand::rngs::SmallRng::seed_from_u64(seed)));

    let w = world.clone();
    sim.host("receiver", move || {
        let w = w.clone();
        async move {
            let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, PORT)).await?;
            let mut buf = [0u8; 32];
            loop {
                let now = turmoil::elapsed();
                while let Ok((n, from)) = sock.try_recv_from(&mut buf) {
                    let Some(msg) = Msg::decode(&buf[..n]) else {
                        continue;
                    };
                    let reply = w.borrow_mut().receiver_receive(now, msg);
                    if let Some(r) = reply {
                        let _ = sock.try_send_to(&r.encode(), from);
                    }
                }
                let out = w.borrow_mut().receiver_tick(now);
                for m in out {
                    let _ = sock.try_send_to(&m.encode(), ("sender", PORT));
                }
                tokio::time::sleep(TICK).await;
            }
        }
    });

    let w = world.clone();
    let faults = f.clone();
    sim.client("sender", async move {
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, PORT)).await?;
        let mut buf = [0u8; 32];
        let (mut partitioned, mut held) = (false, false);
        loop {
            let now = turmoil::elapsed();
            let cut = faults.partition.is_some_and(|p| p.contains(now));
            if cut != partitioned {
                partitioned = cut;
                if cut {
                    turmoil::partition("sender", "receiver");
                } else {
                    turmoil::repair("sender", "receiver");
                }
            }
            let hold = faults.hold.is_some_and(|p| p.contains(now));
            if hold != held {
                held = hold;
                if hold {
                    turmoil::hold("sender", "receiver");
                } else {
                    turmoil::release("sender", "receiver");
                }
            }
            while let Ok((n, _)) = sock.try_recv_from(&mut buf) {
                if let Some(msg) = Msg::decode(&buf[..n]) {
                    w.borrow_mut().sender_receive(now, msg);
                }
            }
            let out = w.borrow_mut().sender_tick(now);
            for m in out {
                let _ = sock.try_send_to(&m.encode(), ("receiver", PORT));
            }
            if w.borrow().end.is_some() {
                return Ok(());
            }
            tokio::time::sleep(TICK).await;
        }
    });

    let result = sim.run();
    let sim_time = sim.elapsed();
    drop(sim);
    let world = Rc::try_unwrap(world)
        .map_err(|_| SimError::Turmoil("a host outlived the simulation".into()))?
        .into_inner();
    let end = match (world.end.clone(), result) {
        (Some(end), _) => end,
        (None, Ok(())) => End::Stuck("the run ended without a verdict".into()),
        (None, Err(_)) => End::Stuck(format!(
            "nothing ended the run within {} s of simulated time",
            LIMIT.as_secs()
        )),
    };
    let (verdict, summary) = judge(&end);
    let trace = Trace {
        format: TRACE_FORMAT_VERSION,
        policy: name.to_string(),
        transport: TraceTransport::Class(scenario.transport()),
        device: Default::default(),
        backend: Backend::Sim,
        profile: TraceProfile::Named(scenario.model.config.profile.name.clone()),
        geometry: scenario.model.geometry,
        steps: world.steps,
        verdict,
        summary: format!("{summary} (seed {seed}, faults {f})"),
        scenario: None,
    };
    Ok(SimRun {
        verdict,
        seed,
        faults: f,
        sim_time,
        trace,
        hazards: world.hazards,
    })
}

fn judge(end: &End) -> (Verdict, String) {
    match end {
        End::Complete => (
            Verdict::Safe,
            "the receiver read the whole stream intact".into(),
        ),
        End::Corrupt(c) => (
            Verdict::Corrupt,
            match c.meant_for {
                Some(m) => format!(
                    "the receiver read stream page {} but got the bytes of page {m}: the buffer was reused {} page(s) too early",
                    c.offset,
                    m.saturating_sub(c.offset)
                ),
                None => format!("the receiver read stream page {} but got zeroes", c.offset),
            },
        ),
        End::Stuck(why) => (Verdict::Stuck, why.clone()),
        End::Fault(f) => (Verdict::Error, format!("the policy faulted: {f}")),
        End::Abort(Abort::Unsupported(r)) => (Verdict::Unsupported, format!("unsupported: {r}")),
        End::Abort(Abort::Failed(r)) => (Verdict::Error, format!("the policy gave up: {r}")),
    }
}

/// What [`run`] explores.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub transport: TransportClass,
    pub profile: Profile,
    /// Stream length in pages.
    pub stream: u64,
    /// How many seeds to run, starting at `seed`.
    pub seeds: u64,
    pub seed: u64,
    /// Fixed faults; `None` draws them from each seed ([`Faults::random`]).
    pub faults: Option<Faults>,
    /// The policy's declared pipeline: the scenario's buffer, windows and counter are
    /// derived from it ([`SimScenario::derived`]).
    pub pipeline: Pipeline,
}

impl SimOptions {
    pub fn new(transport: TransportClass) -> SimOptions {
        SimOptions {
            transport,
            profile: Profile::classic(),
            stream: 16,
            seeds: 200,
            seed: 0,
            faults: None,
            pipeline: Pipeline::STANDARD,
        }
    }

    /// The scenario of one seed.
    pub fn scenario(&self, seed: u64) -> SimScenario {
        let faults = self
            .faults
            .clone()
            .unwrap_or_else(|| Faults::random(&mut Rng::new(seed)));
        let mut s = SimScenario::derived(
            &self.pipeline,
            self.transport,
            self.profile.clone(),
            self.stream,
        );
        s.faults = faults;
        s
    }
}

/// The result of many seeds.
#[derive(Clone, Debug, Serialize)]
#[must_use = "a report says what was judged: print it or hand it on"]
pub struct SimReport {
    pub policy: String,
    pub transport: TransportClass,
    /// `safe` when every seed ended with the stream intact; else the first finding.
    pub verdict: Verdict,
    /// The seed of the finding.
    pub seed: Option<u64>,
    /// Seeds run: up to and including a corruption, or all of them.
    pub scenarios: u64,
    /// Faults of the finding's seed, as a `--faults` spec.
    pub faults: Option<String>,
    pub trace: Option<Trace>,
    /// The command that replays the finding.
    pub replay_command: Option<String>,
    #[serde(serialize_with = "ser_ms")]
    pub elapsed: Duration,
    /// Simulated time over all seeds.
    #[serde(serialize_with = "ser_ms")]
    pub sim_time: Duration,
    pub detail: String,
    /// The hazards the seeds reached (each counted once per recorded step), summed over
    /// the seeds that ran.
    pub hazards: Hazards,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Runs `policy` for `opts.seeds` seeds. Stops at the first corruption (or when the
/// kernel lacks a feature); a seed that errs or gets stuck is remembered while the
/// remaining seeds look for corruption, the strongest finding.
///
/// Zero seeds is an error, not `safe`: a verdict needs at least one completed run. There
/// is no seed past `u64::MAX`, and `scenarios` counts the seeds that ran.
pub fn run<P: Policy>(name: &str, policy: &P, opts: &SimOptions) -> Result<SimReport, SimError> {
    let none = SimError::NoSeeds {
        first: opts.seed,
        seeds: opts.seeds,
    };
    if opts.seeds == 0 {
        return Err(none);
    }
    let start = Instant::now();
    let mut sim_time = Duration::ZERO;
    let mut finding: Option<u64> = None;
    let mut ran: u64 = 0;
    let mut hazards = Hazards::default();
    let seeds = (0..opts.seeds).map_while(|i| opts.seed.checked_add(i));
    for seed in seeds {
        ran += 1;
        let scenario = opts.scenario(seed);
        let r = simulate_with(name, policy.clone(), &scenario, seed, false)?;
        sim_time += r.sim_time;
        hazards.merge(&r.hazards);
        match r.verdict {
            // The simulator sees every page: it never lacks evidence.
            Verdict::Safe | Verdict::Inconclusive => {}
            Verdict::Corrupt | Verdict::Unsupported => {
                finding = Some(seed);
                break;
            }
            Verdict::Stuck | Verdict::Error => {
                finding.get_or_insert(seed);
            }
        }
    }
    if ran == 0 {
        return Err(none);
    }
    let hazards = hazards.with_hints(hint);
    let Some(seed) = finding else {
        return Ok(SimReport {
            policy: name.into(),
            transport: opts.transport,
            verdict: Verdict::Safe,
            seed: None,
            scenarios: ran,
            faults: opts.faults.as_ref().map(|f| f.to_string()),
            trace: None,
            replay_command: None,
            elapsed: start.elapsed(),
            sim_time,
            detail: format!(
                "{ran} seeds from {}: the receiver read the whole stream intact every time; {}",
                opts.seed,
                hazards.clause()
            ),
            hazards,
        });
    };
    // Replay the finding with page holders recorded, for the timeline.
    let full = simulate(name, policy.clone(), &opts.scenario(seed), seed)?;
    let replay = replay_command(name, opts, seed);
    Ok(SimReport {
        policy: name.into(),
        transport: opts.transport,
        verdict: full.verdict,
        seed: Some(seed),
        scenarios: ran,
        faults: Some(full.faults.to_string()),
        detail: format!("{} — replay: {replay}", full.trace.summary),
        trace: Some(full.trace),
        replay_command: Some(replay),
        elapsed: start.elapsed(),
        sim_time,
        hazards,
    })
}

/// What would make the simulator reach a hazard its seeds never reached.
fn hint(h: Hazard) -> &'static str {
    match h {
        Hazard::Retransmission | Hazard::RetransmitAfterReuse | Hazard::OutOfOrderCompletion => {
            "try more --seeds, or --faults with loss or a hold"
        }
        Hazard::CounterWrap => "try a longer --stream",
        Hazard::Copied => "try -t local: local delivery copies MSG_ZEROCOPY data",
        Hazard::Enobufs => "try `zcsafe check --zc-optmem 1`",
        Hazard::CancelAfterQueued => {
            "the simulated kernel fires no linked timeout: `zcsafe fixtures --check` runs it in the model"
        }
        _ => "try more --seeds or a longer --stream",
    }
}

/// Why the simulator answers `unsupported` for a UDP policy: its network
/// (`crate::wire`) carries TCP segments, ACKs and retransmission timers, and its faults
/// are losses and delays — a UDP world has no ACK to delay and, in the model's UDP
/// scenarios, no loss, so what is left are the kernel model's own interleavings, which
/// `zcsafe check` already exhausts.
pub const UDP_UNSUPPORTED: &str = "the simulator's network is TCP's (segments, ACKs, \
     retransmission timers); a UDP world without loss is the model's own interleavings: \
     judge UDP policies with zcsafe check";

/// [`run`] for a catalogue entry, built for the simulated geometry; `unsupported` for a
/// UDP entry ([`UDP_UNSUPPORTED`]).
pub fn run_entry(entry: &Entry, opts: &SimOptions) -> Result<SimReport, SimError> {
    if entry.pipeline.socket == zcsafe_policy::SocketKind::Udp {
        return Ok(SimReport {
            policy: entry.name.to_string(),
            transport: opts.transport,
            verdict: Verdict::Unsupported,
            seed: None,
            scenarios: 0,
            faults: None,
            trace: None,
            replay_command: None,
            elapsed: Duration::ZERO,
            sim_time: Duration::ZERO,
            detail: UDP_UNSUPPORTED.to_string(),
            hazards: Hazards::default(),
        });
    }
    let opts = &SimOptions {
        pipeline: entry.pipeline,
        ..opts.clone()
    };
    let geometry = opts.scenario(opts.seed).model.geometry;
    let policy = entry.build(&geometry)?;
    run(entry.name, &policy, opts)
}

/// `zcsafe sim …` that replays one seed.
pub fn replay_command(name: &str, opts: &SimOptions, seed: u64) -> String {
    let mut cmd = format!(
        "{} sim --policy {name} --transport {} --seed {seed}",
        zcsafe_policies::registry::program(),
        opts.transport
    );
    if let Some(f) = &opts.faults {
        cmd.push_str(&format!(" --faults '{f}'"));
    }
    if opts.stream != 16 {
        cmd.push_str(&format!(" --stream {}", opts.stream));
    }
    cmd
}
