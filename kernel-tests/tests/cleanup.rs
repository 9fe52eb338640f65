//! Namespaces are always removed: on drop, on panic, on SIGTERM, and — after SIGKILL —
//! by the next run's sweep of leftovers whose owner is dead.

mod common;

use std::process::Child;
use std::time::Duration;
use zcsafe_kernel::{netns, veth::Network, Transport};

/// Not a test: the child process of the tests below. It creates a veth network, says
/// which namespaces, and waits to be killed.
#[test]
#[ignore = "helper process for the cleanup tests"]
fn helper_hold_namespaces() {
    if std::env::var("ZCSAFE_HOLD").as_deref() != Ok("1") {
        return;
    }
    let net = Network::setup(Transport::Veth).expect("veth");
    let names = [net.sender.as_ref(), net.receiver.as_ref()]
        .map(|n| n.expect("namespaces").name().to_string());
    println!("READY {} {}", names[0], names[1]);
    std::thread::sleep(Duration::from_secs(60));
}

/// Starts the helper and waits (condition: its READY line) for its namespace names.
fn start_holder() -> (Child, Vec<String>) {
    let (child, ready) = common::start_helper("helper_hold_namespaces", "ZCSAFE_HOLD");
    (child, ready.split(' ').map(String::from).collect())
}

fn exists(name: &str) -> bool {
    netns::list().iter().any(|n| n == name)
}

fn wait_gone(names: &[String], within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if names.iter().all(|n| !exists(n)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn sigkill_leaves_namespaces_that_the_next_run_removes() {
    let _g = common::serial();
    if common::skip("sigkill cleanup", &Transport::Veth) {
        return;
    }
    let (mut child, names) = start_holder();
    assert!(
        names.iter().all(|n| exists(n)),
        "helper's {names:?} missing"
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    assert!(
        names.iter().all(|n| exists(n)),
        "SIGKILL cannot run cleanup code, yet {names:?} vanished"
    );
    assert!(names.iter().all(|n| netns::owner_is_dead(n)));
    // (A concurrent run's own sweep may get there first; either way they must go.)
    let removed = netns::cleanup_stale();
    for n in &names {
        assert!(!exists(n), "{n} survived the sweep (removed: {removed:?})");
    }
}

#[test]
fn sigterm_removes_namespaces_before_dying() {
    let _g = common::serial();
    if common::skip("sigterm cleanup", &Transport::Veth) {
        return;
    }
    let (mut child, names) = start_holder();
    // SAFETY: kill touches no memory; the pid is our child's, not yet reaped, so it
    // cannot name an unrelated process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("reap");
    assert!(!status.success(), "the helper should die of SIGTERM");
    assert!(
        wait_gone(&names, Duration::from_secs(5)),
        "{names:?} left after SIGTERM"
    );
}

#[test]
fn namespaces_of_live_runs_survive_the_sweep_and_go_on_drop_and_panic() {
    let _g = common::serial();
    if common::skip("drop/panic cleanup", &Transport::Veth) {
        return;
    }
    let net = Network::setup(Transport::Veth).expect("veth");
    let name = net.sender.as_ref().expect("ns").name().to_string();
    netns::cleanup_stale();
    assert!(exists(&name), "a live run's namespace was swept");
    drop(net);
    assert!(!exists(&name), "drop left {name}");

    let got = std::panic::catch_unwind(|| {
        let net = Network::setup(Transport::Veth).expect("veth");
        let n = net.receiver.as_ref().expect("ns").name().to_string();
        std::panic::panic_any(n);
    });
    let n = *got
        .expect_err("panicked")
        .downcast::<String>()
        .expect("name");
    assert!(!exists(&n), "panic left {n}");
    common::assert_no_namespaces_of_this_process();
}
