//! UDP policies on the host kernel: the executor has no UDP socket yet, so a run says
//! `unsupported` with the reason — before it sets up any namespace, so no root needed.

use zcsafe_kernel::{try_run_policy, RunOptions, Transport, UDP_UNSUPPORTED};
use zcsafe_policy::{SocketKind, Verdict};

#[test]
fn udp_policies_are_unsupported_with_the_reason_on_every_transport() {
    for name in ["udp-zc-naive", "udp-zc-completion"] {
        let e = zcsafe_policies::find(name).expect(name);
        assert_eq!(e.pipeline.socket, SocketKind::Udp, "{name} declares UDP");
        for transport in [Transport::Loopback, Transport::Veth] {
            let opts = RunOptions {
                transport,
                repeat: 1,
                socket: e.pipeline.socket,
                ..RunOptions::default()
            };
            let r = try_run_policy(|g| e.build(g), e.name, &opts).expect("a report");
            assert_eq!(r.verdict, Verdict::Unsupported, "{name} over {transport}");
            assert_eq!(r.evidence.detail, UDP_UNSUPPORTED);
            assert_eq!(r.evidence.ops, 0, "nothing ran on a TCP socket instead");
        }
    }
}
