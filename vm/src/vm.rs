//! One VM end to end: a temp dir, the image plus this VM's job, QEMU under the watchdog.

use crate::error::{IoContext, Result};
use crate::guest::{Event, Job};
use crate::initramfs::{self, Entry};
use crate::qemu::{Accel, Nic, VmSpec};
use crate::watchdog::{self, Limits, Run};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Machine settings shared by every VM of a matrix.
#[derive(Clone, Debug)]
pub struct Machine {
    pub qemu: PathBuf,
    pub accel: Accel,
    pub memory_mb: u32,
    pub cpus: u32,
    pub limits: Limits,
}

impl Default for Machine {
    fn default() -> Self {
        Machine {
            qemu: crate::qemu::default_qemu(),
            accel: Accel::Tcg,
            memory_mb: 768,
            cpus: 2,
            limits: Limits::default(),
        }
    }
}

/// Boots `vmlinuz` with `image` + `job` and returns what happened. The temp dir (initrd
/// copy, console and result logs) is removed on every path, QEMU is always killed.
pub fn boot(
    machine: &Machine,
    vmlinuz: &Path,
    image: &Path,
    job: &Job,
    nic: Option<Nic>,
    on_event: impl FnMut(Duration, &Event),
) -> Result<Run> {
    crate::process::install_interrupt_handler();
    sweep_stale_dirs();
    let tmp = tempfile::Builder::new()
        .prefix("zcsafe-vm-")
        .tempdir()
        .at(std::env::temp_dir())?;
    let _ = std::fs::write(tmp.path().join("pid"), std::process::id().to_string());
    // The kernel unpacks concatenated gzip'd cpio archives in order: the job lands on top.
    let mut initrd = std::fs::read(image).at(image)?;
    let cell_timeout = machine.limits.cell.as_secs();
    initrd.extend(initramfs::gz_cpio(&[Entry::file(
        "zcsafe/job",
        0o644,
        job.to_text(cell_timeout).into_bytes(),
    )]));
    let initrd_path = tmp.path().join("initrd.cpio.gz");
    std::fs::write(&initrd_path, initrd).at(&initrd_path)?;
    let spec = VmSpec {
        qemu: machine.qemu.clone(),
        accel: machine.accel,
        vmlinuz: vmlinuz.to_path_buf(),
        initrd: initrd_path,
        memory_mb: machine.memory_mb,
        cpus: machine.cpus,
        nics: if job.remote {
            nic.or(Some(Nic::Virtio))
        } else {
            None
        },
        console_log: tmp.path().join("console.log"),
        results_log: tmp.path().join("results.log"),
        extra_append: String::new(),
    };
    watchdog::run(&spec, machine.limits, on_event)
}

/// Removes temp dirs of zcsafe processes that died without cleaning up (SIGKILL).
fn sweep_stale_dirs() {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with("zcsafe-vm-") {
            continue;
        }
        let Ok(pid) = std::fs::read_to_string(e.path().join("pid")) else {
            continue;
        };
        let alive = pid
            .trim()
            .parse::<i32>()
            .map(|p| Path::new(&format!("/proc/{p}")).exists())
            .unwrap_or(true);
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
