//! A matrix with the VM agent (no zcsafe CLI needed):
//! `cargo run -p zcsafe-vm --example matrix -- KERNELS OUTDIR [AGENT]`.
use zcsafe_vm::matrix::{self, GuestTransport, Options, Progress};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let agent = args.get(3).cloned().unwrap_or_else(|| {
        format!(
            "{}/../target/x86_64-unknown-linux-gnu/release/zcsafe-vm-agent",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let mut o = Options::new(agent.into());
    o.kernels = args.get(1).cloned().unwrap_or_else(|| "5.10".into());
    o.policies = vec!["vm-selftest".into()];
    o.transports = vec![GuestTransport::Loopback, GuestTransport::Remote];
    o.command = "zcsafe selftest {transport}".into();
    let m = matrix::run(&o, |p| match p {
        Progress::Kernel { name, message } => eprintln!("{name}: {message}"),
        Progress::Cell { done, total, cell } => eprintln!(
            "[{done}/{total}] {} {} {}: {} ({:.1} s)",
            cell.kernel_name,
            cell.finding.transport,
            cell.finding.policy,
            cell.finding.verdict,
            cell.seconds
        ),
    })
    .unwrap();
    let out = std::path::PathBuf::from(
        args.get(2)
            .cloned()
            .unwrap_or_else(|| "/tmp/zcsafe-matrix".into()),
    );
    for p in zcsafe_vm::report::write_all(&m, &out).unwrap() {
        eprintln!("wrote {}", p.display());
    }
    eprintln!("wall {:.1} s, exit {}", m.wall_seconds, m.exit_code());
}
