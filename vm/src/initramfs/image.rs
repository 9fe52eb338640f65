//! One guest image: what goes in ([`Inputs`]: busybox, the guest binary, host tools, the
//! user's carried programs, the modules, `/init`), assembled and written to the cache
//! under the hash of its content, so an unchanged image is reused and a changed one never
//! is.

use super::closure::{carry_executable, library_path, LIBRARY_PATH_FILE};
use super::cpio::{gz_cpio, with_parent_dirs, Entry};
use super::modules::modules;
use super::program::is_static_elf;
use crate::error::{IoContext, Result, VmError};
use crate::kernel::Kernel;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bumped when the layout changes, so cached images are rebuilt.
const LAYOUT_VERSION: &str = "zcsafe-initramfs-6";

/// What goes into a guest image besides the modules.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub busybox: PathBuf,
    /// The guest binary (static or dynamically linked), installed as `/bin/zcsafe`.
    pub guest_binary: PathBuf,
    /// Host tools to carry along with their shared libraries (`tc`); missing ones are skipped.
    pub host_tools: Vec<PathBuf>,
    /// The user's own programs (`--carry`, the `--external` sender), installed in
    /// `/opt/zcsafe/bin` under their file names: executables (with their libraries) or
    /// `#!/bin/sh` scripts.
    pub extra: Vec<PathBuf>,
}

impl Inputs {
    /// Defaults: busybox from `busybox-static`; `ip` and `tc` (iproute2: busybox's cannot
    /// do `ip netns` or netem) and `nft` (nftables) from the host, where installed.
    pub fn new(guest_binary: PathBuf) -> Inputs {
        Inputs {
            busybox: PathBuf::from(
                std::env::var_os("ZCSAFE_BUSYBOX").unwrap_or_else(|| "/bin/busybox".into()),
            ),
            guest_binary,
            extra: vec![],
            host_tools: ["ip", "tc", "nft"]
                .iter()
                .filter_map(|t| find_host_tool(t))
                .collect(),
        }
    }
}

/// A tool in the usual system directories (not `PATH`: the image must not depend on it).
fn find_host_tool(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// A built image: where it is and what went in.
#[derive(Clone, Debug)]
pub struct Image {
    pub path: PathBuf,
    pub hash: String,
    /// Modules in load order (names), and wanted modules not found as files.
    pub modules: Vec<String>,
    pub missing: Vec<String>,
    pub rebuilt: bool,
}

/// Builds (or reuses) the initramfs for `kernel` under `cache/initramfs/`.
pub fn build(kernel: &Kernel, inputs: &Inputs, init_script: &str, cache: &Path) -> Result<Image> {
    let busybox = std::fs::read(&inputs.busybox).map_err(|e| VmError::MissingTool {
        tool: inputs.busybox.display().to_string(),
        package: "busybox-static".into(),
        message: e.to_string(),
    })?;
    if !is_static_elf(&busybox) {
        return Err(VmError::MissingTool {
            tool: inputs.busybox.display().to_string(),
            package: "busybox-static".into(),
            message:
                "it is dynamically linked (the `busybox` package); the guest needs busybox-static"
                    .into(),
        });
    }
    let (mods, order, missing) = modules(kernel)?;

    let mut entries: Vec<Entry> = [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "etc",
        "lib",
        "lib/modules",
        "zcsafe",
        "opt",
        "opt/zcsafe",
        "opt/zcsafe/bin",
    ]
    .iter()
    .map(|d| Entry::dir(d))
    .collect();
    entries.push(Entry::file("bin/busybox", 0o755, busybox));
    entries.push(Entry::symlink("bin/sh", "busybox"));
    carry_executable(&inputs.guest_binary, "bin/zcsafe", &mut entries)?;
    entries.push(Entry::file("init", 0o755, init_script.as_bytes().to_vec()));
    entries.push(Entry::file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/:/bin/sh\n".to_vec(),
    ));
    entries.push(Entry::file("etc/group", 0o644, b"root:x:0:\n".to_vec()));
    for (name, data) in mods {
        entries.push(Entry::file(&format!("lib/modules/{name}.ko"), 0o644, data));
    }
    entries.push(Entry::file(
        "lib/modules/load-order",
        0o644,
        order.join("\n").into_bytes(),
    ));
    entries.push(Entry::file(
        "lib/modules/release",
        0o644,
        kernel.release.clone().into_bytes(),
    ));
    for x in inputs.host_tools.iter().chain(&inputs.extra) {
        let name = x
            .file_name()
            .map(|n| n.to_string_lossy())
            .ok_or_else(|| VmError::NotCarriable { path: x.clone() })?;
        carry_executable(x, &format!("opt/zcsafe/bin/{name}"), &mut entries)?;
    }
    if let Some(dirs) = library_path(&entries) {
        entries.push(Entry::file(LIBRARY_PATH_FILE, 0o644, dirs.into_bytes()));
    }
    let entries = with_parent_dirs(entries);

    let mut h = Sha256::new();
    h.update(LAYOUT_VERSION);
    for e in &entries {
        h.update(e.path.as_bytes());
        h.update(e.mode.to_le_bytes());
        h.update((e.data.len() as u64).to_le_bytes());
        h.update(&e.data);
    }
    let hash = format!("{:x}", h.finalize());
    let dir = cache.join("initramfs");
    std::fs::create_dir_all(&dir).at(&dir)?;
    let path = dir.join(format!("{}-{}.cpio.gz", kernel.release, &hash[..16]));
    let rebuilt = !path.is_file();
    if rebuilt {
        // A temporary file of its own per build (threads of one process build the same
        // image at once), renamed into place: a reader sees a whole image or none, and a
        // build killed midway leaves only a `.tmp*` file (removed when it is dropped).
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", &hash[..16]))
            .tempfile_in(&dir)
            .at(&dir)?;
        tmp.write_all(&gz_cpio(&entries)).at(tmp.path())?;
        tmp.persist(&path).map_err(|e| e.error).at(&path)?;
    }
    Ok(Image {
        path,
        hash,
        modules: order,
        missing,
        rebuilt,
    })
}
