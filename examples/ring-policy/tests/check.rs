//! Checking an out-of-tree policy with zcsafe's exhaustive model checker.

use zcsafe_explain::text::render;
use zcsafe_model::{check, CheckOptions, Scenario};
use zcsafe_policy::{Profile, TransportClass, Verdict};
use zcsafe_ring_policy::ZcDrain;

fn verdict(t: TransportClass, profile: Profile) -> (Verdict, String) {
    let scenario = Scenario::standard(t, profile);
    let report = check(
        ZcDrain::new(&scenario.geometry),
        &scenario,
        &CheckOptions::default(),
    )
    .unwrap();
    (
        report.verdict,
        report.trace.as_ref().map(render).unwrap_or_default(),
    )
}

#[test]
fn safe_on_classic_kernels_in_both_transport_classes() {
    for t in TransportClass::ALL {
        let (v, timeline) = verdict(t, Profile::classic());
        assert_eq!(v, Verdict::Safe, "{t}:\n{timeline}");
    }
}

#[test]
fn unsafe_locally_if_a_kernel_stopped_copying_zerocopy_frags_on_delivery() {
    let profile = Profile {
        name: "no-orphan-copy".into(),
        zerocopy_local_copies: false,
        ..Profile::classic()
    };
    let (v, timeline) = verdict(TransportClass::Local, profile.clone());
    assert_eq!(v, Verdict::Corrupt, "{timeline}");
    assert!(timeline.contains("REUSE WHILE HELD"));
    assert_eq!(verdict(TransportClass::Remote, profile).0, Verdict::Safe);
}
