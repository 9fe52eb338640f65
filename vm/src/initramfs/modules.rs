//! The kernel modules the guest transports need: found in the unpacked kernel package,
//! decompressed on the host, with their `depends=` closure in load order (the guest has
//! no `modprobe` and no `modules.dep`; `/init` runs `insmod` down the list).

use crate::error::{IoContext, Result};
use crate::kernel::Kernel;
use crate::process;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Modules the guest transports need, in the order they are wanted (dependencies are
/// added before them). Names missing from a kernel are built in or absent: both are fine,
/// the guest reports what it could not load.
pub const WANTED_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_net",
    "e1000",
    "e1000e",
    "veth",
    "tun",
    "sch_netem",
    "sch_tbf",
    "sch_htb",
    "nf_tables",
    "nft_numgen",
    "nft_chain_filter",
    "nft_meta",
    "nft_counter",
    "nft_limit",
];

fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

/// Module name → file, for every module file under `dir`.
fn index_modules(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let f = e.file_name().to_string_lossy().into_owned();
            for ext in [".ko", ".ko.xz", ".ko.zst", ".ko.gz"] {
                if let Some(stem) = f.strip_suffix(ext) {
                    out.insert(normalise(stem), p.clone());
                }
            }
        }
    }
    out
}

/// A module file's bytes, decompressed with the host's tools (`xz`, `zstd`, `gzip`).
pub fn read_module(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        "xz"
    } else if name.ends_with(".zst") {
        "zstd"
    } else if name.ends_with(".gz") {
        "gzip"
    } else {
        return std::fs::read(path).at(path);
    };
    let mut c = Command::new(tool);
    c.arg("-dc").arg(path);
    Ok(process::run_ok(c, Duration::from_secs(60), &format!("{tool} -dc {name}"))?.stdout)
}

/// The `depends=` field of a module's `.modinfo` (names, normalised).
pub fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    let key = b"depends=";
    let mut i = 0;
    while let Some(off) = ko[i..].windows(key.len()).position(|w| w == key) {
        let at = i + off;
        if at == 0 || ko[at - 1] == 0 {
            let rest = &ko[at + key.len()..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            return String::from_utf8_lossy(&rest[..end])
                .split(',')
                .filter(|s| !s.is_empty())
                .map(normalise)
                .collect();
        }
        i = at + 1;
    }
    vec![]
}

/// The wanted modules and their dependencies: bytes by name, load order, and wanted names
/// without a module file (built in, or not in this kernel).
#[allow(clippy::type_complexity)]
pub fn modules(kernel: &Kernel) -> Result<(BTreeMap<String, Vec<u8>>, Vec<String>, Vec<String>)> {
    let index = if kernel.modules.as_os_str().is_empty() {
        BTreeMap::new()
    } else {
        index_modules(&kernel.modules)
    };
    let mut data = BTreeMap::new();
    let mut order = Vec::new();
    let mut missing = Vec::new();
    fn visit(
        name: &str,
        index: &BTreeMap<String, PathBuf>,
        data: &mut BTreeMap<String, Vec<u8>>,
        order: &mut Vec<String>,
        missing: &mut Vec<String>,
        depth: usize,
    ) -> Result<()> {
        if data.contains_key(name) || missing.iter().any(|m| m == name) || depth > 32 {
            return Ok(());
        }
        let Some(path) = index.get(name) else {
            missing.push(name.to_string());
            return Ok(());
        };
        let bytes = read_module(path)?;
        let deps = modinfo_depends(&bytes);
        data.insert(name.to_string(), bytes);
        for d in deps {
            visit(&d, index, data, order, missing, depth + 1)?;
        }
        order.push(name.to_string());
        Ok(())
    }
    for w in WANTED_MODULES {
        visit(
            &normalise(w),
            &index,
            &mut data,
            &mut order,
            &mut missing,
            0,
        )?;
    }
    Ok((data, order, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_depends_is_parsed() {
        let ko = b"\x7fELF....\0license=GPL\0depends=virtio_ring,net-failover\0intree=Y\0";
        assert_eq!(modinfo_depends(ko), ["virtio_ring", "net_failover"]);
        assert!(modinfo_depends(b"\0depends=\0").is_empty());
        assert!(modinfo_depends(b"nothing").is_empty());
    }
}
