//! `zcsafe matrix`: Debian kernels in QEMU × policies × guest transports, one report.
//! `zcsafe matrix merge`: joins per-kernel `matrix.json` files (one CI job per kernel).

use crate::progress::ProgressBar;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use zcsafe_vm::matrix::{self, AccelChoice, Options, Progress};
use zcsafe_vm::qemu::Nic;
use zcsafe_vm::{initramfs, report, Catalogue};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    merge: Option<Sub>,
    /// Kernels: catalogue names or version prefixes (5.10,7.2), `all` (the default set),
    /// `all-rt`, `everything`, plus `host` for the running kernel (vm/kernels.toml).
    #[arg(long, default_value = "all", value_name = "LIST")]
    kernels: String,
    /// Policies, comma-separated, or `all`.
    #[arg(long, default_value = "all", value_name = "LIST")]
    policies: String,
    /// Guest transports, comma-separated: loopback, veth, veth-lossy, veth-slow, remote.
    #[arg(long, default_value = "loopback,veth,remote", value_name = "LIST")]
    transports: String,
    /// NIC model of the `remote` transport (two NICs on one QEMU hub).
    #[arg(long, default_value = "virtio", value_name = "virtio|e1000")]
    nic: String,
    /// netem loss on the remote sender NIC, percent.
    #[arg(long, value_name = "PCT")]
    loss: Option<f64>,
    /// netem delay on the remote sender NIC, milliseconds.
    #[arg(long, value_name = "MS")]
    delay: Option<u32>,
    /// VMs in parallel (default: the number of cores).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Output directory for matrix.json, matrix.md and matrix.html.
    #[arg(long, default_value = "zcsafe-matrix", value_name = "DIR")]
    out: PathBuf,
    /// Print one JSON object (`results`, each with `kernel` = the guest's uname -r).
    #[arg(long)]
    json: bool,
    /// tcg (default), kvm, or auto (KVM only if a probe boot reaches userspace).
    #[arg(long, default_value = "tcg")]
    accel: String,
    /// The static zcsafe installed in the guests (default: $ZCSAFE_GUEST_BIN, this
    /// binary if static, or target/x86_64-unknown-linux-gnu/release/zcsafe).
    #[arg(long, value_name = "PATH")]
    guest_binary: Option<PathBuf>,
    /// Command each cell runs in the guest; {policy} and {transport} are replaced.
    #[arg(long, default_value = matrix::DEFAULT_COMMAND, value_name = "CMD")]
    command: String,
    /// Kernel catalogue file instead of the built-in vm/kernels.toml.
    #[arg(long, value_name = "FILE")]
    catalogue: Option<PathBuf>,
    /// Re-resolve kernels with apt even when cached (picks up a newer Debian ABI).
    #[arg(long)]
    refresh: bool,
    /// Judge this sender program in every guest instead of the policies (as
    /// `zcsafe run --external`; `{host}` and `{port}` are replaced in the guest).
    #[arg(long, value_name = "CMD", conflicts_with = "policies")]
    external: Option<String>,
    /// A file to carry into the guests' PATH (/opt/zcsafe/bin), e.g. the external
    /// sender: statically linked, or a #!/bin/sh script. Repeatable.
    #[arg(long, value_name = "FILE", requires = "external")]
    carry: Vec<PathBuf>,
    /// Seconds one cell may run in the guest.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    cell_timeout: u64,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Merge matrix.json files (later files win for the same cell) into one report.
    Merge {
        #[arg(required = true, value_name = "FILES")]
        files: Vec<PathBuf>,
        #[arg(long, default_value = "zcsafe-matrix", value_name = "DIR")]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: Args) -> Result<ExitCode> {
    if let Some(Sub::Merge { files, out, json }) = args.merge {
        let parts = files
            .iter()
            .map(|f| report::read(f))
            .collect::<Result<Vec<_>, _>>()?;
        let m = report::merge(&parts);
        return finish(&m, &out, json);
    }
    let catalogue = match &args.catalogue {
        Some(f) => Catalogue::load(f)?,
        None => Catalogue::builtin(),
    };
    let mut o = Options::new(PathBuf::new());
    o.catalogue = catalogue;
    o.kernels = args.kernels.clone();
    if args.policies != "all" {
        o.policies = super::select_policies(std::slice::from_ref(&args.policies))?
            .iter()
            .map(|e| e.name.to_string())
            .collect();
    }
    o.transports = args
        .transports
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    o.nic = Nic::parse(&args.nic)?;
    o.loss_pct = args.loss;
    o.delay_ms = args.delay;
    if let Some(j) = args.jobs {
        o.jobs = j;
    }
    o.accel = AccelChoice::parse(&args.accel)?;
    o.command = args.command.clone();
    if let Some(cmd) = &args.external {
        o.set_external(cmd, args.carry.clone());
    }
    o.refresh = args.refresh;
    o.machine.limits.cell = Duration::from_secs(args.cell_timeout.max(5));
    o.host_binary = std::env::current_exe().ok();
    o.validate()?;
    o.guest_binary = guest_binary(args.guest_binary.clone())?;
    let mut bar = ProgressBar::new("cells");
    let m = matrix::run(&o, |p| match p {
        Progress::Kernel { name, message } => {
            bar.note(&format!("zcsafe: kernel {name}: {message}"))
        }
        Progress::Cell { done, total, cell } => bar.line(
            &format!(
                "[{done:>3}/{total}] {:8} {:10} {:24} {:11} (expected {}) {:6.1} s",
                cell.kernel_name,
                cell.finding.transport,
                cell.finding.policy,
                cell.finding.verdict.name(),
                cell.finding.expected.name(),
                cell.seconds
            ),
            *done,
            *total,
        ),
    })?;
    drop(bar);
    finish(&m, &args.out, args.json)
}

fn finish(m: &matrix::Matrix, out: &std::path::Path, json: bool) -> Result<ExitCode> {
    let files = report::write_all(m, out)?;
    if json {
        println!("{}", serde_json::to_string_pretty(m)?);
    } else {
        print!("{}", report::markdown(m));
    }
    eprintln!(
        "zcsafe: matrix of {} cells in {:.0} s written to {}",
        m.results.len(),
        m.wall_seconds,
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::from(m.exit_code()))
}

/// The statically linked zcsafe for the guests, or a message saying how to build it.
pub(crate) fn guest_binary(explicit: Option<PathBuf>) -> Result<PathBuf> {
    let is_static = |p: &PathBuf| {
        std::fs::read(p)
            .map(|b| initramfs::is_static_elf(&b))
            .unwrap_or(false)
    };
    if let Some(p) = explicit.or_else(|| std::env::var_os("ZCSAFE_GUEST_BIN").map(PathBuf::from)) {
        if !is_static(&p) {
            bail!(
                "guest binary {} is missing or not statically linked",
                p.display()
            );
        }
        return Ok(p);
    }
    let exe = std::env::current_exe().context("locating the zcsafe binary")?;
    if is_static(&exe) {
        return Ok(exe);
    }
    // target/{debug,release}/zcsafe → target/x86_64-unknown-linux-gnu/release/zcsafe
    if let Some(target) = exe.parent().and_then(|d| d.parent()) {
        let p = target.join("x86_64-unknown-linux-gnu/release/zcsafe");
        if is_static(&p) {
            return Ok(p);
        }
    }
    bail!(
        "the guests need a statically linked zcsafe; build it with\n  RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu -p zcsafe-cli\nor pass --guest-binary PATH (or set ZCSAFE_GUEST_BIN)"
    )
}
