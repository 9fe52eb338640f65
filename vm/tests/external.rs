//! `zcsafe matrix` in a 5.10 guest as a user runs it, with the binary cargo builds — a
//! dynamically linked zcsafe, carried into the guest with its shared libraries — and an
//! external sender in C, also dynamically linked, carried because the command names it.
//! Skipped, with a counted reason, without QEMU, the kernel or a built zcsafe
//! (ZCSAFE_REQUIRE_VM=1 makes that a failure).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;
use zcsafe_vm::initramfs::{self, Program};

/// What every test here needs, or a counted skip: QEMU and the 5.10 kernel, a static
/// busybox, and the dynamically linked zcsafe that the guests will run.
fn guest_ready(test: &str) -> Option<PathBuf> {
    common::kernel(test)?;
    common::busybox(test)?;
    dynamic_zcsafe(test)
}

/// The zcsafe cargo built (`cargo test --workspace` builds it before any test runs; `make
/// build` gives target/release/zcsafe): `$ZCSAFE_TEST_BIN`, else the newer of
/// target/{debug,release}/zcsafe. Cargo links it dynamically, which is the point.
fn dynamic_zcsafe(test: &str) -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").into());
    let p = match std::env::var_os("ZCSAFE_TEST_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let built = ["debug", "release"]
                .iter()
                .map(|d| target.join(d).join("zcsafe"))
                .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
                .max();
            match built {
                Some((_, p)) => p,
                None => {
                    common::skip(
                        test,
                        &format!(
                            "no zcsafe built under {} (cargo build -p zcsafe-cli, or make build)",
                            target.display()
                        ),
                    );
                    return None;
                }
            }
        }
    };
    // The guest's /init and the initramfs layout are compiled into zcsafe: an old binary
    // would test old code.
    let built = std::fs::metadata(&p).and_then(|m| m.modified()).unwrap();
    if let Some(newer) = newest_source().filter(|(t, _)| *t > built) {
        panic!(
            "{} is older than {}: rebuild it (cargo build -p zcsafe-cli), or run the whole workspace's tests",
            p.display(),
            newer.1.display()
        );
    }
    let kind = initramfs::classify(&std::fs::read(&p).unwrap());
    assert!(
        matches!(kind, Program::DynamicElf { .. }),
        "the test is about a dynamically linked zcsafe, {} is {kind:?}",
        p.display()
    );
    eprintln!("{test}: zcsafe {}", p.display());
    Some(p)
}

/// The most recently modified file under the workspace's `*/src` directories.
fn newest_source() -> Option<(std::time::SystemTime, PathBuf)> {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let mut stack: Vec<PathBuf> = std::fs::read_dir(root)
        .ok()?
        .flatten()
        .map(|e| e.path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    let mut newest = None;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let (p, Ok(m)) = (e.path(), e.metadata()) else {
                continue;
            };
            if m.is_dir() {
                stack.push(p);
            } else if let Ok(t) = m.modified() {
                if newest.as_ref().is_none_or(|(n, _)| t > *n) {
                    newest = Some((t, p));
                }
            }
        }
    }
    newest
}

/// `zcsafe matrix ARGS --kernels 5.10 --json --out DIR`, with the guest binary left to its
/// default (the running zcsafe itself).
fn matrix(
    zcsafe: &Path,
    args: &[&str],
    out: &Path,
    env: &[(&str, &Path)],
) -> (Output, serde_json::Value) {
    let o = Command::new(zcsafe)
        .envs(env.iter().copied())
        .arg("matrix")
        .args(["--kernels", "5.10", "--jobs", "1", "--json", "--out"])
        .arg(out)
        .args(args)
        .env_remove("ZCSAFE_GUEST_BIN")
        .output()
        .expect("run zcsafe matrix");
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}), exit {:?}: {}\nstderr: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o, v)
}

fn cc(test: &str) -> Option<PathBuf> {
    let cc = ["cc", "gcc"].into_iter().find_map(common::which);
    if cc.is_none() {
        common::skip(test, "no C compiler (apt-get install gcc)");
    }
    cc
}

/// examples/c-sender built with the host's C compiler, dynamically linked (the default),
/// with `extra` arguments at the end of the link line.
fn c_sender(test: &str, dir: &Path, extra: &[&std::ffi::OsStr]) -> Option<PathBuf> {
    let cc = cc(test)?;
    let src = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/c-sender/zc_sender.c"
    );
    let exe = dir.join("zc_sender");
    let ok = Command::new(&cc)
        .args(["-O2", "-Wall", "-o"])
        .arg(&exe)
        .arg(src)
        .args(extra)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{} failed to build {src}", cc.display());
    let kind = initramfs::classify(&std::fs::read(&exe).unwrap());
    assert!(matches!(kind, Program::DynamicElf { .. }), "{kind:?}");
    Some(exe)
}

fn only_cell(v: &serde_json::Value) -> &serde_json::Value {
    let cells = v["results"].as_array().expect("results");
    assert_eq!(cells.len(), 1, "{v:#}");
    &cells[0]
}

#[test]
fn the_dynamically_linked_zcsafe_cargo_builds_judges_a_policy_in_a_guest() {
    let test = "dynamic guest binary";
    let Some(zcsafe) = guest_ready(test) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let (o, v) = matrix(
        &zcsafe,
        &["--policies", "copy", "--transports", "veth"],
        t.path(),
        &[],
    );
    let c = only_cell(&v);
    assert_eq!(c["verdict"], "safe", "{c:#}");
    assert!(c["kernel"].as_str().unwrap().starts_with("5.10."), "{c:#}");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!(
        "copy/veth on 5.10 with a dynamic zcsafe: cell {:.1} s, whole matrix {:.1} s",
        c["seconds"].as_f64().unwrap_or(f64::NAN),
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn a_dynamically_linked_c_sender_is_judged_safe_or_corrupt_over_remote() {
    let test = "external C sender in a guest";
    let Some(zcsafe) = guest_ready(test) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let Some(exe) = c_sender(test, t.path(), &[]) else {
        return;
    };
    // The correct mode waits for the zerocopy notifications; the buggy one reuses the
    // buffer at once. The sender is named by its host path only: no --carry.
    for (mode, verdict, status) in [("zc-wait", "safe", 0), ("zc-naive", "corrupt", 1)] {
        let cmd = format!("{} {{host}} {{port}} --mode {mode}", exe.display());
        let start = Instant::now();
        let out = t.path().join(mode);
        let (o, v) = matrix(
            &zcsafe,
            &["--transports", "remote", "--external", &cmd],
            &out,
            &[],
        );
        let c = only_cell(&v);
        assert_eq!(c["policy"], "external", "{c:#}");
        assert_eq!(c["verdict"], verdict, "{mode}: {c:#}");
        assert_eq!(c["expected"], "safe");
        let counts = &c["evidence"]["counts"];
        assert_eq!(
            counts["command"].as_str().unwrap().split(' ').next(),
            Some("/opt/zcsafe/bin/zc_sender"),
            "the guest ran the carried copy: {c:#}"
        );
        assert!(counts["received"]["bytes"].as_u64().unwrap() > 0, "{c:#}");
        assert_eq!(
            o.status.code(),
            Some(status),
            "{mode}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        eprintln!(
            "{mode} over remote on 5.10: {verdict}, cell {:.1} s, whole matrix {:.1} s",
            c["seconds"].as_f64().unwrap_or(f64::NAN),
            start.elapsed().as_secs_f64()
        );
    }
}

#[test]
fn a_matrix_in_which_no_cell_ran_exits_2_and_says_so() {
    let test = "no cell ran";
    let Some(zcsafe) = guest_ready(test) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    // The cell command fails in every guest: nothing is judged.
    let (o, v) = matrix(
        &zcsafe,
        &[
            "--policies",
            "copy",
            "--transports",
            "loopback",
            "--command",
            "false",
        ],
        t.path(),
        &[],
    );
    assert_eq!(only_cell(&v)["verdict"], "error");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no cell was judged"), "{err}");
}

#[test]
fn a_library_from_outside_the_loaders_path_is_found_in_the_guest() {
    let test = "library off the loader's path";
    let Some(zcsafe) = guest_ready(test) else {
        return;
    };
    let Some(cc) = cc(test) else {
        return;
    };
    // A library in a build tree under /tmp (which the guest mounts a tmpfs over), found on
    // the host through LD_LIBRARY_PATH only; the sender needs it (--no-as-needed).
    let t = tempfile::tempdir().unwrap();
    let libdir = t.path().join("lib");
    std::fs::create_dir(&libdir).unwrap();
    let src = t.path().join("probe.c");
    std::fs::write(&src, "int zcsafe_probe(void) { return 7; }\n").unwrap();
    let lib = libdir.join("libzcsafeprobe.so.1");
    let ok = Command::new(&cc)
        .args(["-shared", "-fPIC", "-Wl,-soname,libzcsafeprobe.so.1", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok);
    let Some(exe) = c_sender(
        test,
        t.path(),
        &["-Wl,--no-as-needed".as_ref(), lib.as_os_str()],
    ) else {
        return;
    };
    let cmd = format!("{} {{host}} {{port}} --mode zc-wait", exe.display());
    let args = ["--transports", "veth", "--external", cmd.as_str()];

    // Without LD_LIBRARY_PATH the host's loader cannot resolve it: the error says which
    // library and how to fix it, before any guest boots.
    let o = Command::new(&zcsafe)
        .args(["matrix", "--kernels", "5.10", "--out"])
        .arg(t.path().join("m0"))
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("libzcsafeprobe.so.1") && err.contains("fix:"),
        "{err}"
    );

    let start = Instant::now();
    let (o, v) = matrix(
        &zcsafe,
        &args,
        &t.path().join("m1"),
        &[("LD_LIBRARY_PATH", &libdir)],
    );
    let c = only_cell(&v);
    assert_eq!(c["verdict"], "safe", "{c:#}");
    assert_eq!(o.status.code(), Some(0));
    eprintln!(
        "sender with a library from /tmp on 5.10 veth: cell {:.1} s, whole matrix {:.1} s",
        c["seconds"].as_f64().unwrap_or(f64::NAN),
        start.elapsed().as_secs_f64()
    );
}
