//! The guest's root file system: a gzip'd newc cpio written here, cached by content hash.
//!
//! It holds busybox (static), the guest binary (`/bin/zcsafe`), the `/init` script of
//! [`crate::guest`], the kernel modules the transports need (decompressed on the host,
//! loaded in dependency order from `/lib/modules/load-order`), host tools busybox lacks
//! (`ip`, `tc` for netem, `nft`) and the user's carried programs.
//!
//! Every executable goes in through one door, [`carry_executable`]: a dynamically linked
//! one brings its shared-library closure — the loader its `PT_INTERP` names and every
//! object the loader resolves (`ldd`) — as dracut does. So the guest runs the very binary
//! the user built (`make`, `cargo install`), no second static build. Without
//! `/etc/ld.so.cache` the guest's loader searches its built-in system path
//! ([`LOADER_SEARCH_PATH`]): libraries from there keep their host paths; any other
//! (`/usr/local/lib`, a build tree, `LD_LIBRARY_PATH`, `/tmp`, which the guest mounts over)
//! goes to [`GUEST_LIB_DIR`] under its SONAME, which `/init` puts in `LD_LIBRARY_PATH`
//! when [`LIBRARY_PATH_FILE`] says so.

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
const LAYOUT_VERSION: &str = "zcsafe-initramfs-6";

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
const S_IFMT: u32 = 0o170000;

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }
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
        let nlink = if e.is_dir() { 2 } else { 1 };
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

/// Is this an x86-64 ELF file without `PT_INTERP` (it runs with no loader and no libc)?
pub fn is_static_elf(bytes: &[u8]) -> bool {
    classify(bytes) == Program::StaticElf
}

/// What a file is, as far as running it in the guest goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Program {
    /// An x86-64 ELF without `PT_INTERP`: runs as it is.
    StaticElf,
    /// An x86-64 ELF whose `PT_INTERP` names this loader: it needs the loader and libraries.
    DynamicElf { interpreter: String },
    /// A `#!/bin/sh` script: busybox's shell runs it.
    ShellScript,
    /// Anything else; the text says what it is.
    Unrunnable(String),
}

const ELF_X86_64: u16 = 62;
const PT_INTERP: u32 = 3;

/// Reads the ELF header and program headers (or the `#!` line) of `bytes`.
pub fn classify(bytes: &[u8]) -> Program {
    if let Some(rest) = bytes.strip_prefix(b"#!") {
        let line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
        let line = String::from_utf8_lossy(line).trim().to_string();
        let mut words = line.split_whitespace();
        return match (words.next(), words.next()) {
            (Some("/bin/sh"), _) => Program::ShellScript,
            _ => Program::Unrunnable(format!(
                "a script for `{line}`; the guest has only busybox's /bin/sh"
            )),
        };
    }
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Program::Unrunnable("neither an ELF executable nor a #! script".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
    if bytes[4] != 2 || bytes[5] != 1 || u16_at(18) != ELF_X86_64 {
        return Program::Unrunnable(format!(
            "an ELF file for another machine (class {}, e_machine {}); the guests are x86-64",
            bytes[4],
            u16_at(18)
        ));
    }
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54) as usize, u16_at(56) as usize);
    for i in 0..phnum {
        let o = phoff.saturating_add(i.saturating_mul(phentsize));
        if o.saturating_add(40) > bytes.len() || u32_at(o) != PT_INTERP {
            continue;
        }
        let (off, size) = (u64_at(o + 8), u64_at(o + 32));
        let Some(raw) = bytes.get(off..off.saturating_add(size)) else {
            return Program::Unrunnable("an ELF file with a truncated PT_INTERP".into());
        };
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        return Program::DynamicElf {
            interpreter: String::from_utf8_lossy(&raw[..end]).into_owned(),
        };
    }
    Program::StaticElf
}

/// The directories the loader searches without `/etc/ld.so.cache` (`ld.so --help`: "system
/// search path" of Debian's x86-64 glibc). Libraries elsewhere need `LD_LIBRARY_PATH`.
pub const LOADER_SEARCH_PATH: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib",
    "/usr/lib",
];

/// Where carried libraries from outside [`LOADER_SEARCH_PATH`] go (no leading `/`).
pub const GUEST_LIB_DIR: &str = "opt/zcsafe/lib";

/// The guest's `LD_LIBRARY_PATH` (`/opt/zcsafe/lib`) when [`GUEST_LIB_DIR`] holds
/// anything, for `/init` to export; absent otherwise.
pub const LIBRARY_PATH_FILE: &str = "etc/zcsafe-ld-library-path";

/// What one executable needs in the guest besides itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closure {
    pub program: Program,
    /// Absolute host paths, loader first: the names the loader asks for (the SONAME paths
    /// `ldd` prints, often symlinks; their content is what is carried).
    pub libraries: Vec<PathBuf>,
}

/// The loader and shared libraries `path` loads, as the host's loader resolves them
/// (`ldd`, i.e. the loader with `LD_TRACE_LOADED_OBJECTS`); nothing for static programs
/// and `#!/bin/sh` scripts. A library the loader cannot find is an error naming it.
pub fn closure(path: &Path, bytes: &[u8]) -> Result<Closure> {
    let program = classify(bytes);
    let interpreter = match &program {
        Program::DynamicElf { interpreter } => interpreter.clone(),
        Program::Unrunnable(what) => {
            return Err(VmError::Usage(format!(
                "{} cannot run in the guest: it is {what}; carry an executable (static or dynamically linked) or a #!/bin/sh script",
                path.display()
            )))
        }
        _ => {
            return Ok(Closure {
                program,
                libraries: vec![],
            })
        }
    };
    if !Path::new(&interpreter).is_file() {
        return Err(VmError::Usage(format!(
            "{} asks for the loader {interpreter} (PT_INTERP), which this host does not have; carry a program built for this host's libc, or a static one",
            path.display()
        )));
    }
    let mut c = Command::new("ldd");
    c.arg(path);
    let what = format!("ldd {}", path.display());
    let out = process::run(c, Duration::from_secs(30), &what)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut libraries = vec![PathBuf::from(&interpreter)];
    for line in stdout.lines().map(str::trim) {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)", "/lib64/ld-linux-x86-64.so.2
        // (0x…)", "linux-vdso.so.1 (0x…)" (in the kernel), "libfoo.so.1 => not found".
        let (name, resolved) = match line.split_once("=>") {
            Some((n, r)) => (n.trim(), r.trim()),
            None => (line, line),
        };
        if resolved.starts_with("not found") {
            return Err(VmError::Usage(format!(
                "{} needs the shared library {name}, which this host's loader cannot find (ldd: `{line}`)\n  fix: install the package that ships {name} (`apt-file search {name}`), or set LD_LIBRARY_PATH to its directory, so that `ldd {}` resolves it",
                path.display(),
                path.display()
            )));
        }
        if let Some(p) = resolved
            .split_whitespace()
            .next()
            .filter(|w| w.starts_with('/'))
        {
            let p = PathBuf::from(p);
            if !libraries.contains(&p) {
                libraries.push(p);
            }
        }
    }
    if !out.status.success() {
        return Err(VmError::Command {
            command: what,
            status: out.status.to_string(),
            stderr: process::tail(&String::from_utf8_lossy(&out.stderr), 2000),
        });
    }
    Ok(Closure { program, libraries })
}

/// Puts the executable `path` into `entries` as `dest` (a path without the leading `/`),
/// with its [`Closure`] where the guest's loader finds it ([`library_dest`]). Libraries
/// already there are not added twice; two different files for one `dest` are an error.
pub fn carry_executable(path: &Path, dest: &str, entries: &mut Vec<Entry>) -> Result<()> {
    let bytes = std::fs::read(path).at(path)?;
    let closure = closure(path, &bytes)?;
    if let Some(e) = entries.iter().find(|e| e.path == dest) {
        if e.data != bytes {
            return Err(VmError::Usage(format!(
                "two different files would both be /{dest} in the guest (the second is {}); rename one",
                path.display()
            )));
        }
    } else {
        entries.push(Entry::file(dest, 0o755, bytes));
    }
    for (i, lib) in closure.libraries.iter().enumerate() {
        let rel = library_dest(lib, i == 0);
        // One object per name: the loader, too, loads one per SONAME.
        if entries.iter().any(|e| e.path == rel) {
            continue;
        }
        let data = std::fs::read(lib).at(lib)?; // follows the SONAME symlink
        entries.push(Entry::file(&rel, 0o755, data));
    }
    Ok(())
}

/// Where a library goes in the image: its host path (no leading `/`) for the loader
/// (`PT_INTERP` is an absolute path) and for directories the guest's loader searches, else
/// [`GUEST_LIB_DIR`]/SONAME.
fn library_dest(lib: &Path, is_loader: bool) -> String {
    let host = lib.to_string_lossy().trim_start_matches('/').to_string();
    let searched = lib
        .parent()
        .is_some_and(|d| LOADER_SEARCH_PATH.iter().any(|s| Path::new(s) == d));
    match lib.file_name() {
        Some(name) if !is_loader && !searched => {
            format!("{GUEST_LIB_DIR}/{}", name.to_string_lossy())
        }
        _ => host,
    }
}

/// The guest's `LD_LIBRARY_PATH`, if carried libraries need one.
fn library_path(entries: &[Entry]) -> Option<String> {
    let prefix = format!("{GUEST_LIB_DIR}/");
    entries
        .iter()
        .any(|e| e.path.starts_with(&prefix))
        .then(|| format!("/{GUEST_LIB_DIR}"))
}

/// `entries` with a directory entry before the first entry inside it, for every directory
/// not already listed (the kernel's unpacker does not create parents).
fn with_parent_dirs(entries: Vec<Entry>) -> Vec<Entry> {
    let mut listed: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        if e.is_dir() && !listed.insert(e.path.clone()) {
            continue; // listed already
        }
        let mut parents: Vec<String> = Path::new(&e.path)
            .ancestors()
            .skip(1)
            .map(|p| p.to_string_lossy().into_owned())
            .take_while(|p| !p.is_empty())
            .filter(|p| !listed.contains(p))
            .collect();
        parents.reverse();
        for p in parents {
            listed.insert(p.clone());
            out.push(Entry::dir(&p));
        }
        out.push(e);
    }
    out
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
            .ok_or_else(|| VmError::Usage(format!("{}: not a file to carry", x.display())))?;
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
    fn programs_are_classified_by_their_headers() {
        if let Ok(bb) = std::fs::read("/bin/busybox") {
            // Debian's /bin/busybox is the static one when busybox-static is installed.
            let _ = is_static_elf(&bb);
        }
        let ls = std::fs::read("/bin/ls").unwrap();
        assert!(!is_static_elf(&ls));
        assert!(
            matches!(classify(&ls), Program::DynamicElf { ref interpreter } if interpreter.starts_with('/') && interpreter.contains("ld-")),
            "{:?}",
            classify(&ls)
        );
        assert_eq!(classify(b"#!/bin/sh\necho hi\n"), Program::ShellScript);
        assert_eq!(classify(b"#! /bin/sh -e\n"), Program::ShellScript);
        let py = classify(b"#!/usr/bin/env python3\nprint(1)\n");
        assert!(
            matches!(py, Program::Unrunnable(ref w) if w.contains("/usr/bin/env python3")),
            "{py:?}"
        );
        assert!(matches!(classify(b"not an elf"), Program::Unrunnable(_)));
        // An aarch64 ELF header.
        let mut arm = ls.clone();
        arm[18..20].copy_from_slice(&183u16.to_le_bytes());
        assert!(
            matches!(classify(&arm), Program::Unrunnable(ref w) if w.contains("another machine"))
        );
    }

    #[test]
    fn a_dynamic_executable_brings_its_loader_and_libraries_once() {
        let mut entries = vec![Entry::dir("bin")];
        carry_executable(Path::new("/bin/ls"), "bin/zcsafe", &mut entries).unwrap();
        // The same libraries again (libc, the loader) are not added twice.
        carry_executable(Path::new("/bin/cat"), "opt/zcsafe/bin/cat", &mut entries).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        let Program::DynamicElf { interpreter } = classify(&std::fs::read("/bin/ls").unwrap())
        else {
            panic!("/bin/ls is dynamically linked on Debian");
        };
        for want in [
            "bin/zcsafe",
            "opt/zcsafe/bin/cat",
            interpreter.trim_start_matches('/'),
        ] {
            assert_eq!(
                names.iter().filter(|n| **n == want).count(),
                1,
                "{want} in {names:?}"
            );
        }
        let libc = names
            .iter()
            .filter(|n| n.ends_with("/libc.so.6"))
            .collect::<Vec<_>>();
        assert_eq!(libc.len(), 1, "{names:?}");
        // The loader's own answer: every object ldd resolves for ls is there, under that name,
        // with the content of the file it names.
        let c = closure(Path::new("/bin/ls"), &std::fs::read("/bin/ls").unwrap()).unwrap();
        assert!(c.libraries.len() >= 2, "{c:?}");
        for lib in &c.libraries {
            let rel = lib.to_string_lossy().trim_start_matches('/').to_string();
            let e = entries.iter().find(|e| e.path == rel).expect("carried");
            assert_eq!(e.data, std::fs::read(lib).unwrap());
        }
        // A second, different file for the same place is refused.
        let e = carry_executable(Path::new("/bin/cat"), "bin/zcsafe", &mut entries).unwrap_err();
        assert!(e.to_string().contains("two different files"), "{e}");

        // Directories precede their contents; each once.
        let all = with_parent_dirs(entries);
        let names: Vec<&str> = all.iter().map(|e| e.path.as_str()).collect();
        for (i, e) in all.iter().enumerate() {
            if let Some(parent) = Path::new(&e.path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                let p = names.iter().position(|n| Path::new(n) == parent);
                assert!(
                    p.is_some_and(|p| p < i),
                    "{} before its directory: {names:?}",
                    e.path
                );
            }
        }
        assert_eq!(names.iter().filter(|n| **n == "bin").count(), 1);
        assert_eq!(
            library_path(&all),
            None,
            "Debian's libraries are on the loader's path"
        );
    }

    #[test]
    fn libraries_off_the_loaders_search_path_go_to_the_guest_lib_dir() {
        let dest = |p: &str, loader| library_dest(Path::new(p), loader);
        assert_eq!(
            dest("/lib/x86_64-linux-gnu/libc.so.6", false),
            "lib/x86_64-linux-gnu/libc.so.6"
        );
        assert_eq!(
            dest("/usr/lib/x86_64-linux-gnu/libssl.so.3", false),
            "usr/lib/x86_64-linux-gnu/libssl.so.3"
        );
        assert_eq!(
            dest("/lib64/ld-linux-x86-64.so.2", true),
            "lib64/ld-linux-x86-64.so.2"
        );
        // The guest mounts a tmpfs on /tmp and has no ld.so.cache for /usr/local/lib.
        assert_eq!(
            dest("/tmp/build/libzc.so.1", false),
            "opt/zcsafe/lib/libzc.so.1"
        );
        assert_eq!(
            dest("/usr/local/lib/liburing.so.2", false),
            "opt/zcsafe/lib/liburing.so.2"
        );
        let mut entries = vec![Entry::file("lib/x86_64-linux-gnu/libc.so.6", 0o755, vec![])];
        assert_eq!(library_path(&entries), None);
        entries.push(Entry::file("opt/zcsafe/lib/libzc.so.1", 0o755, vec![]));
        assert_eq!(library_path(&entries).as_deref(), Some("/opt/zcsafe/lib"));
        assert!(crate::guest::init_script().contains(LIBRARY_PATH_FILE));
    }

    #[test]
    fn scripts_other_than_sh_and_missing_libraries_are_clear_errors() {
        let t = tempfile::tempdir().unwrap();
        let py = t.path().join("sender.py");
        std::fs::write(&py, "#!/usr/bin/env python3\n").unwrap();
        let e = carry_executable(&py, "opt/zcsafe/bin/sender.py", &mut vec![]).unwrap_err();
        assert!(e.to_string().contains("/usr/bin/env python3"), "{e}");
        let sh = t.path().join("s.sh");
        std::fs::write(&sh, "#!/bin/sh\necho hi\n").unwrap();
        let mut entries = vec![];
        carry_executable(&sh, "opt/zcsafe/bin/s.sh", &mut entries).unwrap();
        assert_eq!(entries.len(), 1);

        // A program whose library is gone: built against a library in the temp dir, which is
        // then removed.
        let Some(cc) = ["/usr/bin/cc", "/usr/bin/gcc"]
            .into_iter()
            .find(|c| Path::new(c).is_file())
        else {
            eprintln!("SKIP: no C compiler for the missing-library case");
            return;
        };
        let src = t.path().join("l.c");
        std::fs::write(&src, "int zcsafe_probe(void) { return 7; }\n").unwrap();
        let lib = t.path().join("libzcsafeprobe.so.1");
        let ok = Command::new(cc)
            .args(["-shared", "-fPIC", "-Wl,-soname,libzcsafeprobe.so.1", "-o"])
            .arg(&lib)
            .arg(&src)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let main = t.path().join("m.c");
        std::fs::write(
            &main,
            "int zcsafe_probe(void);\nint main(void) { return zcsafe_probe(); }\n",
        )
        .unwrap();
        let exe = t.path().join("needs-probe");
        let ok = Command::new(cc)
            .arg("-o")
            .arg(&exe)
            .arg(&main)
            .arg(&lib)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        std::fs::remove_file(&lib).unwrap();
        let e = carry_executable(&exe, "opt/zcsafe/bin/needs-probe", &mut vec![]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("libzcsafeprobe.so.1") && msg.contains("fix:"),
            "{msg}"
        );
    }
}
