//! docs/design.md §5, "Facts measured on this project's machines", reproduced by the
//! catalogue's own policies (the same code the model checks) on the running kernel.

mod common;

use zcsafe_kernel::{try_run_policy, RunOptions, RunReport, Transport};
use zcsafe_policy::Verdict::{self, Corrupt, Safe};

const LO: Transport = Transport::Loopback;
const VETH: Transport = Transport::Veth;
const LOSSY: Transport = Transport::VethLossy { loss_pct: 5 };
const SLOW: Transport = Transport::VethSlow { rate_kbit: 50_000 };

fn run(policy: &str, transport: Transport, seed: u64) -> RunReport {
    let e = zcsafe_policies::find(policy).unwrap_or_else(|| panic!("no policy {policy}"));
    let opts = RunOptions {
        transport,
        seed,
        repeat: 1,
        rcvbuf: e.window.rcvbuf(),
        ..RunOptions::default()
    };
    try_run_policy(|g| e.build(g), e.name, &opts)
        .unwrap_or_else(|err| panic!("{policy} over {transport} (seed {seed}): {err}"))
}

/// Runs each (policy, transport, expected) and reports every mismatch at once.
fn facts(rows: &[(&str, Transport, Verdict)]) {
    let _g = common::serial();
    let mut wrong = Vec::new();
    for (i, &(policy, transport, want)) in rows.iter().enumerate() {
        if common::skip(&format!("{policy} over {transport}"), &transport) {
            continue;
        }
        let seed = 100 + i as u64;
        let r = run(policy, transport, seed);
        println!(
            "{policy:24} {:22} {:8} ({} ms) {}",
            transport.label(),
            r.verdict.name(),
            r.evidence.elapsed_ms,
            r.evidence.detail
        );
        if r.verdict != want {
            wrong.push(format!(
                "{policy} over {}: {} (expected {want}), seed {seed}: {}",
                transport.label(),
                r.verdict,
                r.evidence.detail
            ));
        }
    }
    common::assert_no_namespaces_of_this_process();
    assert!(
        wrong.is_empty(),
        "facts not reproduced:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn design_facts_table_on_loopback_and_veth() {
    facts(&[
        ("copy", LO, Safe),
        ("copy", VETH, Safe),
        ("zc-naive", VETH, Corrupt),
        ("zc-completion", LO, Safe),
        ("zc-completion", VETH, Safe),
        ("siocoutq-drain", LO, Corrupt),
        ("siocoutq-drain", VETH, Corrupt),
        ("vmsplice-double-buffer", LO, Corrupt),
        ("vmsplice-double-buffer", VETH, Corrupt),
    ]);
}

#[test]
fn design_facts_also_measured_on_the_host() {
    facts(&[
        ("uring-zc-naive", LO, Corrupt),
        ("uring-zc-notif", LO, Safe),
        ("vmsplice-gift-reuse", LO, Corrupt),
        ("vmsplice-gift-reuse", VETH, Corrupt),
        ("sendfile-rewrite", LO, Corrupt),
        ("sendfile-rewrite", VETH, Corrupt),
        ("sendfile-rotate", LO, Safe),
        ("sendfile-rotate", VETH, Safe),
    ]);
}

/// Loss makes TCP retransmit, which reads the pages again; a rate limit keeps data
/// queued longer. Policies that are safe must stay safe, unsafe ones stay unsafe.
#[test]
fn loss_and_rate_limits_do_not_change_the_facts() {
    facts(&[
        ("copy", LOSSY, Safe),
        ("zc-completion", LOSSY, Safe),
        ("app-ack", LOSSY, Safe),
        ("siocoutq-drain", LOSSY, Corrupt),
        ("zc-naive", SLOW, Corrupt),
        ("uring-zc-notif", SLOW, Safe),
        ("sendfile-rotate", SLOW, Safe),
    ]);
}
