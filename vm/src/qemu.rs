//! Booting one VM: the QEMU command line and the choice of accelerator.
//!
//! TCG is the default. `/dev/kvm` existing proves nothing (on PVM hosts it only runs
//! specially built guests), so KVM is used only after a probe boot reached userspace.

use crate::error::{Result, VmError};
use crate::guest;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How QEMU executes the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// The guest NIC model for the `remote` transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Nic {
    Virtio,
    E1000,
}

impl std::str::FromStr for Nic {
    type Err = VmError;

    /// `virtio` or `e1000`, the names [`Nic::name`] prints.
    fn from_str(s: &str) -> Result<Nic> {
        [Nic::Virtio, Nic::E1000]
            .into_iter()
            .find(|n| n.name() == s)
            .ok_or_else(|| VmError::Usage(format!("the guest NIC is virtio or e1000, not `{s}`")))
    }
}

impl Nic {
    pub fn name(self) -> &'static str {
        match self {
            Nic::Virtio => "virtio",
            Nic::E1000 => "e1000",
        }
    }
    fn device(self) -> &'static str {
        match self {
            Nic::Virtio => "virtio-net-pci",
            Nic::E1000 => "e1000",
        }
    }
}

/// Everything one boot needs.
#[derive(Clone, Debug)]
pub struct VmSpec {
    pub qemu: PathBuf,
    pub accel: Accel,
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
    pub memory_mb: u32,
    pub cpus: u32,
    /// Two NICs on one hub, for the `remote` transport.
    pub nics: Option<Nic>,
    pub console_log: PathBuf,
    pub results_log: PathBuf,
    /// Appended to the kernel command line.
    pub extra_append: String,
}

/// `qemu-system-x86_64`, or `ZCSAFE_QEMU`.
pub fn default_qemu() -> PathBuf {
    std::env::var_os("ZCSAFE_QEMU")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("qemu-system-x86_64"))
}

impl VmSpec {
    pub fn kernel_cmdline(&self) -> String {
        // panic=-1 + -no-reboot: a panic ends QEMU at once; oops=panic makes oopses count.
        // random.trust_cpu: old kernels otherwise block getrandom() for lack of entropy.
        let mut s = format!(
            "console=ttyS0,115200 panic=-1 oops=panic loglevel={} rdinit=/init random.trust_cpu=on nokaslr tsc=reliable",
            guest_loglevel()
        );
        if !self.extra_append.is_empty() {
            s.push(' ');
            s += &self.extra_append;
        }
        s
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.qemu);
        // q35: a PCIe machine like the hosts these kernels run on (see also `tcg_cpu`).
        c.args([
            "-machine",
            "q35",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ]);
        match self.accel {
            Accel::Tcg => c.args(["-accel", "tcg", "-cpu", &tcg_cpu()]),
            Accel::Kvm => c.args(["-accel", "kvm", "-cpu", "host"]),
        };
        c.args([
            "-m",
            &self.memory_mb.to_string(),
            "-smp",
            &self.cpus.to_string(),
        ]);
        c.arg("-kernel").arg(&self.vmlinuz);
        c.arg("-initrd").arg(&self.initrd);
        c.args(["-append", &self.kernel_cmdline()]);
        c.arg("-serial")
            .arg(format!("file:{}", self.console_log.display()));
        c.arg("-serial")
            .arg(format!("file:{}", self.results_log.display()));
        if let Some(nic) = self.nics {
            for (id, mac) in [("n0", guest::SENDER_MAC), ("n1", guest::PEER_MAC)] {
                c.args(["-netdev", &format!("hubport,id={id},hubid=0")]);
                c.args([
                    "-device",
                    &format!("{},netdev={id},mac={mac},romfile=", nic.device()),
                ]);
            }
        }
        c
    }
}

/// Console log level: 6 (the default) keeps the banner and notices, so the console tail of
/// a hung guest says how far it got; `ZCSAFE_GUEST_LOGLEVEL` overrides it.
fn guest_loglevel() -> u8 {
    std::env::var("ZCSAFE_GUEST_LOGLEVEL")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(6)
}

/// The TCG CPU model: `qemu64` without CMPXCHG16B, unless `ZCSAFE_QEMU_CPU` says otherwise.
/// QEMU 7.2's TCG corrupts state around `cmpxchg16b` with several vCPUs: Debian's 6.12
/// (SLUB's lockless fast path) then panics in `__kmalloc`, `pci_register_host_bridge`
/// or `__cpa_addr` on a third of the boots; without the flag it boots every time.
fn tcg_cpu() -> String {
    std::env::var("ZCSAFE_QEMU_CPU")
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "qemu64,-cx16".into())
}

/// Can this process use `/dev/kvm` at all? (Necessary, not sufficient: see [`Accel`].)
pub fn kvm_device_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Is `qemu` installed? A clear error otherwise.
pub fn check_qemu(qemu: &Path) -> Result<()> {
    let mut c = Command::new(qemu);
    c.arg("--version");
    crate::process::run_ok(
        c,
        std::time::Duration::from_secs(20),
        "qemu-system-x86_64 --version",
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_has_two_nics_on_one_hub_without_rom() {
        let s = VmSpec {
            qemu: "qemu-system-x86_64".into(),
            accel: Accel::Tcg,
            vmlinuz: "/k".into(),
            initrd: "/i".into(),
            memory_mb: 512,
            cpus: 2,
            nics: Some(Nic::E1000),
            console_log: "/t/c".into(),
            results_log: "/t/r".into(),
            extra_append: String::new(),
        };
        let args: Vec<String> = s
            .command()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = args.join(" ");
        assert!(line.contains("-netdev hubport,id=n0,hubid=0"), "{line}");
        assert!(line.contains("-netdev hubport,id=n1,hubid=0"), "{line}");
        assert!(
            line.contains("e1000,netdev=n1,mac=52:54:00:7a:00:02,romfile="),
            "{line}"
        );
        assert!(line.contains("-accel tcg"));
        assert!(line.contains("-machine q35"));
        assert!(line.contains("-serial file:/t/r"));
        assert!(s.kernel_cmdline().contains("panic=-1"));
        assert!("rtl8139".parse::<Nic>().is_err());
    }
}
