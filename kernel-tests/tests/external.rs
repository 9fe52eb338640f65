//! External mode with the C sender of `examples/c-sender`, built here with the C compiler:
//! the same program is judged intact or corrupted depending on its reuse mode.

mod common;

use std::path::PathBuf;
use std::time::Duration;
use zcsafe_kernel::receiver::Cause;
use zcsafe_kernel::{run_external, ExternalOptions, ExternalOutcome, ExternalReport, Transport};

/// Builds the C sender once per test binary; `None` (with a counted SKIP) without gcc.
fn c_sender() -> Option<PathBuf> {
    static BUILT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let src =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/c-sender/zc_sender.c");
            let out = std::env::temp_dir().join(format!("zc_sender-{}", std::process::id()));
            let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".into());
            match std::process::Command::new(&cc)
                .args(["-O2", "-Wall", "-Werror", "-o"])
                .arg(&out)
                .arg(&src)
                .status()
            {
                Ok(s) if s.success() => Some(out),
                other => {
                    common::skipped(
                        "external tests",
                        &format!("cannot build the C sender with {cc}: {other:?}"),
                    );
                    None
                }
            }
        })
        .clone()
}

fn run(mode: &str, transport: Transport, seed: u64) -> Option<ExternalReport> {
    let exe = c_sender()?;
    let cmd = format!("{} {{host}} {{port}} --mode {mode}", exe.display());
    let opts = ExternalOptions {
        transport,
        seed,
        expect: Some(1 << 20),
        timeout: Duration::from_secs(30),
        ..ExternalOptions::default()
    };
    let r = run_external(&cmd, &opts).expect("external run");
    println!(
        "{mode} over {} (seed {seed}): {:?} — {} (stderr: {:?})",
        transport.label(),
        r.outcome,
        r.detail,
        r.sender_stderr_tail
    );
    Some(r)
}

#[test]
fn c_sender_copy_is_intact_over_veth() {
    let _g = common::serial();
    if common::skip("external copy over veth", &Transport::Veth) {
        return;
    }
    let Some(r) = run("copy", Transport::Veth, 21) else {
        return;
    };
    assert_eq!(r.outcome, ExternalOutcome::Intact, "{}", r.detail);
    assert_eq!(r.exit_code(), 0);
    assert_eq!(r.received.bytes, 1 << 20);
    // The sender's socket, in its own namespace, was looked at from outside, and the
    // slow reader let both queues fill: the kernel held the stream, so `safe` is earned.
    let held = r.received.held;
    assert!(
        held.max_unacked.is_some_and(|n| n > 0) && held.max_unread > 0,
        "{held:?}"
    );
    assert!(
        r.detail.contains("unacknowledged at the sender"),
        "{}",
        r.detail
    );
}

#[test]
fn c_sender_msg_zerocopy_reused_at_once_is_corrupted_over_veth() {
    let _g = common::serial();
    if common::skip("external zc-naive over veth", &Transport::Veth) {
        return;
    }
    let Some(r) = run("zc-naive", Transport::Veth, 22) else {
        return;
    };
    assert_eq!(r.outcome, ExternalOutcome::Corrupted, "{}", r.detail);
    assert_eq!(r.exit_code(), 1);
    assert!(r.received.corrupt_words > 0 && r.received.first_corrupt.is_some());
    assert!(
        r.reused_early_by.is_some_and(|n| n > 0),
        "evidence names the offset the bytes were meant for: {}",
        r.detail
    );
}

#[test]
fn c_sender_waiting_for_notifications_is_intact_over_veth() {
    let _g = common::serial();
    if common::skip("external zc-wait over veth", &Transport::Veth) {
        return;
    }
    let Some(r) = run("zc-wait", Transport::Veth, 23) else {
        return;
    };
    assert_eq!(r.outcome, ExternalOutcome::Intact, "{}", r.detail);
}

#[test]
fn c_sender_copy_is_intact_over_loopback_without_root() {
    let _g = common::serial();
    let Some(r) = run("copy", Transport::Loopback, 24) else {
        return;
    };
    assert_eq!(r.outcome, ExternalOutcome::Intact, "{}", r.detail);
}

/// Sends that interleave on the wire (the second half of chunk 0 after chunk 1) corrupt the
/// stream without any early reuse: the receiver must say so, and not "reused too early".
#[test]
fn c_sender_interleaving_sends_is_called_interleaved_over_loopback() {
    let _g = common::serial();
    let Some(r) = run("interleave", Transport::Loopback, 25) else {
        return;
    };
    assert_eq!(r.outcome, ExternalOutcome::Corrupted, "{}", r.detail);
    let half = 32 << 10;
    assert_eq!(
        r.received.diagnosis.map(|d| d.cause),
        Some(Cause::Interleaved {
            at: half,
            carries: 2 * half,
            arrives_at: 3 * half
        }),
        "{}",
        r.detail
    );
    assert_eq!(r.reused_early_by, None, "{}", r.detail);
    assert!(
        r.detail.contains("interleaved, not reused") && !r.detail.contains("too early"),
        "{}",
        r.detail
    );
}

#[test]
fn failing_senders_are_run_failures_with_their_stderr() {
    let _g = common::serial();
    let opts = ExternalOptions {
        timeout: Duration::from_secs(5),
        ..ExternalOptions::default()
    };
    let r = run_external("echo 'cannot connect to {host}:{port}' >&2; exit 3", &opts).unwrap();
    assert_eq!(r.outcome, ExternalOutcome::Failed);
    assert_eq!(r.exit_code(), 3);
    assert_eq!(r.sender_exit, Some(3));
    assert!(
        r.sender_stderr_tail
            .contains("cannot connect to 127.0.0.1:"),
        "{r:?}"
    );

    let opts = ExternalOptions {
        timeout: Duration::from_millis(500),
        ..ExternalOptions::default()
    };
    let t = std::time::Instant::now();
    let r = run_external("sleep 30", &opts).unwrap();
    assert_eq!(r.outcome, ExternalOutcome::Failed);
    assert!(r.sender_timed_out);
    assert!(t.elapsed() < Duration::from_secs(5), "timeout not enforced");
}

/// A stream the receiver takes in one read, from a sender whose bytes are acknowledged on
/// arrival: the kernel never held any of it for long, so an intact stream proves nothing
/// about the sender's reuse — `inconclusive`, exit 4, not `safe`.
#[test]
fn a_stream_the_kernel_never_held_is_inconclusive_not_safe() {
    let _g = common::serial();
    let Some(exe) = c_sender() else { return };
    let opts = ExternalOptions {
        expect: Some(4096),
        timeout: Duration::from_secs(20),
        ..ExternalOptions::default()
    };
    let cmd = format!(
        "{} {{host}} {{port}} --mode copy --bytes 4096 --chunk 4096",
        exe.display()
    );
    let r = run_external(&cmd, &opts).unwrap();
    assert_eq!(r.outcome, ExternalOutcome::Unexercised, "{}", r.detail);
    assert_eq!(r.verdict(), zcsafe_policy::Verdict::Inconclusive);
    assert_eq!(r.exit_code(), 4);
    assert_eq!(r.received.held.max_unread, 0, "{:?}", r.received.held);
    assert!(r.detail.contains("never seen holding"), "{}", r.detail);
}

#[test]
fn a_short_stream_is_a_failure_not_a_pass() {
    let _g = common::serial();
    let Some(exe) = c_sender() else { return };
    let opts = ExternalOptions {
        expect: Some(1 << 20),
        timeout: Duration::from_secs(20),
        ..ExternalOptions::default()
    };
    let cmd = format!(
        "{} {{host}} {{port}} --mode copy --bytes 65536",
        exe.display()
    );
    let r = run_external(&cmd, &opts).unwrap();
    assert_eq!(r.outcome, ExternalOutcome::Failed, "{}", r.detail);
    assert!(r.detail.contains("short stream"), "{}", r.detail);
}
