//! `zcsafe matrix`: Debian kernels in QEMU × policies × guest transports, one report.
//! `zcsafe matrix merge`: joins per-kernel `matrix.json` files (one CI job per kernel).

use crate::junit::JunitArgs;
use crate::known::{warn_stale, KnownArgs};
use crate::progress::ProgressBar;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use zcsafe_policy::{Align, Table, Verdict};
use zcsafe_vm::matrix::{self, AccelChoice, GuestTransport, Options, Progress};
use zcsafe_vm::qemu::Nic;
use zcsafe_vm::{initramfs, report, Catalogue};

/// The exit statuses, shown by `zcsafe matrix --help` and `run --help` (README, "Usage").
pub(crate) const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  every verdict is as expected
  1  a verdict contradicts its expectation (or the model's prediction), and
     no --known entry accepts it (with `matrix --retries`: on every rerun)
  2  usage error (a bad option or path), or nothing was judged at all (no
     verdict without evidence)
  3  no contradiction, but some cell could not be judged (`error`: the
     infrastructure failed, e.g. a guest panicked or a cell or VM outlived its
     timeout; its evidence and console tail say why)
  4  no contradiction, no error, but some run never exercised the hazard it
     tests (`inconclusive`: nothing was reused while still in flight)";

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, after_help = EXIT_STATUS_HELP)]
pub struct Args {
    #[command(subcommand)]
    merge: Option<Sub>,
    /// Kernels: catalogue names or version prefixes (5.10,7.2), `all` (the default set,
    /// unless --kernel-image is given), `all-rt`, `everything`, plus `host` for the
    /// running kernel (vm/kernels.toml).
    #[arg(long, value_name = "LIST")]
    kernels: Option<String>,
    /// Your own kernel, booted like a catalogue one and named after its `uname -r`: a
    /// bzImage/vmlinuz file (with --modules), a linux-image .deb, or a kernel build tree
    /// (arch/x86/boot/bzImage; its modules installed with `make modules_install` unless
    /// --modules is given). Its profile is probed in the guest.
    #[arg(long, value_name = "PATH")]
    kernel_image: Option<PathBuf>,
    /// The modules of --kernel-image: lib/modules/<release>, or the INSTALL_MOD_PATH
    /// root `make modules_install` installed them into.
    #[arg(long, value_name = "DIR", requires = "kernel_image")]
    modules: Option<PathBuf>,
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
    /// The zcsafe installed in the guests (default: $ZCSAFE_GUEST_BIN, else this very
    /// binary). Static or dynamically linked: a dynamic one brings its shared libraries
    /// and loader along (`make static` builds a static one, if you prefer).
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
    /// `zcsafe run --external`; `{host}` and `{port}` are replaced in the guest). The
    /// program it names first — a path, or a name on PATH — is carried into the guests
    /// with its shared libraries and run from /opt/zcsafe/bin.
    #[arg(long, value_name = "CMD", conflicts_with = "policies")]
    external: Option<String>,
    /// One more file for the guests' PATH (/opt/zcsafe/bin), e.g. a helper the external
    /// sender runs: an executable (static, or dynamically linked: its libraries come
    /// along) or a #!/bin/sh script. Repeatable.
    #[arg(long, value_name = "FILE", requires = "external")]
    carry: Vec<PathBuf>,
    /// Seconds one cell may run in the guest.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    cell_timeout: u64,
    /// Rerun a cell that contradicts its expectation up to N more times in its guest
    /// (only that cell's command) before it counts; one that agrees on a rerun is
    /// reported as agreed after retry (flaky), with every attempt's verdict.
    #[arg(long, default_value_t = 0, value_name = "N")]
    retries: u32,
    #[command(flatten)]
    junit: JunitArgs,
    #[command(flatten)]
    known: KnownArgs,
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
        #[command(flatten)]
        junit: JunitArgs,
        /// Match the merged cells against this known-differences file (as `matrix
        /// --known`; what the parts matched is not kept, a later part may replace a cell).
        #[arg(long, value_name = "FILE")]
        known: Option<PathBuf>,
    },
}

pub fn run(args: Args) -> Result<ExitCode> {
    if let Some(Sub::Merge {
        files,
        out,
        json,
        junit,
        known,
    }) = args.merge
    {
        let known = KnownArgs { known }.load()?;
        let parts = files
            .iter()
            .map(|f| report::read(f))
            .collect::<Result<Vec<_>, _>>()?;
        let mut m = report::merge(&parts);
        if let Some(k) = &known {
            m.apply_known(k);
        }
        return finish(&m, &out, json, &junit);
    }
    let known = args.known.load()?;
    let catalogue = match &args.catalogue {
        Some(f) => Catalogue::load(f)?,
        None => Catalogue::builtin(),
    };
    let mut o = Options::new(PathBuf::new());
    o.catalogue = catalogue;
    o.kernels = match (&args.kernels, &args.kernel_image) {
        (Some(k), _) => k.clone(),
        (None, Some(_)) => String::new(),
        (None, None) => "all".into(),
    };
    if let Some(image) = &args.kernel_image {
        o.user_kernel = Some(
            matrix::UserKernel::resolve(image, args.modules.as_deref(), &o.cache)
                .context("--kernel-image")?,
        );
    }
    if args.policies != "all" {
        o.policies = super::select_policies(std::slice::from_ref(&args.policies))?
            .iter()
            .map(|e| e.name.to_string())
            .collect();
    }
    o.transports = GuestTransport::parse_list(&args.transports).context("--transports")?;
    o.nic = args.nic.parse::<Nic>().context("--nic")?;
    o.loss_pct = args.loss;
    o.delay_ms = args.delay;
    if let Some(j) = args.jobs {
        o.jobs = j;
    }
    o.accel = args.accel.parse::<AccelChoice>().context("--accel")?;
    o.command = args.command.clone();
    if let Some(cmd) = &args.external {
        o.set_external(cmd, args.carry.clone())
            .context("--external")?;
    }
    o.refresh = args.refresh;
    o.retries = args.retries;
    o.machine.limits.cell = Duration::from_secs(args.cell_timeout.max(5));
    o.host_binary = std::env::current_exe().ok();
    o.validate().map_err(option_hints)?;
    o.guest_binary = guest_binary(args.guest_binary.clone())?;
    let mut bar = ProgressBar::new("cells");
    let (progress, widths) = progress_table(&o);
    let m = matrix::run(&o, |p| match p {
        Progress::Kernel { name, message } => {
            bar.note(&format!("zcsafe: kernel {name}: {message}"))
        }
        Progress::Cell { done, total, cell } => bar.line(
            &progress.line(
                &widths,
                &[
                    format!("[{done}/{total}]"),
                    cell.kernel_name.clone(),
                    cell.finding.transport.clone(),
                    cell.finding.policy.clone(),
                    cell.finding.verdict.name().into(),
                    format!("(expected {})", cell.finding.expected.name()),
                    format!("{:.1} s", cell.seconds),
                ],
            ),
            *done,
            *total,
        ),
    })?;
    drop(bar);
    let mut m = m;
    if let Some(k) = &known {
        m.apply_known(k);
    }
    finish(&m, &args.out, args.json, &args.junit)
}

/// The progress lines' table, and its widths from every value a cell can show (lines are
/// printed as cells end, so the widths must be known before the first).
fn progress_table(o: &Options) -> (Table, Vec<usize>) {
    let mut t = Table::new(["", "", "", "", "", "", ""])
        .align(0, Align::Right)
        .align(6, Align::Right);
    // A row with `value` in column `col` only: each column's widest possible value.
    let mut widest = |col: usize, value: String| {
        let mut row = vec![String::new(); col];
        row.push(value);
        t.row(row);
    };
    let n = o.catalogue.kernels.len() * o.transports.len() * o.policies.len().max(1);
    widest(0, format!("[{n}/{n}]"));
    for k in o
        .catalogue
        .kernels
        .iter()
        .map(|k| k.name.as_str())
        .chain(o.user_kernel.iter().map(|u| u.kernel.name.as_str()))
        .chain(["host"])
    {
        widest(1, k.to_string());
    }
    for tr in &o.transports {
        widest(2, tr.to_string());
    }
    for p in o
        .policies
        .iter()
        .map(String::as_str)
        .chain([matrix::EXTERNAL])
    {
        widest(3, p.to_string());
    }
    let longest = Verdict::Unsupported.name();
    widest(4, longest.to_string());
    widest(5, format!("(expected {longest})"));
    widest(6, "9999.9 s".into());
    let widths = t.widths();
    (t, widths)
}

fn finish(
    m: &matrix::Matrix,
    out: &std::path::Path,
    json: bool,
    junit: &JunitArgs,
) -> Result<ExitCode> {
    let files = report::write_all(m, out)?;
    junit.write(|| report::junit(m))?;
    if json {
        println!("{}", serde_json::to_string_pretty(m)?);
        warn_stale(&m.known);
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
    if m.judged() == 0 {
        let why = m
            .results
            .first()
            .map(|c| format!(": the first says {}", c.finding.evidence.detail))
            .unwrap_or_default();
        bail!(
            "no cell was judged ({} cell(s), all `error`{why}); no verdict without evidence",
            m.results.len()
        );
    }
    Ok(ExitCode::from(m.exit_code()))
}

/// The library names the kernel it does not know, or the `Options` field out of range;
/// which flag set it is ours to say (`matrix` and `bench` share `--kernels`, `--jobs`).
pub(crate) fn option_hints(e: zcsafe_vm::VmError) -> anyhow::Error {
    match e {
        zcsafe_vm::VmError::UnknownKernel(..) => {
            anyhow::Error::new(e).context("--kernels takes catalogue names or version prefixes")
        }
        zcsafe_vm::VmError::BadOption { field, message } => {
            let flag = match field {
                "loss_pct" => "loss",
                f => f,
            };
            anyhow::anyhow!("invalid option: --{flag} {message}")
        }
        e => e.into(),
    }
}

/// The zcsafe for the guests: `--guest-binary`, else `$ZCSAFE_GUEST_BIN`, else this very
/// binary — static or not, since the initramfs carries a dynamic binary's libraries.
pub(crate) fn guest_binary(explicit: Option<PathBuf>) -> Result<PathBuf> {
    let p = match explicit.or_else(|| std::env::var_os("ZCSAFE_GUEST_BIN").map(PathBuf::from)) {
        Some(p) => p,
        None => std::env::current_exe().context("locating the zcsafe binary")?,
    };
    let bytes =
        std::fs::read(&p).with_context(|| format!("reading the guest binary {}", p.display()))?;
    if let initramfs::Program::Unrunnable(what) = initramfs::classify(&bytes) {
        bail!(
            "the guest binary {} is {what}; pass a zcsafe built for x86-64 Linux (--guest-binary PATH or ZCSAFE_GUEST_BIN)",
            p.display()
        );
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Progress lines of cells with values of every length start each column at one offset.
    #[test]
    fn progress_lines_line_up() {
        let o = Options::new(PathBuf::new());
        let (t, w) = progress_table(&o);
        let a = t.line(
            &w,
            &[
                "[1/84]",
                "5.10",
                "veth",
                "copy",
                "safe",
                "(expected safe)",
                "6.3 s",
            ],
        );
        let b = t.line(
            &w,
            &[
                "[84/84]",
                "sid-rt",
                "loopback",
                "vmsplice-double-buffer",
                "unsupported",
                "(expected unsupported)",
                "12.5 s",
            ],
        );
        assert_eq!(a.chars().count(), b.chars().count(), "\n{a}\n{b}");
        let pairs = [
            ("5.10", "sid-rt"),
            ("veth", "loopback"),
            ("copy", "vmsplice"),
            ("safe", "unsupported"),
            ("(expected", "(expected"),
        ];
        for (x, y) in pairs {
            assert_eq!(a.find(x), b.find(y), "{x} / {y}:\n{a}\n{b}");
        }
    }
}
