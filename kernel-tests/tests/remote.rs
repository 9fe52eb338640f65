//! The `remote` transport's plumbing: a peer namespace set up by someone else (the VM
//! guest does it with two virtio NICs), named by ZCSAFE_PEER_NETNS / ZCSAFE_PEER_ADDR.
//! Here a veth pair stands in for the NICs, so only the plumbing is asserted. One test
//! per binary: it sets process-wide environment variables.

mod common;

use common::{Scheme, Tiny};
use zcsafe_kernel::transport::{PEER_ADDR_ENV, PEER_NETNS_ENV};
use zcsafe_kernel::veth::{unavailable, Network, RECEIVER_ADDR};
use zcsafe_kernel::{run_policy, RunOptions, Transport};
use zcsafe_policy::{TransportClass, Verdict};

#[test]
fn remote_uses_the_peer_namespace_from_the_environment() {
    assert_eq!(Transport::Remote.class(), TransportClass::Remote);
    // SAFETY (edition 2021: safe fn): the only test in this binary.
    std::env::remove_var(PEER_NETNS_ENV);
    let why = unavailable(&Transport::Remote).expect("unavailable without the environment");
    assert!(why.contains(PEER_NETNS_ENV), "{why}");
    if common::skip("remote plumbing", &Transport::Veth) {
        return;
    }
    let net = Network::setup(Transport::Veth).expect("veth");
    let rcv = net.receiver.as_ref().expect("ns").path();
    std::env::set_var(PEER_NETNS_ENV, &rcv);
    std::env::set_var(PEER_ADDR_ENV, RECEIVER_ADDR.to_string());
    assert_eq!(unavailable(&Transport::Remote), None);
    let opts = RunOptions {
        transport: Transport::Remote,
        seed: 31,
        repeat: 1,
        ..RunOptions::default()
    };
    // The sender stays in the caller's namespace: call from the sender side of the pair.
    let r = net
        .in_sender(|| run_policy(|g| Tiny::new(Scheme::Copy, g), "copy", &opts))
        .expect("enter")
        .expect("run");
    assert_eq!(r.verdict, Verdict::Safe, "seed 31: {}", r.evidence.detail);
    assert_eq!(r.transport, "remote");
    std::env::set_var(PEER_ADDR_ENV, "not-an-address");
    assert!(unavailable(&Transport::Remote).is_some());
}
