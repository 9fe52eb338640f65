//! Real boots of the 5.10 cloud kernel under QEMU (TCG): JSON comes back, the remote
//! transport carries bytes between two NICs, and the watchdog turns a silent, hung or
//! panicking guest into an error — never a hang. Skipped, with a printed reason, when QEMU
//! or the kernel is not available (ZCSAFE_REQUIRE_VM=1 makes that a failure).

mod common;

use std::time::{Duration, Instant};
use zcsafe_policy::Verdict;
use zcsafe_vm::guest::{init_script, Job, JobCell};
use zcsafe_vm::initramfs::{self, Inputs};
use zcsafe_vm::matrix::{self, GuestTransport, Options};
use zcsafe_vm::vm::{self, Machine};
use zcsafe_vm::watchdog::{End, Limits};

/// A finding printed by busybox alone: the pipeline test does not need the zcsafe binary.
const ECHO_FINDING: &str = r#"echo "{\"results\":[{\"policy\":\"vm-selftest\",\"transport\":\"{transport}\",\"backend\":\"vm\",\"kernel\":\"$(uname -r)\",\"verdict\":\"safe\",\"expected\":\"safe\",\"expected_why\":\"echo\",\"evidence\":{\"detail\":\"echoed\"}}]}""#;

/// 1 MiB across the NIC pair with busybox httpd (peer namespace) and wget, compared by
/// checksum.
const HTTP_REMOTE: &str = "mkdir -p /tmp/www; dd if=/dev/urandom of=/tmp/www/tx bs=64k count=16 2>/dev/null; nsenter -t $ZCSAFE_PEER_PID -n httpd -p $ZCSAFE_PEER_ADDR:80 -h /tmp/www; sleep 0.3; wget -q -O /tmp/rx http://$ZCSAFE_PEER_ADDR/tx; a=$(md5sum < /tmp/www/tx); b=$(md5sum < /tmp/rx); v=corrupt; [ \"$a\" = \"$b\" ] && v=safe; echo \"{\\\"policy\\\":\\\"vm-selftest\\\",\\\"transport\\\":\\\"remote\\\",\\\"backend\\\":\\\"vm\\\",\\\"verdict\\\":\\\"$v\\\",\\\"expected\\\":\\\"safe\\\",\\\"expected_why\\\":\\\"wget\\\",\\\"evidence\\\":{\\\"detail\\\":\\\"$(wc -c < /tmp/rx) bytes\\\"}}\"";

fn options(k: &str, bb: &std::path::Path) -> Options {
    let mut o = Options::new(bb.to_path_buf());
    o.kernels = k.into();
    o.policies = vec!["vm-selftest".into()];
    o.jobs = 2;
    o
}

#[test]
fn boots_5_10_and_gets_json_back_over_loopback_and_remote() {
    let test = "boots_5_10_and_gets_json_back";
    let Some(_k) = common::kernel(test) else {
        return;
    };
    let Some(bb) = common::busybox(test) else {
        return;
    };
    let mut o = options("5.10", &bb);
    o.transports = vec![GuestTransport::Loopback];
    o.command = ECHO_FINDING.into();
    let t = Instant::now();
    let m = matrix::run(&o, |_| {}).unwrap();
    assert_eq!(m.results.len(), 1);
    let c = &m.results[0];
    assert_eq!(c.finding.verdict, Verdict::Safe, "{c:#?}");
    assert!(
        c.finding.kernel.as_deref().unwrap().starts_with("5.10."),
        "{c:#?}"
    );
    assert_eq!(m.kernels[0].boot_seconds.len(), 1);
    eprintln!(
        "5.10 boot to userspace {:.2} s, whole VM {:.2} s",
        m.kernels[0].boot_seconds[0],
        t.elapsed().as_secs_f64()
    );

    // The remote transport: two NICs on one hub, one in its own namespace, with netem.
    o.transports = vec![GuestTransport::Remote];
    o.command = HTTP_REMOTE.into();
    o.delay_ms = Some(2);
    let m = matrix::run(&o, |_| {}).unwrap();
    let c = &m.results[0];
    assert_eq!(c.finding.verdict, Verdict::Safe, "{c:#?}");
    assert_eq!(c.finding.evidence.detail, "1048576 bytes");
    assert_eq!(c.netem.as_deref(), Some("delay 2ms"));
}

#[test]
fn a_guest_that_never_answers_is_killed_at_the_boot_deadline() {
    let test = "guest_never_answers";
    let Some(k) = common::kernel(test) else {
        return;
    };
    let Some(bb) = common::busybox(test) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let mut inputs = Inputs::new(bb);
    inputs.host_tools.clear();
    let img = initramfs::build(
        &k,
        &inputs,
        "#!/bin/sh\nexec /bin/busybox sleep 100000\n",
        t.path(),
    )
    .unwrap();
    let machine = Machine {
        limits: Limits {
            boot: Duration::from_secs(15),
            cell: Duration::from_secs(5),
            total: Duration::from_secs(60),
        },
        ..Machine::default()
    };
    let start = Instant::now();
    let run = vm::boot(
        &machine,
        &k.vmlinuz,
        &img.path,
        &Job::default(),
        None,
        |_, _| {},
    )
    .unwrap();
    assert!(
        matches!(run.end, End::Timeout(ref m) if m.contains("userspace")),
        "{:?}",
        run.end
    );
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(
        run.console_tail.contains("Linux version") || run.console_tail.contains("Run /init"),
        "{}",
        run.console_tail
    );
}

#[test]
fn a_hung_cell_and_a_panicking_guest_become_error_cells() {
    let test = "hung_and_panicking";
    let Some(_k) = common::kernel(test) else {
        return;
    };
    let Some(bb) = common::busybox(test) else {
        return;
    };
    let mut o = options("5.10", &bb);
    o.transports = vec![GuestTransport::Loopback];
    o.command = "sleep 1000".into();
    o.machine.limits.cell = Duration::from_secs(5);
    let start = Instant::now();
    let m = matrix::run(&o, |_| {}).unwrap();
    let c = &m.results[0];
    assert_eq!(c.finding.verdict, Verdict::Error);
    assert!(
        c.finding.evidence.detail.contains("longer than 5 s"),
        "{}",
        c.finding.evidence.detail
    );
    assert!(start.elapsed() < Duration::from_secs(60));

    o.command = "echo c > /proc/sysrq-trigger; sleep 100".into();
    let m = matrix::run(&o, |_| {}).unwrap();
    let c = &m.results[0];
    assert_eq!(c.finding.verdict, Verdict::Error);
    assert!(
        c.finding.evidence.detail.contains("kernel died"),
        "{}",
        c.finding.evidence.detail
    );
    assert!(
        c.console_tail.as_deref().unwrap_or("").contains("sysrq"),
        "{:?}",
        c.console_tail
    );
    // Nothing was judged: no verdict without evidence (not a contradiction, 1).
    assert_eq!(m.exit_code(), 2);
}

#[test]
fn remote_cells_run_the_real_agent_when_it_is_built() {
    let test = "real agent";
    let agent = std::env::var_os("ZCSAFE_VM_AGENT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/x86_64-unknown-linux-gnu/release/zcsafe-vm-agent"
            )
            .into()
        });
    let ok = std::fs::read(&agent)
        .map(|b| initramfs::is_static_elf(&b))
        .unwrap_or(false);
    if !ok {
        common::skip_optional(test, &format!("{} not built (RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu -p zcsafe-vm --bin zcsafe-vm-agent)", agent.display()));
        return;
    }
    let Some(_k) = common::kernel(test) else {
        return;
    };
    let mut o = options("5.10", &agent);
    o.transports = vec![GuestTransport::Loopback, GuestTransport::Remote];
    o.command = "zcsafe selftest {transport}".into();
    let m = matrix::run(&o, |_| {}).unwrap();
    assert_eq!(m.results.len(), 2);
    for c in &m.results {
        assert_eq!(c.finding.verdict, Verdict::Safe, "{c:#?}");
        assert_eq!(c.finding.evidence.counts["bytes"], 4u64 << 20);
    }
    let _ = init_script();
    let _ = JobCell {
        id: 0,
        command: String::new(),
    };
}
