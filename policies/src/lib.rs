//! The catalogue: one sans-IO implementation of every buffer-reuse policy zcsafe judges.
//!
//! Each module is one policy, readable top to bottom: where the scheme comes from, what it
//! assumes, and the state machine. Pieces several policies share (send a region until it
//! is all queued, vmsplice + splice a chunk, wait for `SIOCOUTQ`, the `MSG_ZEROCOPY`
//! ledger, what holds an io_uring `SEND_ZC` buffer slot) live in [`steps`],
//! [`ledger`] and [`uring`] under their own names.
//!
//! Every policy declares what the literature and the kernel source lead us to expect per
//! transport class and kernel profile ([`Catalogued::expect`]); a backend's verdict that
//! contradicts it is news.

#![forbid(unsafe_code)]

pub mod bugs;
/// `impl Policy` for newtypes that hand every call to the policy inside them: the bug
/// reproducers pair a buggy and a fixed variant of one machine this way, and every
/// scripted policy wraps a [`script::Scripted`]. The one delegating impl in the crate.
#[macro_export]
#[doc(hidden)]
macro_rules! delegate_policy {
    ($($ty:ty),+ $(,)?) => {
        $(impl zcsafe_policy::Policy for $ty {
            fn poll_op(&self) -> zcsafe_policy::Op {
                zcsafe_policy::Policy::poll_op(&self.0)
            }
            fn handle(&mut self, outcome: zcsafe_policy::Outcome) {
                zcsafe_policy::Policy::handle(&mut self.0, outcome)
            }
        })+
    };
}

pub mod ledger;
pub mod registry;
pub mod script;
pub mod steps;
pub mod uring;
pub(crate) mod uring_zc_link_timeout;

pub mod app_ack;
pub mod copy;
pub mod sendfile_rewrite;
pub mod sendfile_rotate;
pub mod siocoutq_drain;
pub mod siocoutq_seq;
pub mod udp_zc_completion;
pub mod udp_zc_naive;
pub mod uring_sendmsg_zc;
pub mod uring_zc_naive;
pub mod uring_zc_notif;
pub mod uring_zc_report_usage;
pub mod vmsplice_double_buffer;
pub mod vmsplice_gift_fresh;
pub mod vmsplice_gift_reuse;
pub mod zc_completion;
pub mod zc_inorder_tracker;
pub mod zc_naive;

use thiserror::Error;
use zcsafe_policy::{
    AnyPolicy, Expectation, Geometry, GeometryError, Pipeline, Policy, Profile, ReceiveWindow,
    RemoteDevice, TransportClass,
};

/// A kernel feature a policy cannot run without. The catalogue answers "this kernel lacks
/// it" for every policy that [needs](Catalogued::NEEDS) it, with one sentence per feature,
/// so each policy's [`expect`](Catalogued::expect) only speaks of kernels that have it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Feature {
    /// `SO_ZEROCOPY` / `MSG_ZEROCOPY` for TCP ([`Profile::msg_zerocopy`]).
    MsgZerocopy,
    /// io_uring `IORING_OP_SEND_ZC` ([`Profile::uring_send_zc`]).
    UringSendZc,
}

impl Feature {
    /// Whether a kernel of `profile` has the feature.
    pub fn present(self, profile: &Profile) -> bool {
        match self {
            Feature::MsgZerocopy => profile.msg_zerocopy,
            Feature::UringSendZc => profile.uring_send_zc,
        }
    }

    /// The expectation of a policy that needs the feature on a kernel without it.
    pub fn missing(self) -> Expectation {
        Expectation::unsupported(match self {
            Feature::MsgZerocopy => "this kernel has no MSG_ZEROCOPY for TCP",
            Feature::UringSendZc => "this kernel has no io_uring SEND_ZC",
        })
    }
}

/// How a policy uses its buffer and pipe: what a backend that chooses the sizes itself
/// (the bench, at every chunk size) must give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Any whole number of chunk-sized slots; a pipe, if the policy uses one, only has to
    /// hold a chunk.
    Slots,
    /// A buffer of exactly two chunks and a pipe of exactly one (the LWN double buffer,
    /// whose reasoning is "the pipe holds one half").
    PipeHalves,
    /// Exactly the slots its [`Catalogued::PIPELINE`] declares: a fixed ring, whose
    /// reuse rule is written for that many slots. The bench gives it those, not its own
    /// `--slots`.
    Declared,
}

impl Layout {
    /// Whether `g` gives a policy that declares `pipeline` what this layout needs; `Err`
    /// says what is missing, in slots (a geometry counts bytes on a kernel and pages in
    /// the model, so a size alone would not say which).
    pub fn check(self, pipeline: &Pipeline, g: &Geometry) -> Result<(), String> {
        match self {
            Layout::Slots => Ok(()),
            Layout::Declared if g.slots() == pipeline.slots => Ok(()),
            Layout::Declared => Err(format!(
                "exactly {} buffer slots of one chunk each (got {})",
                pipeline.slots,
                g.slots()
            )),
            Layout::PipeHalves if g.chunk == g.pipe && g.buffer == 2 * g.chunk => Ok(()),
            Layout::PipeHalves => Err(format!(
                "chunk = pipe capacity and buffer = 2 x pipe (got chunk {}, pipe {}, buffer {})",
                g.chunk, g.pipe, g.buffer
            )),
        }
    }
}

/// A policy that belongs to the catalogue: it has a fixed name, a provenance and an
/// expectation. Implement it for your own policy and [register](registry::register) its
/// [`Entry::of`] (a binary built on `zcsafe_cli::main_with` does) to judge it with every
/// command beside the built-in ones.
pub trait Catalogued: Policy + Sized {
    /// The fixed name the CLI and reports use.
    const NAME: &'static str;
    /// One line: what the sender does.
    const SUMMARY: &'static str;
    /// Where the scheme comes from.
    const ORIGIN: &'static str;
    /// Kernel features the policy cannot run without. On a kernel that lacks one the
    /// catalogue expects `unsupported` ([`Feature::missing`]) without asking the policy.
    const NEEDS: &'static [Feature] = &[];
    /// The unsafe scheme this policy fixes (a catalogue name), for side-by-side costs.
    const TWIN: Option<&'static str> = None;
    /// The buffer and pipe the policy needs.
    const LAYOUT: Layout = Layout::Slots;
    /// The receiver must write back how many bytes its application consumed
    /// ([`Op::WaitAppAck`](zcsafe_policy::Op::WaitAppAck)).
    const NEEDS_APP_ACK: bool = false;
    /// The receive window under which a kernel run exposes the policy's failure (or,
    /// for a safe policy, the hazard it claims to handle).
    const WINDOW: ReceiveWindow = ReceiveWindow::Wide;
    /// The send pipeline the policy runs: slots, chunk and sends outstanding. The model
    /// checker derives the scenario that exercises it from this (`Scenario::derived`:
    /// windows that let the pipeline fill, every slot reused twice, a wrapping counter),
    /// so declare what the policy really keeps in flight.
    const PIPELINE: Pipeline = Pipeline::STANDARD;

    /// Builds the policy for a geometry, or says why it cannot work with it.
    fn new(geometry: &Geometry) -> Result<Self, BuildError>;

    /// What the literature and the kernel source lead us to expect, on a kernel that has
    /// every feature the policy [needs](Catalogued::NEEDS).
    fn expect(transport: TransportClass, profile: &Profile) -> Expectation;

    /// The expectation for a run of this geometry. Differs from [`Catalogued::expect`]
    /// only for policies whose failure needs a long enough run (a counter that must
    /// wrap, say).
    fn expect_for(
        transport: TransportClass,
        profile: &Profile,
        geometry: &Geometry,
    ) -> Expectation {
        let _ = geometry;
        Self::expect(transport, profile)
    }

    /// The expectation behind `device`, for the remote class (`zcsafe run -t tun`,
    /// `check --device tun`). The NIC's ([`Catalogued::expect_for`]) unless the verdict
    /// hinges on where the device reads the pages: a TUN device copies zero-copy frags
    /// when it queues a segment (`tun_net_xmit`), so its completions say COPIED.
    fn expect_behind(
        device: RemoteDevice,
        transport: TransportClass,
        profile: &Profile,
        geometry: &Geometry,
    ) -> Expectation {
        let _ = device;
        Self::expect_for(transport, profile, geometry)
    }
}

/// A geometry a policy cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BuildError {
    #[error(transparent)]
    Geometry(#[from] GeometryError),
    #[error("{policy} needs {need}")]
    Needs { policy: &'static str, need: String },
}

/// A catalogue entry: the policy's description, what it needs, and its type-erased
/// constructor. Backends read the facts here instead of keeping per-name special cases.
#[derive(Clone, Copy)]
pub struct Entry {
    pub name: &'static str,
    pub summary: &'static str,
    pub origin: &'static str,
    /// [`Catalogued::NEEDS`].
    pub needs: &'static [Feature],
    /// [`Catalogued::TWIN`].
    pub twin: Option<&'static str>,
    /// [`Catalogued::LAYOUT`].
    pub layout: Layout,
    /// [`Catalogued::NEEDS_APP_ACK`].
    pub needs_app_ack: bool,
    /// [`Catalogued::WINDOW`].
    pub window: ReceiveWindow,
    /// [`Catalogued::PIPELINE`].
    pub pipeline: Pipeline,
    build: fn(&Geometry) -> Result<AnyPolicy, BuildError>,
    expect: fn(RemoteDevice, TransportClass, &Profile, &Geometry) -> Expectation,
}

impl Entry {
    /// The entry of a [`Catalogued`] policy type.
    pub fn of<P: Catalogued>() -> Entry {
        Entry {
            name: P::NAME,
            summary: P::SUMMARY,
            origin: P::ORIGIN,
            needs: P::NEEDS,
            twin: P::TWIN,
            layout: P::LAYOUT,
            needs_app_ack: P::NEEDS_APP_ACK,
            window: P::WINDOW,
            pipeline: P::PIPELINE,
            build: |g| {
                g.validate()?;
                P::new(g).map(AnyPolicy::new)
            },
            expect: P::expect_behind,
        }
    }

    pub fn build(&self, geometry: &Geometry) -> Result<AnyPolicy, BuildError> {
        (self.build)(geometry)
    }

    /// The first feature the policy needs that a kernel of `profile` lacks.
    pub fn missing(&self, profile: &Profile) -> Option<Feature> {
        self.needs.iter().copied().find(|f| !f.present(profile))
    }

    /// The expectation for the model's standard geometry ([`Geometry::model_standard`],
    /// long enough for every known failure to show).
    pub fn expect(&self, transport: TransportClass, profile: &Profile) -> Expectation {
        self.expect_for(transport, profile, &Geometry::model_standard())
    }

    /// The expectation for a run of `geometry` (the remote class behind a NIC).
    pub fn expect_for(
        &self,
        transport: TransportClass,
        profile: &Profile,
        geometry: &Geometry,
    ) -> Expectation {
        self.expect_behind(RemoteDevice::Nic, transport, profile, geometry)
    }

    /// The expectation for a run of `geometry` with the remote class behind `device`
    /// ([`Catalogued::expect_behind`]).
    pub fn expect_behind(
        &self,
        device: RemoteDevice,
        transport: TransportClass,
        profile: &Profile,
        geometry: &Geometry,
    ) -> Expectation {
        match self.missing(profile) {
            Some(feature) => feature.missing(),
            None => (self.expect)(device, transport, profile, geometry),
        }
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("name", &self.name).finish()
    }
}

/// Every policy this process knows: the built-in ones, in the order reports list them,
/// then those a binary [registered](registry::register) from outside.
pub fn catalogue() -> Vec<Entry> {
    let mut all = builtin();
    all.extend_from_slice(registry::registered());
    all
}

/// The built-in policies, in the order reports list them.
pub fn builtin() -> Vec<Entry> {
    vec![
        Entry::of::<copy::Copy>(),
        Entry::of::<vmsplice_double_buffer::VmspliceDoubleBuffer>(),
        Entry::of::<vmsplice_gift_reuse::VmspliceGiftReuse>(),
        Entry::of::<vmsplice_gift_fresh::VmspliceGiftFresh>(),
        Entry::of::<siocoutq_drain::SiocoutqDrain>(),
        Entry::of::<siocoutq_seq::SiocoutqSeq>(),
        Entry::of::<app_ack::AppAck>(),
        Entry::of::<zc_naive::ZcNaive>(),
        Entry::of::<zc_completion::ZcCompletion>(),
        Entry::of::<zc_inorder_tracker::ZcInorderTracker>(),
        Entry::of::<uring_zc_naive::UringZcNaive>(),
        Entry::of::<uring_zc_notif::UringZcNotif>(),
        Entry::of::<uring_zc_report_usage::UringZcReportUsage>(),
        Entry::of::<uring_sendmsg_zc::UringSendmsgZc>(),
        Entry::of::<udp_zc_naive::UdpZcNaive>(),
        Entry::of::<udp_zc_completion::UdpZcCompletion>(),
        Entry::of::<sendfile_rewrite::SendfileRewrite>(),
        Entry::of::<sendfile_rotate::SendfileRotate>(),
    ]
}

/// Reproducers of bugs public projects shipped, each a buggy policy and its fix. A
/// second list: the catalogue's names are fixed, these are not part of it.
pub fn bugs() -> Vec<bugs::Bug> {
    bugs::all()
}

/// The entry named `name`.
pub fn find(name: &str) -> Option<Entry> {
    catalogue().into_iter().find(|e| e.name == name)
}

/// The entry every backend can judge by name: a catalogue policy, or a bug reproducer
/// that runs in the standard scenario. One that needs its [`bugs::Tuning`] (a narrow
/// counter, a cancelled request) is left out: only the model applies that.
pub fn find_runnable(name: &str) -> Option<Entry> {
    find(name).or_else(|| {
        bugs::find(name)
            .filter(|(bug, _)| bug.tuning == bugs::Tuning::default())
            .map(|(_, e)| e)
    })
}

/// Expectation shared by the policies that reuse a buffer once `SIOCOUTQ` says the peer
/// acknowledged it: right for a remote peer, wrong for local delivery.
pub(crate) fn expect_after_ack(aliases: bool, transport: TransportClass) -> Expectation {
    match (aliases, transport) {
        (false, _) => {
            Expectation::safe("the kernel copies, so the buffer is free when the call returns")
        }
        (true, TransportClass::Local) => Expectation::corrupt(
            "an ACK means the peer socket queued the skb, which still references the page \
             until the receiving application reads it",
        ),
        (true, TransportClass::Remote) => Expectation::safe(
            "an ACK means the NIC has read the page and the peer holds its own copy",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_kebab_case() {
        let cat = builtin();
        assert_eq!(cat.len(), 18);
        let mut names: Vec<_> = cat.iter().map(|e| e.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 18);
        assert!(names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '-')));
        assert!(find("zc-completion").is_some());
        assert!(find("nope").is_none());
    }

    #[test]
    fn twins_are_catalogued_unsafe_schemes() {
        let classic = Profile::classic();
        for e in catalogue() {
            let Some(twin) = e.twin else { continue };
            let t = find(twin).unwrap_or_else(|| panic!("{}'s twin {twin} is catalogued", e.name));
            assert!(
                t.twin.is_none(),
                "{twin} is the naive scheme, it fixes nothing"
            );
            assert!(
                TransportClass::ALL
                    .iter()
                    .any(|&c| t.expect(c, &classic).verdict == zcsafe_policy::Verdict::Corrupt),
                "{twin}, the scheme {} fixes, is expected safe everywhere",
                e.name
            );
        }
    }

    #[test]
    fn a_kernel_without_a_needed_feature_is_expected_unsupported() {
        let none = Profile {
            msg_zerocopy: false,
            uring_send_zc: false,
            ..Profile::classic()
        };
        let all = catalogue()
            .into_iter()
            .chain(bugs().into_iter().flat_map(|b| [b.buggy, b.fixed]));
        for e in all {
            for t in TransportClass::ALL {
                let x = e.expect(t, &none);
                assert_eq!(
                    x.verdict == zcsafe_policy::Verdict::Unsupported,
                    !e.needs.is_empty(),
                    "{}: {}",
                    e.name,
                    x.why
                );
                assert!(
                    e.expect(t, &Profile::classic()).verdict != zcsafe_policy::Verdict::Unsupported
                );
            }
        }
    }

    #[test]
    fn every_layout_accepts_its_derived_geometry() {
        for e in catalogue() {
            let g = e.pipeline.model_geometry();
            assert_eq!(e.layout.check(&e.pipeline, &g), Ok(()), "{}", e.name);
            assert!(e.build(&g).is_ok(), "{}", e.name);
        }
    }

    #[test]
    fn every_layout_accepts_the_model_standard_geometry() {
        for e in catalogue() {
            assert_eq!(
                e.layout.check(&e.pipeline, &Geometry::model_standard()),
                Ok(()),
                "{}",
                e.name
            );
        }
    }
}
