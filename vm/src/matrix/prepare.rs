//! Before any VM boots: fetch each kernel and build its initramfs, one kernel at a time
//! (network and disk, not CPU), and choose the accelerator. A kernel that cannot be
//! prepared still gets its cells, as `error`s that say why.

use super::cell::{KernelRun, Progress};
use super::options::{AccelChoice, Options};
use crate::error::{Result, VmError};
use crate::guest::Job;
use crate::initramfs::{self, Inputs};
use crate::kernel::{Fetcher, Kernel};
use crate::qemu::Accel;
use crate::vm::{self, Machine};
use crate::watchdog::Limits;
use std::path::PathBuf;
use std::time::Duration;

/// A kernel ready to boot and its image; `None` where preparing it failed (its
/// [`KernelRun::error`] says why).
pub(super) type Prepared = Option<(Kernel, PathBuf)>;

/// Fetches the selected kernels and builds their images, reporting each as it goes.
/// Errors that no kernel can escape (a missing tool, a bad option) end the run; any other
/// leaves that kernel unprepared. Returns one [`KernelRun`] and one [`Prepared`] per
/// selected kernel, in catalogue order.
pub(super) fn prepare(
    opts: &Options,
    progress: &mut impl FnMut(&Progress),
) -> Result<(Vec<KernelRun>, Vec<Prepared>)> {
    let entries = opts.catalogue.select(&opts.kernels)?;
    let mut fetcher = Fetcher::new(opts.cache.clone(), &opts.catalogue);
    fetcher.refresh = opts.refresh;
    let mut inputs = Inputs::new(opts.guest_binary.clone());
    inputs.extra = opts.carried();
    let init = crate::guest::init_script();

    // The user's kernel first (resolved already), then the catalogue's.
    let wanted: Vec<Wanted<'_>> = opts
        .user_kernel
        .iter()
        .map(|u| Wanted::User(&u.kernel))
        .chain(entries.iter().copied().map(Wanted::Catalogue))
        .collect();

    // Fetch kernels and build images first: network and disk, one at a time.
    let mut kernels: Vec<KernelRun> = Vec::new();
    let mut images: Vec<Prepared> = Vec::new();
    for e in &wanted {
        if crate::process::interrupted() {
            return Err(VmError::Interrupted);
        }
        progress(&Progress::Kernel {
            name: e.name().to_string(),
            message: match e {
                Wanted::Catalogue(_) => "fetching".into(),
                Wanted::User(k) => format!("your kernel {}", k.vmlinuz.display()),
            },
        });
        let got = match e {
            Wanted::Catalogue(entry) => fetcher.fetch(entry),
            Wanted::User(k) => Ok((*k).clone()),
        };
        let prepared = got.and_then(|k| {
            let img = initramfs::build(&k, &inputs, &init, &opts.cache)?;
            Ok((k, img))
        });
        match prepared {
            Ok((k, img)) => {
                progress(&Progress::Kernel {
                    name: e.name().to_string(),
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
                    name: e.name().to_string(),
                    suite: e.suite().to_string(),
                    release: k.release.clone(),
                    version: k.version.clone(),
                    boot_seconds: vec![],
                    error: None,
                });
                images.push(Some((k, img.path)));
            }
            Err(VmError::Interrupted) => return Err(VmError::Interrupted),
            // Problems of this host or these options, the same for every kernel.
            Err(
                err @ (VmError::MissingTool { .. }
                | VmError::Usage(_)
                | VmError::NotCarriable { .. }),
            ) => return Err(err),
            Err(err) => {
                progress(&Progress::Kernel {
                    name: e.name().to_string(),
                    message: format!("error: {err}"),
                });
                kernels.push(KernelRun {
                    name: e.name().to_string(),
                    suite: e.suite().to_string(),
                    release: String::new(),
                    version: String::new(),
                    boot_seconds: vec![],
                    error: Some(err.to_string()),
                });
                images.push(None);
            }
        }
    }

    Ok((kernels, images))
}

/// A kernel to prepare: a catalogue entry to fetch, or the user's own, resolved.
enum Wanted<'a> {
    Catalogue(&'a crate::catalogue::KernelEntry),
    User(&'a Kernel),
}

impl Wanted<'_> {
    /// The name its cells carry: the catalogue's, or the user kernel's `uname -r`.
    fn name(&self) -> &str {
        match self {
            Wanted::Catalogue(e) => &e.name,
            Wanted::User(k) => &k.name,
        }
    }

    fn suite(&self) -> &str {
        match self {
            Wanted::Catalogue(e) => &e.suite,
            Wanted::User(k) => &k.suite,
        }
    }
}

/// The accelerator every VM of the run uses ([`AccelChoice::Auto`] probes once).
pub(super) fn choose_accel(opts: &Options, images: &[Prepared]) -> Accel {
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
