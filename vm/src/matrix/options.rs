//! What a matrix run is asked to do: kernels, policies, transports, the guest and host
//! binaries, the machine, and the cell command; checked in one place
//! ([`Options::validate`]) before anything is fetched or booted. Also the one place that
//! writes the command line which reruns a cell.

use super::external::{external_command, external_program, guest_commands, EXTERNAL};
use super::transport::GuestTransport;
use crate::catalogue::Catalogue;
use crate::error::{Result, VmError};
use crate::qemu::Nic;
use crate::vm::Machine;
use std::path::PathBuf;

/// The command each cell runs in the guest; `{policy}` and `{transport}` are substituted.
pub const DEFAULT_COMMAND: &str = "zcsafe run --policy {policy} --transport {transport} --json";

/// How to choose the accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccelChoice {
    Tcg,
    Kvm,
    /// KVM if a probe boot under KVM reaches userspace, else TCG.
    Auto,
}

impl std::str::FromStr for AccelChoice {
    type Err = VmError;

    /// `tcg`, `kvm` or `auto`.
    fn from_str(s: &str) -> Result<AccelChoice> {
        match s {
            "tcg" => Ok(AccelChoice::Tcg),
            "kvm" => Ok(AccelChoice::Kvm),
            "auto" => Ok(AccelChoice::Auto),
            _ => Err(VmError::Usage(format!(
                "the accelerator is tcg, kvm or auto, not `{s}`"
            ))),
        }
    }
}

/// The user's own kernel, resolved, and how the command line named it.
#[derive(Clone, Debug)]
pub struct UserKernel {
    pub kernel: crate::kernel::Kernel,
    /// `--kernel-image PATH [--modules DIR]`, quoted for a shell.
    pub flags: String,
}

impl UserKernel {
    /// Resolves `image` (and `modules`) into a kernel, see [`crate::kernel_image`].
    pub fn resolve(
        image: &std::path::Path,
        modules: Option<&std::path::Path>,
        cache: &std::path::Path,
    ) -> Result<UserKernel> {
        let kernel = crate::kernel_image::resolve(image, modules, cache)?;
        let mut flags = format!(
            "--kernel-image {}",
            shell_quote(&image.display().to_string())
        );
        if let Some(m) = modules {
            flags += &format!(" --modules {}", shell_quote(&m.display().to_string()));
        }
        Ok(UserKernel { kernel, flags })
    }
}

/// `s` as one shell word.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Everything a matrix run needs.
#[derive(Clone, Debug)]
pub struct Options {
    pub catalogue: Catalogue,
    /// `--kernels` list (see [`Catalogue::select`]); `host` adds the running kernel.
    pub kernels: String,
    pub policies: Vec<String>,
    /// Guest transports, in the order the user gave them (one VM each per kernel); the
    /// names are parsed at the edge ([`GuestTransport::parse_list`]).
    pub transports: Vec<GuestTransport>,
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
    /// Keep each cell's stdout in [`Cell::output`](super::Cell::output): for commands that
    /// print more than a verdict (`zcsafe bench --kernels` reads its measurements from there).
    pub keep_output: bool,
    /// `--kernel-image`: the user's own kernel ([`crate::kernel_image::resolve`]), run
    /// before the catalogue's, and the flags that name it (for rerun commands).
    pub user_kernel: Option<UserKernel>,
    /// `--retries`: how many more times a guest reruns a cell that contradicted (exited
    /// 1), see [`zcsafe_policy::retry`].
    pub retries: u32,
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
            transports: vec![
                GuestTransport::Loopback,
                GuestTransport::Veth,
                GuestTransport::Remote,
            ],
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
            retries: 0,
            user_kernel: None,
        }
    }

    /// Judge the user's sender `cmd` (with `carry`, more files for the guests) instead of
    /// the policies. The program `cmd` names is carried too and the guests run it from
    /// [`GUEST_BIN_DIR`](super::GUEST_BIN_DIR); an error when `cmd` names a path that is
    /// not a file.
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

    /// Everything carried into the guests' [`GUEST_BIN_DIR`](super::GUEST_BIN_DIR).
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

    /// netem arguments for a VM of `transport`: only `remote` has the NIC they go on.
    #[must_use]
    pub fn netem_for(&self, transport: GuestTransport) -> Option<String> {
        transport.is_remote().then(|| self.netem()).flatten()
    }

    /// The NIC model a cell of `transport` records: only `remote` has NICs.
    #[must_use]
    pub fn nic_for(&self, transport: GuestTransport) -> Option<String> {
        transport.is_remote().then(|| self.nic.name().to_string())
    }

    /// The guest command of one cell: [`Options::command`] with `{policy}` and
    /// `{transport}` replaced.
    #[must_use]
    pub fn cell_command(&self, policy: &str, transport: GuestTransport) -> String {
        self.command
            .replace("{policy}", policy)
            .replace("{transport}", transport.name())
    }

    pub fn validate(&self) -> Result<()> {
        for p in &self.policies {
            if zcsafe_policies::find_runnable(p).is_none() && p != "vm-selftest" && p != EXTERNAL {
                return Err(VmError::Usage(format!(
                    "unknown policy `{p}` (see `zcsafe policies`)"
                )));
            }
        }
        if let Some(l) = self.loss_pct {
            if !(0.0..=100.0).contains(&l) {
                return Err(VmError::BadOption {
                    field: "loss_pct",
                    message: format!("{l}: a percentage 0..100"),
                });
            }
        }
        if self.jobs == 0 {
            return Err(VmError::BadOption {
                field: "jobs",
                message: "must be at least 1".into(),
            });
        }
        if self.policies.is_empty() || self.transports.is_empty() {
            return Err(VmError::Usage("no policies or transports selected".into()));
        }
        let host = self.kernels.split(',').any(|t| t.trim() == "host");
        if self.catalogue.select(&self.kernels)?.is_empty() && !host && self.user_kernel.is_none() {
            return Err(VmError::Usage(
                "no kernels selected (name catalogue kernels, `host`, or your own kernel image)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The command that reruns one cell.
    pub fn rerun(&self, kernel: &str, policy: &str, transport: GuestTransport) -> String {
        let kernels = match &self.user_kernel {
            Some(u) if u.kernel.name == kernel => u.flags.clone(),
            _ => format!("--kernels {kernel}"),
        };
        let mut s = match &self.external {
            Some(cmd) => {
                let mut s = format!(
                    "zcsafe matrix {kernels} --external '{}'",
                    cmd.replace('\'', "'\\''")
                );
                for c in &self.carry {
                    s += &format!(" --carry {}", c.display());
                }
                s + &format!(" --transports {transport}")
            }
            None => format!("zcsafe matrix {kernels} --policies {policy} --transports {transport}"),
        };
        if transport.is_remote() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_validate_and_rerun() {
        let mut o = Options::new("/nonexistent".into());
        o.kernels = "5.10".into();
        o.policies = vec!["zc-naive".into()];
        o.transports = vec![GuestTransport::Remote];
        o.loss_pct = Some(1.5);
        o.delay_ms = Some(10);
        o.validate().unwrap();
        assert_eq!(o.netem().as_deref(), Some("delay 10ms loss 1.5%"));
        assert_eq!(
            o.rerun("5.10", "zc-naive", GuestTransport::Remote),
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
            .rerun("6.1", EXTERNAL, GuestTransport::Veth)
            .contains("--carry /x/snd --transports veth"));
        assert!(o
            .set_external("./no/such/snd {host} {port}", vec![])
            .is_err());
        let e = GuestTransport::parse_list("veth,wifi").unwrap_err();
        assert!(e.to_string().contains("guests offer loopback, veth"), "{e}");
        o.transports = vec![];
        assert!(o.validate().is_err());
        o.transports = vec![GuestTransport::Veth];
        o.policies = vec!["nope".into()];
        assert!(o.validate().is_err());
        o.policies = vec!["copy".into()];
        o.kernels = "3.2".into();
        assert!(matches!(o.validate(), Err(VmError::UnknownKernel(..))));
    }
}
