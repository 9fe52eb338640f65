//! The facts of DESIGN.md §1 with tiny policies defined here: they assert behaviour of the
//! running kernel, so they can fail when it changes.

mod common;

use common::{serial, skip, Scheme, Tiny};
use zcsafe_kernel::{run_policy, RunOptions, RunReport, Transport};
use zcsafe_policy::Verdict;

fn run(scheme: Scheme, transport: Transport, seed: u64) -> RunReport {
    let opts = RunOptions {
        transport,
        seed,
        repeat: 1,
        ..RunOptions::default()
    };
    let r = run_policy(|g| Tiny::new(scheme, g), &format!("{scheme:?}"), &opts)
        .unwrap_or_else(|e| panic!("{scheme:?} over {transport} (seed {seed}): {e}"));
    println!(
        "{scheme:?} over {} seed {seed}: {} — {} ({} ms, dropped {:?})",
        transport.label(),
        r.verdict,
        r.evidence.detail,
        r.evidence.elapsed_ms,
        r.evidence.dropped_packets
    );
    r
}

fn expect(scheme: Scheme, transport: Transport, seed: u64, want: Verdict) {
    let _g = serial();
    if skip(&format!("{scheme:?} over {transport}"), &transport) {
        return;
    }
    let r = run(scheme, transport, seed);
    assert_eq!(
        r.verdict,
        want,
        "{scheme:?} over {} with seed {seed}: {}\ntrace: {}",
        transport.label(),
        r.evidence.detail,
        serde_json::to_string_pretty(&r.trace.steps).unwrap()
    );
    common::assert_no_namespaces_of_this_process();
}

#[test]
fn copy_send_is_intact_over_loopback() {
    expect(Scheme::Copy, Transport::Loopback, 11, Verdict::Safe);
}

#[test]
fn copy_send_is_intact_over_veth() {
    expect(Scheme::Copy, Transport::Veth, 12, Verdict::Safe);
}

#[test]
fn msg_zerocopy_reused_at_once_is_corrupt_over_veth() {
    expect(Scheme::ZcNaive, Transport::Veth, 13, Verdict::Corrupt);
}

#[test]
fn splice_after_siocoutq_zero_is_corrupt_over_loopback() {
    expect(
        Scheme::SpliceDrain,
        Transport::Loopback,
        14,
        Verdict::Corrupt,
    );
}

#[test]
fn splice_after_siocoutq_zero_is_corrupt_over_veth() {
    expect(Scheme::SpliceDrain, Transport::Veth, 15, Verdict::Corrupt);
}

#[test]
fn copy_send_is_intact_over_a_lossy_veth() {
    expect(
        Scheme::Copy,
        Transport::VethLossy { loss_pct: 5 },
        16,
        Verdict::Safe,
    );
}

#[test]
fn copy_send_is_intact_over_a_slow_veth() {
    expect(
        Scheme::Copy,
        Transport::VethSlow { rate_kbit: 50_000 },
        17,
        Verdict::Safe,
    );
}

#[test]
fn splice_after_siocoutq_zero_is_corrupt_over_a_lossy_veth() {
    expect(
        Scheme::SpliceDrain,
        Transport::VethLossy { loss_pct: 5 },
        18,
        Verdict::Corrupt,
    );
}
