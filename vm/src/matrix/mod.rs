//! The kernel × policy × transport matrix: plan the VMs, run them in parallel, turn what
//! each guest printed (or failed to print) into cells.

use crate::catalogue::Catalogue;
use crate::error::{Result, VmError};
use crate::guest::{Event, Job, JobCell};
use crate::initramfs::{self, Inputs};
use crate::kernel::{Fetcher, Kernel};
use crate::qemu::{Accel, Nic};
use crate::vm::{self, Machine};
use crate::watchdog::{End, Limits, Run};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use zcsafe_policy::{Evidence, Finding, Results, TransportClass, Verdict};

/// Bumped when `matrix.json` changes incompatibly.
pub const MATRIX_FORMAT: u32 = 1;

/// Transports a guest offers. `veth-lossy`/`veth-slow` are passed to `zcsafe run` as is.
pub const GUEST_TRANSPORTS: &[&str] = &["loopback", "veth", "veth-lossy", "veth-slow", "remote"];

/// The command each cell runs in the guest; `{policy}` and `{transport}` are substituted.
pub const DEFAULT_COMMAND: &str = "zcsafe run --policy {policy} --transport {transport} --json";

/// The policy name of cells that judge a user's sender program (`--external`).
pub const EXTERNAL: &str = "external";

/// Where carried programs live in the guest (first on its `PATH`).
pub const GUEST_BIN_DIR: &str = "/opt/zcsafe/bin";

/// The cell command for `--external CMD`: the guest's zcsafe runs the user's sender.
pub fn external_command(cmd: &str) -> String {
    format!(
        "zcsafe run --external '{}' --transport {{transport}} --json",
        cmd.replace('\'', "'\\''")
    )
}

/// The program an `--external` command runs, found on this host so it can be carried into
/// the guests: the first word after any `NAME=value` assignments, when it is a path to a
/// file (it has a `/`) or a name on `PATH` that the guest does not already have (busybox's
/// applets, `zcsafe`). Returns the host file and the command with that word replaced by
/// its guest path (`/opt/zcsafe/bin/NAME`), or `None` when there is nothing to carry
/// (a guest command, a shell construct, a name only `--carry` provides).
pub fn external_program(
    cmd: &str,
    guest_has: &dyn Fn(&str) -> bool,
) -> Result<Option<(PathBuf, String)>> {
    let mut at = 0;
    let word = loop {
        let rest = &cmd[at..];
        let skip = rest.len() - rest.trim_start().len();
        let start = at + skip;
        let len = cmd[start..]
            .find(char::is_whitespace)
            .unwrap_or(cmd.len() - start);
        if len == 0 {
            return Ok(None);
        }
        let w = &cmd[start..start + len];
        let assignment = w.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if !assignment {
            break (start, w);
        }
        at = start + len;
    };
    let (start, w) = word;
    // Quoting, expansions, redirections, placeholders: the shell's business, not a file name.
    if w.chars().any(|c| "'\"\\$`;|&()<>{}*?[]~".contains(c)) {
        return Ok(None);
    }
    let host = if w.contains('/') {
        let p = PathBuf::from(w);
        if !p.is_file() {
            return Err(VmError::Usage(format!(
                "--external runs `{w}`, which is not a file (paths are relative to {}); pass the sender's path, or a program on PATH",
                std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default()
            )));
        }
        p
    } else if guest_has(w) {
        return Ok(None);
    } else {
        match find_on_path(w) {
            Some(p) => p,
            None => return Ok(None),
        }
    };
    let name = host
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let guest = format!("{GUEST_BIN_DIR}/{name}");
    let command = format!("{}{guest}{}", &cmd[..start], &cmd[start + w.len()..]);
    Ok(Some((host, command)))
}

/// An executable file named `name` in a directory of `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Commands every guest has without carrying: busybox's applets (`busybox --list`) and
/// `zcsafe` itself.
pub fn guest_commands(busybox: &std::path::Path) -> Vec<String> {
    let mut c = std::process::Command::new(busybox);
    c.arg("--list");
    let mut out: Vec<String> = crate::process::run(c, Duration::from_secs(10), "busybox --list")
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    out.push("zcsafe".into());
    out
}

/// How to choose the accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccelChoice {
    Tcg,
    Kvm,
    /// KVM if a probe boot under KVM reaches userspace, else TCG.
    Auto,
}

impl AccelChoice {
    pub fn parse(s: &str) -> Result<AccelChoice> {
        match s {
            "tcg" => Ok(AccelChoice::Tcg),
            "kvm" => Ok(AccelChoice::Kvm),
            "auto" => Ok(AccelChoice::Auto),
            _ => Err(VmError::Usage(format!(
                "--accel takes tcg, kvm or auto, not `{s}`"
            ))),
        }
    }
}

/// Everything a matrix run needs.
#[derive(Clone, Debug)]
pub struct Options {
    pub catalogue: Catalogue,
    /// `--kernels` list (see [`Catalogue::select`]); `host` adds the running kernel.
    pub kernels: String,
    pub policies: Vec<String>,
    pub transports: Vec<String>,
    pub nic: Nic,
    pub loss_pct: Option<f64>,
    pub delay_ms: Option<u32>,
    pub jobs: usize,
    /// The binary installed as `/bin/zcsafe` in the guest (static or dynamically linked:
    /// its libraries are carried along).
    pub guest_binary: PathBuf,
    /// The binary that runs the host cells (`--kernels host`), normally zcsafe itself.
    pub host_binary: Option<PathBuf>,
    /// Cell command template, see [`DEFAULT_COMMAND`].
    pub command: String,
    pub machine: Machine,
    pub accel: AccelChoice,
    pub cache: PathBuf,
    pub refresh: bool,
    /// Files carried into the guest's `/opt/zcsafe/bin` (`--carry`).
    pub carry: Vec<PathBuf>,
    /// The user's sender command (`--external`) as given, if the cells judge it instead of
    /// policies; host cells run it as it is.
    pub external: Option<String>,
    /// The program `external` names, carried as well (see [`external_program`]).
    pub external_program: Option<PathBuf>,
    /// Keep each cell's stdout in [`Cell::output`]: for commands that print more than a
    /// verdict (`zcsafe bench --kernels` reads its measurements from there).
    pub keep_output: bool,
}

impl Options {
    pub fn new(guest_binary: PathBuf) -> Options {
        Options {
            catalogue: Catalogue::builtin(),
            kernels: "all".into(),
            policies: zcsafe_policies::catalogue()
                .iter()
                .map(|e| e.name.to_string())
                .collect(),
            transports: vec!["loopback".into(), "veth".into(), "remote".into()],
            nic: Nic::Virtio,
            loss_pct: None,
            delay_ms: None,
            jobs: default_jobs(),
            guest_binary,
            host_binary: None,
            command: DEFAULT_COMMAND.into(),
            machine: Machine::default(),
            accel: AccelChoice::Tcg,
            cache: crate::kernel::cache_dir(),
            refresh: false,
            carry: vec![],
            external: None,
            external_program: None,
            keep_output: false,
        }
    }

    /// Judge the user's sender `cmd` (with `carry`, more files for the guests) instead of
    /// the policies. The program `cmd` names is carried too and the guests run it from
    /// [`GUEST_BIN_DIR`]; an error when `cmd` names a path that is not a file.
    pub fn set_external(&mut self, cmd: &str, carry: Vec<PathBuf>) -> Result<()> {
        let busybox = std::env::var_os("ZCSAFE_BUSYBOX").unwrap_or_else(|| "/bin/busybox".into());
        let guest = guest_commands(std::path::Path::new(&busybox));
        let found = external_program(cmd, &|w| guest.iter().any(|g| g == w))?;
        self.policies = vec![EXTERNAL.to_string()];
        self.command = external_command(found.as_ref().map_or(cmd, |(_, c)| c));
        self.external = Some(cmd.to_string());
        self.external_program = found.map(|(p, _)| p);
        self.carry = carry;
        Ok(())
    }

    /// Everything carried into the guests' [`GUEST_BIN_DIR`].
    pub fn carried(&self) -> Vec<PathBuf> {
        let mut all = self.carry.clone();
        all.extend(self.external_program.clone());
        all
    }

    /// netem arguments for the sender NIC of the `remote` transport.
    pub fn netem(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(d) = self.delay_ms.filter(|d| *d > 0) {
            parts.push(format!("delay {d}ms"));
        }
        if let Some(l) = self.loss_pct.filter(|l| *l > 0.0) {
            parts.push(format!("loss {l}%"));
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    pub fn validate(&self) -> Result<()> {
        for t in &self.transports {
            if !GUEST_TRANSPORTS.contains(&t.as_str()) {
                return Err(VmError::Usage(format!(
                    "unknown transport `{t}`; guests offer {}",
                    GUEST_TRANSPORTS.join(", ")
                )));
            }
        }
        for p in &self.policies {
            if zcsafe_policies::find(p).is_none() && p != "vm-selftest" && p != EXTERNAL {
                return Err(VmError::Usage(format!(
                    "unknown policy `{p}` (see `zcsafe policies`)"
                )));
            }
        }
        if let Some(l) = self.loss_pct {
            if !(0.0..=100.0).contains(&l) {
                return Err(VmError::Usage(format!("--loss {l}: a percentage 0..100")));
            }
        }
        if self.jobs == 0 {
            return Err(VmError::Usage("--jobs must be at least 1".into()));
        }
        if self.policies.is_empty() || self.transports.is_empty() {
            return Err(VmError::Usage("no policies or transports selected".into()));
        }
        self.catalogue.select(&self.kernels)?;
        Ok(())
    }

    /// The command that reruns one cell.
    pub fn rerun(&self, kernel: &str, policy: &str, transport: &str) -> String {
        let mut s = match &self.external {
            Some(cmd) => {
                let mut s = format!(
                    "zcsafe matrix --kernels {kernel} --external '{}'",
                    cmd.replace('\'', "'\\''")
                );
                for c in &self.carry {
                    s += &format!(" --carry {}", c.display());
                }
                s + &format!(" --transports {transport}")
            }
            None => format!(
                "zcsafe matrix --kernels {kernel} --policies {policy} --transports {transport}"
            ),
        };
        if transport == "remote" {
            s += &format!(" --nic {}", self.nic.name());
            if let Some(l) = self.loss_pct.filter(|l| *l > 0.0) {
                s += &format!(" --loss {l}");
            }
            if let Some(d) = self.delay_ms.filter(|d| *d > 0) {
                s += &format!(" --delay {d}");
            }
        }
        s
    }
}

/// VMs in parallel: one per core, at least one (TCG uses one host thread per vCPU).
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .max(1)
}

/// One cell of the matrix: a [`Finding`] plus where and how it was obtained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    #[serde(flatten)]
    pub finding: Finding,
    /// Catalogue name of the kernel (`5.10`, `sid-rt`, `host`).
    pub kernel_name: String,
    /// Debian package version, when known.
    #[serde(default)]
    pub kernel_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netem: Option<String>,
    /// Time the cell's command ran (guest clock as seen from the host).
    pub seconds: f64,
    /// The command that reruns this cell.
    pub rerun: String,
    /// Console tail, for cells that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_tail: Option<String>,
    /// The command's stdout lines, with [`Options::keep_output`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<String>,
}

/// One kernel's part of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KernelRun {
    pub name: String,
    pub suite: String,
    /// `uname -r`.
    pub release: String,
    pub version: String,
    /// Host seconds from QEMU start to the guest's init, one per VM.
    pub boot_seconds: Vec<f64>,
    /// Why the kernel could not run at all (fetch, initramfs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A whole matrix, as written to `matrix.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    pub format: u32,
    /// The cells; the field is named as in every command's `--json`.
    pub results: Vec<Cell>,
    pub kernels: Vec<KernelRun>,
    pub accel: String,
    pub wall_seconds: f64,
}

impl Matrix {
    /// 2 when no cell was judged at all (no verdict without evidence, see
    /// [`Matrix::judged`]); otherwise [`Results::exit_code`]: 1 a verdict contradicts its
    /// expectation, 3 some cell could not be judged (`error`), 0 all as expected.
    pub fn exit_code(&self) -> u8 {
        if self.judged() == 0 {
            2
        } else {
            self.findings().exit_code()
        }
    }

    /// Cells with a verdict: every cell that is not an `error`.
    pub fn judged(&self) -> usize {
        self.results
            .iter()
            .filter(|c| c.finding.verdict != Verdict::Error)
            .count()
    }

    pub fn findings(&self) -> Results {
        Results {
            results: self.results.iter().map(|c| c.finding.clone()).collect(),
        }
    }
}

/// A progress report, sent as cells finish.
#[derive(Clone, Debug)]
pub enum Progress {
    Kernel {
        name: String,
        message: String,
    },
    Cell {
        done: usize,
        total: usize,
        cell: Box<Cell>,
    },
}

fn expectation(policy: &str, transport: &str) -> (Verdict, String) {
    let class = if transport == "remote" {
        TransportClass::Remote
    } else {
        TransportClass::Local
    };
    match zcsafe_policies::find(policy) {
        Some(e) => {
            let x = e.expect(class, &zcsafe_policy::Profile::classic());
            (x.verdict, x.why.to_string())
        }
        None if policy == EXTERNAL => (
            Verdict::Safe,
            "an external sender must deliver the stream intact".into(),
        ),
        None => (
            Verdict::Safe,
            "transport self-test: an untouched buffer always arrives intact".into(),
        ),
    }
}

/// An `error` cell: the run itself failed.
fn error_cell(
    opts: &Options,
    k: &KernelRun,
    policy: &str,
    transport: &str,
    detail: String,
    tail: Option<String>,
) -> Cell {
    let (expected, expected_why) = expectation(policy, transport);
    Cell {
        finding: Finding {
            policy: policy.into(),
            transport: transport.into(),
            backend: "vm".into(),
            kernel: (!k.release.is_empty()).then(|| k.release.clone()),
            verdict: Verdict::Error,
            expected,
            expected_why,
            predicted: None,
            evidence: Evidence {
                detail,
                trace: None,
                counts: Default::default(),
            },
        },
        kernel_name: k.name.clone(),
        kernel_version: k.version.clone(),
        nic: (transport == "remote").then(|| opts.nic.name().to_string()),
        netem: if transport == "remote" {
            opts.netem()
        } else {
            None
        },
        seconds: 0.0,
        rerun: opts.rerun(&k.name, policy, transport),
        console_tail: tail,
        output: Vec::new(),
    }
}

/// The findings in a command's output: `{"results":[…]}` objects or bare findings, each
/// on one line or pretty-printed over several; other output is skipped.
pub fn parse_findings(lines: &[String]) -> Vec<Finding> {
    let text = lines.join("\n");
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(off) = text[pos..].find('{') {
        let start = pos + off;
        let mut it =
            serde_json::Deserializer::from_str(&text[start..]).into_iter::<serde_json::Value>();
        match it.next() {
            Some(Ok(v)) => {
                pos = start + it.byte_offset();
                if let Ok(r) = serde_json::from_value::<Results>(v.clone()) {
                    out.extend(r.results);
                } else if let Ok(f) = serde_json::from_value::<Finding>(v) {
                    out.push(f);
                }
            }
            _ => pos = start + 1,
        }
    }
    out
}

/// A unit of work: one VM.
struct Unit {
    kernel: usize,
    transport: String,
}

/// Runs the matrix. `progress` is called on the calling thread as cells finish.
pub fn run(opts: &Options, mut progress: impl FnMut(&Progress)) -> Result<Matrix> {
    opts.validate()?;
    crate::process::install_interrupt_handler();
    let started = Instant::now();
    let entries = opts.catalogue.select(&opts.kernels)?;
    let include_host = opts.kernels.split(',').any(|t| t.trim() == "host");
    let mut fetcher = Fetcher::new(opts.cache.clone(), &opts.catalogue);
    fetcher.refresh = opts.refresh;
    let mut inputs = Inputs::new(opts.guest_binary.clone());
    inputs.extra = opts.carried();
    let init = crate::guest::init_script();

    // Fetch kernels and build images first: network and disk, one at a time.
    let mut kernels: Vec<KernelRun> = Vec::new();
    let mut images: Vec<Option<(Kernel, PathBuf)>> = Vec::new();
    for e in &entries {
        if crate::process::interrupted() {
            return Err(VmError::Interrupted);
        }
        progress(&Progress::Kernel {
            name: e.name.clone(),
            message: "fetching".into(),
        });
        let prepared = fetcher.fetch(e).and_then(|k| {
            let img = initramfs::build(&k, &inputs, &init, &opts.cache)?;
            Ok((k, img))
        });
        match prepared {
            Ok((k, img)) => {
                progress(&Progress::Kernel {
                    name: e.name.clone(),
                    message: format!(
                        "{} ({}), initramfs {}{}",
                        k.release,
                        k.version,
                        if img.rebuilt { "built" } else { "cached" },
                        if img.missing.is_empty() {
                            String::new()
                        } else {
                            format!(
                                ", no module file for {} (built in, or not in this kernel)",
                                img.missing.join(" ")
                            )
                        }
                    ),
                });
                kernels.push(KernelRun {
                    name: e.name.clone(),
                    suite: e.suite.clone(),
                    release: k.release.clone(),
                    version: k.version.clone(),
                    boot_seconds: vec![],
                    error: None,
                });
                images.push(Some((k, img.path)));
            }
            Err(VmError::Interrupted) => return Err(VmError::Interrupted),
            Err(err @ (VmError::MissingTool { .. } | VmError::Usage(_))) => return Err(err),
            Err(err) => {
                progress(&Progress::Kernel {
                    name: e.name.clone(),
                    message: format!("error: {err}"),
                });
                kernels.push(KernelRun {
                    name: e.name.clone(),
                    suite: e.suite.clone(),
                    release: String::new(),
                    version: String::new(),
                    boot_seconds: vec![],
                    error: Some(err.to_string()),
                });
                images.push(None);
            }
        }
    }

    let mut machine = opts.machine.clone();
    machine.accel = choose_accel(opts, &images);

    let total =
        (kernels.len() + usize::from(include_host)) * opts.policies.len() * opts.transports.len();
    let mut cells: Vec<Cell> = Vec::new();
    let mut done = 0usize;
    let mut units = Vec::new();
    for (i, img) in images.iter().enumerate() {
        for t in &opts.transports {
            if img.is_some() {
                units.push(Unit {
                    kernel: i,
                    transport: t.clone(),
                });
            } else {
                for p in &opts.policies {
                    let detail = format!(
                        "kernel not available: {}",
                        kernels[i].error.clone().unwrap_or_default()
                    );
                    let c = error_cell(opts, &kernels[i], p, t, detail, None);
                    done += 1;
                    progress(&Progress::Cell {
                        done,
                        total,
                        cell: Box::new(c.clone()),
                    });
                    cells.push(c);
                }
            }
        }
    }

    // Workers boot VMs; this thread reports progress.
    let queue = Arc::new(Mutex::new(
        units.into_iter().collect::<std::collections::VecDeque<_>>(),
    ));
    let (tx, rx) = mpsc::channel::<Msg>();
    let snapshot = kernels.clone();
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.min(queue.lock().unwrap().len().max(1)) {
            let queue = Arc::clone(&queue);
            let tx = tx.clone();
            let images = &images;
            let kernels = &snapshot;
            let machine = &machine;
            s.spawn(move || loop {
                let Some(u) = queue.lock().unwrap().pop_front() else {
                    break;
                };
                if crate::process::interrupted() {
                    break;
                }
                let (k, img) = images[u.kernel]
                    .as_ref()
                    .expect("units only for prepared kernels");
                run_unit(opts, machine, &kernels[u.kernel], k, img, &u, &tx);
            });
        }
        drop(tx);
        for msg in rx {
            match msg {
                Msg::Cell(c) => {
                    done += 1;
                    progress(&Progress::Cell {
                        done,
                        total,
                        cell: c.clone(),
                    });
                    cells.push(*c);
                }
                Msg::Boot(name, secs) => {
                    if let Some(k) = kernels.iter_mut().find(|k| k.name == name) {
                        k.boot_seconds.push(secs);
                    }
                }
            }
        }
    });
    if crate::process::interrupted() {
        return Err(VmError::Interrupted);
    }

    if include_host {
        let k = host_kernel_run();
        for t in &opts.transports {
            for p in &opts.policies {
                let c = run_host_cell(opts, &k, p, t);
                done += 1;
                progress(&Progress::Cell {
                    done,
                    total,
                    cell: Box::new(c.clone()),
                });
                cells.push(c);
            }
        }
        kernels.push(k);
    }

    align_error_expectations(&mut cells);
    sort_cells(&mut cells, &kernels, opts);
    Ok(Matrix {
        format: MATRIX_FORMAT,
        results: cells,
        kernels,
        accel: machine.accel.name().into(),
        wall_seconds: started.elapsed().as_secs_f64(),
    })
}

enum Msg {
    Cell(Box<Cell>),
    Boot(String, f64),
}

/// Error cells know only the catalogue's expectation for the classic profile; where a
/// guest answered for the same policy and transport, its (profile-aware) expectation is
/// the one the row shows, so a row never mixes two expectations.
fn align_error_expectations(cells: &mut [Cell]) {
    let answered: Vec<(String, String, Verdict, String)> = cells
        .iter()
        .filter(|c| c.finding.verdict != Verdict::Error)
        .map(|c| {
            (
                c.finding.policy.clone(),
                c.finding.transport.clone(),
                c.finding.expected,
                c.finding.expected_why.clone(),
            )
        })
        .collect();
    for c in cells
        .iter_mut()
        .filter(|c| c.finding.verdict == Verdict::Error)
    {
        if let Some((_, _, e, why)) = answered
            .iter()
            .find(|(p, t, _, _)| *p == c.finding.policy && *t == c.finding.transport)
        {
            c.finding.expected = *e;
            c.finding.expected_why = why.clone();
        }
    }
}

/// Catalogue order of kernels, then the order of the options' transports and policies.
fn sort_cells(cells: &mut [Cell], kernels: &[KernelRun], opts: &Options) {
    let pos = |v: &[String], x: &str| v.iter().position(|y| y == x).unwrap_or(usize::MAX);
    let kn: Vec<String> = kernels.iter().map(|k| k.name.clone()).collect();
    cells.sort_by_key(|c| {
        (
            pos(&kn, &c.kernel_name),
            pos(&opts.transports, &c.finding.transport),
            pos(&opts.policies, &c.finding.policy),
        )
    });
}

fn choose_accel(opts: &Options, images: &[Option<(Kernel, PathBuf)>]) -> Accel {
    match opts.accel {
        AccelChoice::Tcg => Accel::Tcg,
        AccelChoice::Kvm => Accel::Kvm,
        AccelChoice::Auto => {
            let Some((k, img)) = images.iter().flatten().next() else {
                return Accel::Tcg;
            };
            if crate::qemu::kvm_device_usable() && probe_kvm(opts, k, img) {
                Accel::Kvm
            } else {
                Accel::Tcg
            }
        }
    }
}

/// Boots `k` under KVM with an empty job: KVM "works" only if the guest reaches init.
pub fn probe_kvm(opts: &Options, k: &Kernel, img: &std::path::Path) -> bool {
    let machine = Machine {
        accel: Accel::Kvm,
        limits: Limits {
            boot: Duration::from_secs(20),
            cell: Duration::from_secs(10),
            total: Duration::from_secs(40),
        },
        ..opts.machine.clone()
    };
    vm::boot(&machine, &k.vmlinuz, img, &Job::default(), None, |_, _| {})
        .map(|r| r.release().is_some())
        .unwrap_or(false)
}

fn run_unit(
    opts: &Options,
    machine: &Machine,
    kr: &KernelRun,
    k: &Kernel,
    img: &std::path::Path,
    u: &Unit,
    tx: &mpsc::Sender<Msg>,
) {
    let remote = u.transport == "remote";
    let job = Job {
        env: vec![],
        remote,
        netem: if remote { opts.netem() } else { None },
        cells: opts
            .policies
            .iter()
            .enumerate()
            .map(|(id, p)| JobCell {
                id,
                command: opts
                    .command
                    .replace("{policy}", p)
                    .replace("{transport}", &u.transport),
            })
            .collect(),
    };
    // Cells are reported as soon as the guest ends them.
    let mut lines: Vec<String> = Vec::new();
    let mut begun: Option<(usize, Duration)> = None;
    let mut notes: Vec<String> = Vec::new();
    let mut finished: BTreeMap<usize, ()> = BTreeMap::new();
    let mut release = kr.release.clone();
    let mut held: Vec<Cell> = Vec::new();
    let cell_for = |id: usize,
                    status: Option<i32>,
                    lines: &[String],
                    secs: f64,
                    notes: &[String],
                    release: &str,
                    tail: Option<String>|
     -> Cell {
        let policy = &opts.policies[id];
        let mut kr = kr.clone();
        kr.release = release.to_string();
        let found = parse_findings(lines);
        let pick = found
            .iter()
            .find(|f| &f.policy == policy && f.transport == u.transport)
            .or(found.first());
        match (pick, status) {
            (Some(f), _) => {
                let mut f = f.clone();
                f.kernel = Some(release.to_string());
                f.backend = if f.backend == "kernel" {
                    "vm".into()
                } else {
                    f.backend
                };
                Cell {
                    finding: f,
                    kernel_name: kr.name.clone(),
                    kernel_version: kr.version.clone(),
                    nic: remote.then(|| opts.nic.name().to_string()),
                    netem: job_netem(opts, remote),
                    seconds: secs,
                    rerun: opts.rerun(&kr.name, policy, &u.transport),
                    console_tail: None,
                    output: kept(opts, lines),
                }
            }
            (None, Some(124 | 143)) => {
                let mut c = error_cell(
                    opts,
                    &kr,
                    policy,
                    &u.transport,
                    format!(
                        "the cell ran longer than {} s and was stopped in the guest",
                        opts.machine.limits.cell.as_secs()
                    ),
                    tail,
                );
                c.seconds = secs;
                c
            }
            (None, st) => {
                let mut detail = match st {
                    Some(s) => {
                        format!("the guest command exited with status {s} without a JSON result")
                    }
                    None => "the guest never finished the cell".to_string(),
                };
                if !notes.is_empty() {
                    detail += &format!(" ({})", notes.join("; "));
                }
                let mut c = error_cell(opts, &kr, policy, &u.transport, detail, tail);
                c.seconds = secs;
                c
            }
        }
    };
    let mut on_event = |t: Duration, ev: &Event| match ev {
        Event::Boot { release: r, .. } => release = r.clone(),
        Event::SetupFailed(m) => notes.push(format!("setup failed: {m}")),
        Event::ModuleFailed(m) => notes.push(format!("module failed: {m}")),
        Event::CellBegin(id) => {
            begun = Some((*id, t));
            lines.clear();
        }
        Event::Line(l) => lines.push(l.clone()),
        Event::CellEnd { id, status } if *id < opts.policies.len() => {
            let secs = begun.map(|(_, b)| (t - b).as_secs_f64()).unwrap_or(0.0);
            finished.insert(*id, ());
            let mut c = cell_for(*id, Some(*status), &lines, secs, &notes, &release, None);
            if c.finding.verdict == Verdict::Error {
                // Failed cells wait for the console tail, known when the VM ends.
                let out = crate::process::tail(&lines.join("\n"), 1000);
                if !out.trim().is_empty() {
                    c.finding.evidence.detail += &format!("; its output ended with: {out}");
                }
                held.push(c);
            } else {
                let _ = tx.send(Msg::Cell(Box::new(c)));
            }
            begun = None;
        }
        _ => {}
    };
    // A kernel that dies before userspace (rare TCG boot flakes) gets a second boot;
    // once a guest ran a cell, its outcome stands.
    let mut result = vm::boot(
        machine,
        &k.vmlinuz,
        img,
        &job,
        Some(opts.nic),
        &mut on_event,
    );
    let mut retried = None;
    // Also when the kernel died before any cell began (6.12 under TCG crashes now and
    // then while loading modules): no result is lost by booting again.
    let before_cells = |r: &Run| {
        !r.events
            .iter()
            .any(|(_, e)| matches!(e, Event::CellBegin(_)))
    };
    if matches!(&result, Ok(r) if r.end != End::Completed && before_cells(r)) {
        if let Ok(first) = &result {
            retried = Some(format!(
                "a first boot failed and was retried: {}",
                end_text(&first.end)
            ));
        }
        result = vm::boot(
            machine,
            &k.vmlinuz,
            img,
            &job,
            Some(opts.nic),
            &mut on_event,
        );
    }
    notes.extend(retried);
    let (why, tail) = match result {
        Ok(Run {
            end: End::Completed,
            boot_seconds,
            console_tail,
            ..
        }) => {
            if let Some(b) = boot_seconds {
                let _ = tx.send(Msg::Boot(kr.name.clone(), b));
            }
            (None, Some(console_tail))
        }
        Ok(run) => {
            if let Some(b) = run.boot_seconds {
                let _ = tx.send(Msg::Boot(kr.name.clone(), b));
            }
            let why = end_text(&run.end);
            (Some(why), Some(run.console_tail))
        }
        Err(e) => (Some(e.to_string()), None),
    };
    for mut c in held {
        c.console_tail = tail.clone();
        let _ = tx.send(Msg::Cell(Box::new(c)));
    }
    for (id, policy) in opts.policies.iter().enumerate() {
        if finished.contains_key(&id) {
            continue;
        }
        let mut kr = kr.clone();
        kr.release = release.clone();
        let mut detail = why
            .clone()
            .unwrap_or_else(|| "the guest finished without running this cell".into());
        if !notes.is_empty() {
            detail += &format!(" ({})", notes.join("; "));
        }
        let c = error_cell(opts, &kr, policy, &u.transport, detail, tail.clone());
        let _ = tx.send(Msg::Cell(Box::new(c)));
    }
}

/// A cell's output lines, if the options keep them.
fn kept(opts: &Options, lines: &[String]) -> Vec<String> {
    if opts.keep_output {
        lines.to_vec()
    } else {
        Vec::new()
    }
}

fn end_text(e: &End) -> String {
    match e {
        End::Exited(m) | End::Timeout(m) => m.clone(),
        End::Completed => "completed".into(),
    }
}

fn job_netem(opts: &Options, remote: bool) -> Option<String> {
    if remote {
        opts.netem()
    } else {
        None
    }
}

fn host_kernel_run() -> KernelRun {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    KernelRun {
        name: "host".into(),
        suite: "host".into(),
        release,
        version: String::new(),
        boot_seconds: vec![],
        error: None,
    }
}

/// A host cell: the same command, run directly on this machine.
fn run_host_cell(opts: &Options, k: &KernelRun, policy: &str, transport: &str) -> Cell {
    if transport == "remote" {
        let mut c = error_cell(
            opts,
            k,
            policy,
            transport,
            "the host has no remote transport (it needs two NICs); see the VM kernels".into(),
            None,
        );
        c.finding.verdict = Verdict::Unsupported;
        return c;
    }
    let Some(bin) = &opts.host_binary else {
        return error_cell(
            opts,
            k,
            policy,
            transport,
            "no host binary to run the host kernel's cells".into(),
            None,
        );
    };
    let command = opts
        .command
        .replace("{policy}", policy)
        .replace("{transport}", transport);
    let mut c = std::process::Command::new(bin);
    match &opts.external {
        // The user's command as given: the host has the program where the user named it.
        Some(cmd) => {
            c.args(["run", "--external", cmd, "--transport", transport, "--json"]);
        }
        None => {
            c.args(command.split_whitespace().skip(1));
        }
    }
    let t = Instant::now();
    let out = crate::process::run(c, opts.machine.limits.cell, &command);
    let secs = t.elapsed().as_secs_f64();
    match out {
        Ok(o) => {
            let lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            let found = parse_findings(&lines);
            match found.into_iter().find(|f| f.policy == policy) {
                Some(mut f) => {
                    f.kernel = Some(k.release.clone());
                    Cell {
                        finding: f,
                        kernel_name: "host".into(),
                        kernel_version: String::new(),
                        nic: None,
                        netem: None,
                        seconds: secs,
                        rerun: opts.rerun("host", policy, transport),
                        console_tail: None,
                        output: kept(opts, &lines),
                    }
                }
                None => error_cell(
                    opts,
                    k,
                    policy,
                    transport,
                    format!("`{command}` exited {} without a JSON result", o.status),
                    Some(crate::process::tail(
                        &String::from_utf8_lossy(&o.stderr),
                        2000,
                    )),
                ),
            }
        }
        Err(e) => error_cell(opts, k, policy, transport, e.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_are_read_from_results_and_bare_lines() {
        let f = r#"{"policy":"copy","transport":"veth","backend":"kernel","verdict":"safe","expected":"safe","expected_why":"x","evidence":{"detail":"ok"}}"#;
        let lines = vec![
            "noise".to_string(),
            format!("{{\"results\":[{f}]}}"),
            f.to_string(),
            "{not json".to_string(),
        ];
        let got = parse_findings(&lines);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].policy, "copy");
        // Pretty-printed over several lines, after some noise.
        let pretty = serde_json::to_string_pretty(&Results {
            results: vec![got[0].clone()],
        })
        .unwrap();
        let mut lines: Vec<String> = vec!["progress {".into()];
        lines.extend(pretty.lines().map(str::to_string));
        assert_eq!(parse_findings(&lines).len(), 1);
    }

    #[test]
    fn error_cells_take_the_expectation_of_answered_cells() {
        let o = Options::new("/x".into());
        let k = host_kernel_run();
        let mut answered = error_cell(&o, &k, "zc-inorder-tracker", "veth", "ok".into(), None);
        answered.finding.verdict = Verdict::Safe;
        answered.finding.expected = Verdict::Safe;
        answered.finding.expected_why = "probed".into();
        let failed = error_cell(&o, &k, "zc-inorder-tracker", "veth", "died".into(), None);
        let other = error_cell(&o, &k, "zc-inorder-tracker", "remote", "died".into(), None);
        let before = other.finding.expected;
        let mut cells = vec![answered, failed, other];
        align_error_expectations(&mut cells);
        assert_eq!(cells[1].finding.expected, Verdict::Safe);
        assert_eq!(cells[1].finding.expected_why, "probed");
        assert_eq!(cells[2].finding.expected, before);
    }

    #[test]
    fn options_validate_and_rerun() {
        let mut o = Options::new("/nonexistent".into());
        o.kernels = "5.10".into();
        o.policies = vec!["zc-naive".into()];
        o.transports = vec!["remote".into()];
        o.loss_pct = Some(1.5);
        o.delay_ms = Some(10);
        o.validate().unwrap();
        assert_eq!(o.netem().as_deref(), Some("delay 10ms loss 1.5%"));
        assert_eq!(
            o.rerun("5.10", "zc-naive", "remote"),
            "zcsafe matrix --kernels 5.10 --policies zc-naive --transports remote --nic virtio --loss 1.5 --delay 10"
        );
        // A name only --carry provides is left to the guest's PATH.
        o.set_external("zcsafe-no-such-sender {host} {port}", vec!["/x/snd".into()])
            .unwrap();
        assert_eq!(o.policies, [EXTERNAL]);
        assert!(o.command.starts_with(
            "zcsafe run --external 'zcsafe-no-such-sender {host} {port}' --transport {transport}"
        ));
        assert_eq!(o.carried(), [PathBuf::from("/x/snd")]);
        assert!(o
            .rerun("6.1", EXTERNAL, "veth")
            .contains("--carry /x/snd --transports veth"));
        assert!(o
            .set_external("./no/such/snd {host} {port}", vec![])
            .is_err());
        o.transports = vec!["wifi".into()];
        assert!(o.validate().is_err());
        o.transports = vec!["veth".into()];
        o.policies = vec!["nope".into()];
        assert!(o.validate().is_err());
        o.policies = vec!["copy".into()];
        o.kernels = "3.2".into();
        assert!(matches!(o.validate(), Err(VmError::UnknownKernel(..))));
    }

    #[test]
    fn the_program_an_external_command_names_is_carried_by_its_guest_path() {
        let t = tempfile::tempdir().unwrap();
        let snd = t.path().join("zc_sender");
        std::fs::write(&snd, "#!/bin/sh\n").unwrap();
        let none = |_: &str| false;
        let cmd = format!("{} {{host}} {{port}} --mode zc-wait", snd.display());
        let (host, guest) = external_program(&cmd, &none).unwrap().unwrap();
        assert_eq!(host, snd);
        assert_eq!(
            guest,
            "/opt/zcsafe/bin/zc_sender {host} {port} --mode zc-wait"
        );
        // After environment assignments, too.
        let cmd = format!("A=1 B_2=x  {} {{host}}", snd.display());
        let (_, guest) = external_program(&cmd, &none).unwrap().unwrap();
        assert_eq!(guest, "A=1 B_2=x  /opt/zcsafe/bin/zc_sender {host}");
        // A name on PATH (ls), unless the guest has it already.
        let (host, guest) = external_program("ls -l", &none).unwrap().unwrap();
        assert!(host.ends_with("ls") && host.is_absolute(), "{host:?}");
        assert_eq!(guest, "/opt/zcsafe/bin/ls -l");
        assert_eq!(external_program("ls -l", &|w| w == "ls").unwrap(), None);
        // Shell constructs and unknown names are left alone; a missing path is an error.
        assert_eq!(external_program("$SENDER {host}", &none).unwrap(), None);
        assert_eq!(external_program("'my sender' {host}", &none).unwrap(), None);
        assert_eq!(
            external_program("zcsafe-no-such-program", &none).unwrap(),
            None
        );
        assert_eq!(external_program("   ", &none).unwrap(), None);
        let e = external_program("./nope {host}", &none).unwrap_err();
        assert!(e.to_string().contains("not a file"), "{e}");
        // busybox's applets are the guest's own.
        if std::path::Path::new("/bin/busybox").is_file() {
            let g = guest_commands(std::path::Path::new("/bin/busybox"));
            assert!(g.iter().any(|c| c == "sh") && g.iter().any(|c| c == "zcsafe"));
        }
    }

    #[test]
    fn exit_status_separates_contradictions_from_cells_that_could_not_judge() {
        let o = Options::new("/x".into());
        let k = host_kernel_run();
        let judged = |v: Verdict| {
            let mut c = error_cell(&o, &k, "copy", "veth", "ran".into(), None);
            c.finding.verdict = v;
            c.finding.expected = Verdict::Safe;
            c
        };
        let matrix = |results: Vec<Cell>| Matrix {
            format: MATRIX_FORMAT,
            results,
            kernels: vec![],
            accel: "tcg".into(),
            wall_seconds: 0.0,
        };
        let error = || judged(Verdict::Error);
        assert_eq!(matrix(vec![judged(Verdict::Safe)]).exit_code(), 0);
        // An error cell is no contradiction: 3, beside verdicts as expected.
        assert_eq!(matrix(vec![judged(Verdict::Safe), error()]).exit_code(), 3);
        // A contradiction wins over errors.
        assert_eq!(
            matrix(vec![judged(Verdict::Corrupt), error()]).exit_code(),
            1
        );
        // Nothing judged at all: no verdict without evidence.
        assert_eq!(matrix(vec![error(), error()]).exit_code(), 2);
        assert_eq!(matrix(vec![]).exit_code(), 2);
        // The same rule for any command's results.
        assert_eq!(matrix(vec![error()]).findings().exit_code(), 3);
        assert_eq!(matrix(vec![]).findings().exit_code(), 0);
    }
}
