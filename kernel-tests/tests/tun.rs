//! The `tun` transport on the host kernel: the remote class, judged by zcsafe's own TCP
//! peer behind a TUN device — the catalogue's policies with fixed seeds, a lost segment
//! the kernel retransmits, and the namespace and device gone after the run, also after
//! SIGKILL and beside a second zcsafe process.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;
use zcsafe_kernel::{netns, try_run_policy, veth::Network, RunOptions, RunReport, Transport};
use zcsafe_policy::{PeerScript, TransportClass, Verdict};

fn tun(script: &str) -> Transport {
    Transport::Tun(PeerScript::parse(script).expect("script"))
}

fn run(policy: &str, transport: Transport, seed: u64) -> RunReport {
    let e = zcsafe_policies::find(policy).unwrap_or_else(|| panic!("no policy {policy}"));
    let opts = RunOptions {
        transport,
        seed,
        repeat: 1,
        ..RunOptions::default()
    };
    try_run_policy(|g| e.build(g), e.name, &opts)
        .unwrap_or_else(|err| panic!("{policy} over {} (seed {seed}): {err}", transport.label()))
}

/// Runs `policy` and checks its verdict; returns the report for more checks.
fn expect(policy: &str, transport: Transport, seed: u64, want: Verdict) -> Option<RunReport> {
    if common::skip(&format!("{policy} over {}", transport.label()), &transport) {
        return None;
    }
    let r = run(policy, transport, seed);
    let peer = r.evidence.peer.expect("a tun run has peer counts");
    println!(
        "{policy} over {}: {} ({} ms) {}; peer {peer:?}",
        transport.label(),
        r.verdict,
        r.evidence.elapsed_ms,
        r.evidence.detail
    );
    assert_eq!(
        r.verdict,
        want,
        "{policy} over {} with seed {seed}: {}",
        transport.label(),
        r.evidence.detail
    );
    assert!(
        peer.data_segments >= r.evidence.bytes_expected / 4096,
        "{peer:?}"
    );
    common::assert_no_namespaces_of_this_process();
    Some(r)
}

#[test]
fn copy_is_safe_with_its_reuses_made_while_the_kernel_held_the_pages() {
    let _g = common::serial();
    assert_eq!(tun("").class(), TransportClass::Remote);
    let Some(r) = expect("copy", tun(""), 401, Verdict::Safe) else {
        return;
    };
    let x = r.exposure();
    assert!(
        x.reuses_while_unread > 0,
        "copy's reuses must come before the peer's ACKs, or safe proves nothing: {x:?}"
    );
    assert_eq!(r.evidence.peer.unwrap().wscale, Some(1), "64 KiB window");
}

#[test]
fn zc_naive_corrupts_because_the_device_reads_a_reused_page() {
    let _g = common::serial();
    let Some(r) = expect("zc-naive", tun(""), 402, Verdict::Corrupt) else {
        return;
    };
    assert!(
        r.evidence.reused_early_by.is_some(),
        "{}",
        r.evidence.detail
    );
}

/// Local delivery corrupts it (the receiver's queue keeps the pages after the ACK); a
/// device that copies does not.
#[test]
fn siocoutq_drain_is_safe_on_the_remote_class() {
    let _g = common::serial();
    expect("siocoutq-drain", tun(""), 403, Verdict::Safe);
}

#[test]
fn a_lost_segment_is_retransmitted_from_the_pages() {
    let _g = common::serial();
    let Some(r) = expect("copy", tun("drop=3"), 404, Verdict::Safe) else {
        return;
    };
    let peer = r.evidence.peer.unwrap();
    assert_eq!(peer.lost, 1, "{peer:?}");
    assert!(
        peer.retransmitted >= 1,
        "the kernel must send segment 3 again: {peer:?}"
    );
    assert!(
        peer.out_of_order >= 1,
        "segment 4 arrives beyond the gap: {peer:?}"
    );
    assert_eq!(r.evidence.bytes_received, r.evidence.bytes_expected);
}

/// Not a test: the child process of the cleanup test. It sets up a tun network, says
/// which namespace, and waits to be killed.
#[test]
#[ignore = "helper process for the tun cleanup test"]
fn helper_hold_tun() {
    if std::env::var("ZCSAFE_HOLD_TUN").as_deref() != Ok("1") {
        return;
    }
    let net = Network::setup(tun("")).expect("tun");
    println!("READY {}", net.sender.as_ref().expect("namespace").name());
    std::thread::sleep(Duration::from_secs(60));
}

fn has_device(ns: &str) -> bool {
    Command::new("ip")
        .args(["-n", ns, "link", "show", "zcs-tun"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn two_processes_at_once_and_sigkill_leave_nothing_behind() {
    let _g = common::serial();
    if common::skip("tun cleanup", &tun("")) {
        return;
    }
    let (mut child, theirs) = common::start_helper("helper_hold_tun", "ZCSAFE_HOLD_TUN");
    assert!(has_device(&theirs), "the helper's device is missing");
    // A second zcsafe process's run beside the helper's: its own namespace and device.
    let r = run("copy", tun(""), 405);
    assert_eq!(r.verdict, Verdict::Safe, "{}", r.evidence.detail);
    assert!(
        netns::list().contains(&theirs),
        "our run swept a live process's namespace"
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    // The device dies with the fd (not persistent); the namespace mount stays until a
    // sweep — the next run's.
    assert!(netns::list().contains(&theirs), "SIGKILL cannot clean up");
    assert!(!has_device(&theirs), "the TUN device outlived its process");
    let net = Network::setup(tun("")).expect("the next run");
    assert!(
        !netns::list().contains(&theirs),
        "the next run did not sweep {theirs}"
    );
    drop(net);
    common::assert_no_namespaces_of_this_process();
}
