//! The facts of docs/design.md §5 with tiny policies defined here: they assert behaviour of the
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

/// docs/design.md §5: one 64 KiB `send(MSG_ZEROCOPY)` over loopback, buffer overwritten at
/// once, arrives clean — loopback delivers within the send call and
/// `skb_orphan_frags_rx` copies the frags on delivery.
#[test]
fn one_msg_zerocopy_send_reused_at_once_is_clean_over_loopback() {
    let _g = serial();
    let mut opts = RunOptions {
        transport: Transport::Loopback,
        seed: 19,
        repeat: 3,
        ..RunOptions::default()
    };
    opts.geometry.stream = opts.geometry.chunk;
    let r = run_policy(
        |g| {
            let mut t = Tiny::new(Scheme::ZcNaive, g);
            t.reuse_after_last = true;
            t
        },
        "zc-naive-one-send",
        &opts,
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::Safe, "seed 19: {}", r.evidence.detail);
    // The same with a 1 MiB stream: the part still queued behind the slow reader's
    // window is read again after the reuse.
    let r = run(Scheme::ZcNaive, Transport::Loopback, 20);
    assert_eq!(
        r.verdict,
        Verdict::Corrupt,
        "seed 20: {}",
        r.evidence.detail
    );
}

/// A policy that asks for one operation, then gives up in a chosen way.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct OneOp(zcsafe_policy::Op, bool);

impl zcsafe_policy::Policy for OneOp {
    fn poll_op(&self) -> zcsafe_policy::Op {
        if self.1 {
            zcsafe_policy::Op::Abort(zcsafe_policy::Abort::Unsupported("needs a pony".into()))
        } else {
            self.0.clone()
        }
    }
    fn handle(&mut self, _: zcsafe_policy::Outcome) {
        self.1 = true;
    }
}

fn quick() -> RunOptions {
    RunOptions {
        repeat: 1,
        op_timeout: std::time::Duration::from_millis(300),
        ..RunOptions::default()
    }
}

#[test]
fn waiting_on_an_empty_pipe_is_stuck_and_says_so() {
    let _g = serial();
    let r = run_policy(
        |_| OneOp(zcsafe_policy::Op::Splice { len: 4096 }, false),
        "splice-nothing",
        &quick(),
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::Stuck, "{}", r.evidence.detail);
    assert!(
        r.evidence.detail.contains("empty pipe"),
        "{}",
        r.evidence.detail
    );
}

#[test]
fn an_app_ack_beyond_the_stream_is_stuck() {
    let _g = serial();
    let r = run_policy(
        |_| OneOp(zcsafe_policy::Op::WaitAppAck { beyond: 1 << 40 }, false),
        "ack-never",
        &quick(),
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::Stuck, "{}", r.evidence.detail);
}

#[test]
fn an_unsupported_abort_names_the_kernel() {
    let _g = serial();
    let r = run_policy(
        |_| OneOp(zcsafe_policy::Op::EnableZerocopy, false),
        "pony",
        &quick(),
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::Unsupported);
    assert!(r.evidence.detail.contains("needs a pony"));
    assert!(r.evidence.detail.contains(&zcsafe_kernel::kernel_release()));
}

#[test]
fn a_bad_geometry_is_an_error_not_a_panic() {
    let mut o = quick();
    o.geometry.stream = 12345;
    assert!(run_policy(|g| Tiny::new(Scheme::Copy, g), "copy", &o).is_err());
    o = quick();
    o.repeat = 0;
    assert!(run_policy(|g| Tiny::new(Scheme::Copy, g), "copy", &o).is_err());
}

#[test]
fn a_policy_writing_outside_its_buffer_is_an_error() {
    let _g = serial();
    let r = run_policy(
        |g| {
            OneOp(
                zcsafe_policy::Op::Fill {
                    buf: zcsafe_policy::Region::new(g.buffer, 4096),
                    stream: 0,
                },
                false,
            )
        },
        "overflow",
        &quick(),
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::Error, "{}", r.evidence.detail);
}

/// Performs a fixed list of operations, ignoring outcomes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Script(Vec<zcsafe_policy::Op>, usize);

impl zcsafe_policy::Policy for Script {
    fn poll_op(&self) -> zcsafe_policy::Op {
        self.0
            .get(self.1)
            .cloned()
            .unwrap_or(zcsafe_policy::Op::Finish)
    }
    fn handle(&mut self, _: zcsafe_policy::Outcome) {
        self.1 += 1;
    }
}

/// `Op::Siocoutq` waits for a changed value only when nothing was written since the last
/// answer: after a send, the same value (0: all acknowledged) is answered at once.
#[test]
fn siocoutq_answers_at_once_after_a_write() {
    use zcsafe_policy::{Op, Region};
    let _g = serial();
    let mut opts = quick();
    opts.op_timeout = std::time::Duration::from_secs(3);
    opts.geometry = zcsafe_policy::Geometry::kernel(4096, 8192, 4096, 8192);
    let mut ops = Vec::new();
    for k in 0..2u64 {
        let buf = Region::new(k * 4096, 4096);
        ops.push(Op::Fill {
            buf,
            stream: k * 4096,
        });
        ops.push(Op::Send {
            buf,
            zerocopy: false,
        });
        // Let the ACK arrive, so both polls would read 0.
        ops.push(Op::WaitAppAck {
            beyond: k * 4096 + 4095,
        });
        ops.push(Op::Siocoutq);
    }
    let r = run_policy(|_| Script(ops.clone(), 0), "siocoutq-twice", &opts).unwrap();
    assert_eq!(r.verdict, Verdict::Safe, "{}", r.evidence.detail);
    assert!(
        r.evidence.elapsed_ms < 2500,
        "took {} ms",
        r.evidence.elapsed_ms
    );
}
