//! The guest's root file system: a gzip'd newc cpio written here, cached by content hash.
//!
//! It holds busybox (static), the static guest binary (`/bin/zcsafe`), the `/init` script
//! of [`crate::guest`], the kernel modules the transports need (decompressed on the host,
//! loaded in dependency order from `/lib/modules/load-order`), and optionally host tools
//! busybox lacks (`tc` for netem) with the shared libraries they need.

use crate::error::{IoContext, Result, VmError};
use crate::kernel::Kernel;
use crate::process;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Bumped when the layout changes, so cached images are rebuilt.
const LAYOUT_VERSION: &str = "zcsafe-initramfs-5";

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

/// One file in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path without a leading `/`.
    pub path: String,
    /// Full `st_mode` (type and permissions).
    pub mode: u32,
    pub data: Vec<u8>,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

impl Entry {
    pub fn dir(path: &str) -> Entry {
        Entry {
            path: path.into(),
            mode: S_IFDIR | 0o755,
            data: vec![],
        }
    }
    pub fn file(path: &str, perm: u32, data: Vec<u8>) -> Entry {
        Entry {
            path: path.into(),
            mode: S_IFREG | perm,
            data,
        }
    }
    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry {
            path: path.into(),
            mode: S_IFLNK | 0o777,
            data: target.as_bytes().to_vec(),
        }
    }
}

/// Writes `entries` as a newc cpio archive (the format the kernel unpacks).
pub fn write_cpio(entries: &[Entry], out: &mut impl Write) -> std::io::Result<()> {
    let mut ino = 1u32;
    let mut header = |out: &mut dyn Write,
                      name: &str,
                      mode: u32,
                      size: usize,
                      nlink: u32|
     -> std::io::Result<()> {
        let h = format!(
            "070701{ino:08X}{mode:08X}{uid:08X}{gid:08X}{nlink:08X}{mtime:08X}{size:08X}{dmaj:08X}{dmin:08X}{rmaj:08X}{rmin:08X}{namesize:08X}{check:08X}",
            uid = 0, gid = 0, mtime = 0, dmaj = 0, dmin = 0, rmaj = 0, rmin = 0,
            namesize = name.len() + 1, check = 0,
        );
        ino += 1;
        out.write_all(h.as_bytes())?;
        out.write_all(name.as_bytes())?;
        out.write_all(&[0])?;
        pad(out, 110 + name.len() + 1)?;
        let _ = size;
        Ok(())
    };
    for e in entries {
        let nlink = if e.mode & S_IFDIR == S_IFDIR && e.mode & S_IFREG == 0 {
            2
        } else {
            1
        };
        header(out, &e.path, e.mode, e.data.len(), nlink)?;
        out.write_all(&e.data)?;
        pad(out, e.data.len())?;
    }
    header(out, "TRAILER!!!", 0, 0, 1)?;
    Ok(())
}

fn pad(out: &mut dyn Write, len: usize) -> std::io::Result<()> {
    let n = (4 - len % 4) % 4;
    out.write_all(&[0u8; 3][..n])
}

/// Reads the entry names and modes of a (gzip'd or plain, possibly concatenated) newc
/// archive — for tests and `zcsafe matrix --list-initramfs`.
pub fn list(bytes: &[u8]) -> Result<Vec<(String, u32, usize)>> {
    let mut data = Vec::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut data)
            .map_err(|e| VmError::Cpio(e.to_string()))?;
    } else {
        data = bytes.to_vec();
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    let hex = |s: &[u8]| -> Result<usize> {
        usize::from_str_radix(
            std::str::from_utf8(s).map_err(|e| VmError::Cpio(e.to_string()))?,
            16,
        )
        .map_err(|e| VmError::Cpio(e.to_string()))
    };
    while pos + 110 <= data.len() {
        // Padding between concatenated archives.
        if data[pos] == 0 {
            pos += 4;
            continue;
        }
        let h = &data[pos..pos + 110];
        if &h[..6] != b"070701" {
            return Err(VmError::Cpio(format!("bad magic at {pos}")));
        }
        let mode = hex(&h[14..22])? as u32;
        let size = hex(&h[54..62])?;
        let namesize = hex(&h[94..102])?;
        let name_end = pos + 110 + namesize;
        if name_end > data.len() || namesize == 0 {
            return Err(VmError::Cpio(format!("truncated name at {pos}")));
        }
        let name = String::from_utf8_lossy(&data[pos + 110..name_end - 1]).into_owned();
        pos = name_end + (4 - name_end % 4) % 4;
        pos += size + (4 - size % 4) % 4;
        if pos > data.len() + 3 {
            return Err(VmError::Cpio(format!("truncated data of {name}")));
        }
        if name != "TRAILER!!!" {
            out.push((name, mode, size));
        }
    }
    Ok(out)
}

/// gzip of a cpio of `entries`.
pub fn gz_cpio(entries: &[Entry]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    write_cpio(entries, &mut gz).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

/// What goes into a guest image besides the modules.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub busybox: PathBuf,
    /// The static guest binary, installed as `/bin/zcsafe`.
    pub guest_binary: PathBuf,
    /// Host tools to carry along with their shared libraries (`tc`); missing ones are skipped.
    pub host_tools: Vec<PathBuf>,
    /// The user's own programs (`--carry`), installed in `/opt/zcsafe/bin` as they are:
    /// static executables or `#!/bin/sh` scripts (the guest has no libc).
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

/// Is this ELF file statically linked (no `PT_INTERP`)? The guest has no libc.
pub fn is_static_elf(bytes: &[u8]) -> bool {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54), u16_at(56));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        o + 4 > bytes.len() || u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) != 3
    })
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
    let guest = std::fs::read(&inputs.guest_binary).at(&inputs.guest_binary)?;
    if !is_static_elf(&guest) {
        return Err(VmError::Usage(format!(
            "the guest binary {} is dynamically linked; build it with RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu",
            inputs.guest_binary.display()
        )));
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
    entries.push(Entry::file("bin/zcsafe", 0o755, guest));
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
    add_host_tools(&inputs.host_tools, &mut entries)?;
    for x in &inputs.extra {
        let data = std::fs::read(x).at(x)?;
        let runnable = is_static_elf(&data) || data.starts_with(b"#!/bin/sh");
        if !runnable {
            return Err(VmError::Usage(format!(
                "{} cannot run in the guest: it must be a statically linked executable or a #!/bin/sh script",
                x.display()
            )));
        }
        let name = x
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        entries.push(Entry::file(&format!("opt/zcsafe/bin/{name}"), 0o755, data));
    }

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
        let tmp = dir.join(format!(".{}.{}", hash, std::process::id()));
        std::fs::write(&tmp, gz_cpio(&entries)).at(&tmp)?;
        std::fs::rename(&tmp, &path).at(&path)?;
    }
    Ok(Image {
        path,
        hash,
        modules: order,
        missing,
        rebuilt,
    })
}

/// Copies host tools and the shared libraries `ldd` names into the image.
fn add_host_tools(tools: &[PathBuf], entries: &mut Vec<Entry>) -> Result<()> {
    let mut libs = BTreeSet::new();
    for t in tools {
        let name = t.file_name().unwrap().to_string_lossy();
        entries.push(Entry::file(
            &format!("opt/zcsafe/bin/{name}"),
            0o755,
            std::fs::read(t).at(t)?,
        ));
        let mut c = Command::new("ldd");
        c.arg(t);
        let out = process::run(c, Duration::from_secs(30), "ldd")?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "libbpf.so.1 => /lib/x86_64-linux-gnu/libbpf.so.1 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
            if let Some(p) = line.split_whitespace().find(|w| w.starts_with('/')) {
                libs.insert(PathBuf::from(p));
            }
        }
    }
    let mut dirs = BTreeSet::new();
    for l in libs {
        let data = std::fs::read(&l).at(&l)?; // follows symlinks
        let rel = l.to_string_lossy().trim_start_matches('/').to_string();
        let mut parent = Path::new(&rel).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
        entries.push(Entry::file(&rel, 0o755, data));
    }
    let existing: BTreeSet<String> = entries.iter().map(|e| e.path.clone()).collect();
    let new_dirs: Vec<Entry> = dirs
        .iter()
        .filter(|d| !existing.contains(*d))
        .map(|d| Entry::dir(d))
        .collect();
    // Directories must precede their files.
    let pos = entries
        .iter()
        .position(|e| e.mode & S_IFREG == S_IFREG)
        .unwrap_or(0);
    entries.splice(pos..pos, new_dirs);
    Ok(())
}

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
    fn cpio_round_trip_lists_every_entry() {
        let entries = vec![
            Entry::dir("bin"),
            Entry::file("bin/x", 0o755, b"hello".to_vec()),
            Entry::symlink("bin/y", "x"),
            Entry::file("init", 0o755, vec![1, 2, 3, 4]),
        ];
        let gz = gz_cpio(&entries);
        let l = list(&gz).unwrap();
        let names: Vec<&str> = l.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["bin", "bin/x", "bin/y", "init"]);
        assert_eq!(l[1].2, 5);
        assert_eq!(l[2].1 & 0o170000, S_IFLNK);
        // Concatenated archives (the per-VM job is appended) list as one.
        let mut two = gz.clone();
        two.extend(gz_cpio(&[Entry::file("zcsafe/job", 0o644, b"j".to_vec())]));
        assert_eq!(list(&two).unwrap().len(), 5);
    }

    #[test]
    fn cpio_matches_gnu_cpio_when_available() {
        let entries = vec![Entry::dir("d"), Entry::file("d/f", 0o644, b"abc".to_vec())];
        let mut raw = Vec::new();
        write_cpio(&entries, &mut raw).unwrap();
        let mut c = std::process::Command::new("cpio");
        c.args(["-t", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let Ok(mut child) = c.spawn() else {
            eprintln!("SKIP: cpio not installed");
            return;
        };
        child.stdin.take().unwrap().write_all(&raw).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "d\nd/f\n");
    }

    #[test]
    fn modinfo_depends_is_parsed() {
        let ko = b"\x7fELF....\0license=GPL\0depends=virtio_ring,net-failover\0intree=Y\0";
        assert_eq!(modinfo_depends(ko), ["virtio_ring", "net_failover"]);
        assert!(modinfo_depends(b"\0depends=\0").is_empty());
        assert!(modinfo_depends(b"nothing").is_empty());
    }

    #[test]
    fn static_elf_detection() {
        let bb = std::fs::read("/bin/busybox");
        if let Ok(bb) = bb {
            // Debian's /bin/busybox is the static one when busybox-static is installed.
            let _ = is_static_elf(&bb);
        }
        assert!(!is_static_elf(&std::fs::read("/bin/ls").unwrap()));
        assert!(!is_static_elf(b"not an elf"));
    }
}
