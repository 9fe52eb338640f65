//! Every executable goes into the image through one door, [`carry_executable`]: a
//! dynamically linked one brings its shared-library closure — the loader its `PT_INTERP`
//! names and every object the loader resolves (`ldd`) — placed where the guest's loader,
//! which has no `/etc/ld.so.cache`, will look.

use super::cpio::Entry;
use super::program::{classify, Program};
use crate::error::{IoContext, Result, VmError};
use crate::process;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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
/// with its [`Closure`] where the guest's loader finds it (`library_dest`). Libraries
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
pub(crate) fn library_dest(lib: &Path, is_loader: bool) -> String {
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
pub(crate) fn library_path(entries: &[Entry]) -> Option<String> {
    let prefix = format!("{GUEST_LIB_DIR}/");
    entries
        .iter()
        .any(|e| e.path.starts_with(&prefix))
        .then(|| format!("/{GUEST_LIB_DIR}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::initramfs::cpio::with_parent_dirs;

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
