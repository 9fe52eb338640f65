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
    matrix_on(zcsafe, &["--kernels", "5.10"], args, out, env)
}

/// [`matrix`] on the kernels `kernels` names (`--kernels …`, `--kernel-image …`).
fn matrix_on(
    zcsafe: &Path,
    kernels: &[&str],
    args: &[&str],
    out: &Path,
    env: &[(&str, &Path)],
) -> (Output, serde_json::Value) {
    let o = Command::new(zcsafe)
        .envs(env.iter().copied())
        .arg("matrix")
        .args(kernels)
        .args(["--jobs", "1", "--json", "--out"])
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

/// The cells of a matrix's JSON, by policy.
fn cell<'a>(v: &'a serde_json::Value, policy: &str) -> &'a serde_json::Value {
    v["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|c| c["policy"] == policy)
        .unwrap_or_else(|| panic!("no {policy} cell: {v:#}"))
}

/// Exit status 3, infrastructure, for real: in a 5.10 guest a cell that panics the kernel
/// (sysrq `c`: QEMU ends at once, `panic=-1 -no-reboot`) after a cell that judged its
/// policy. The error says why, in the kernel's words. (A cell past its timeout is the same
/// kind of `error`: vm/tests/boot.rs.)
#[test]
fn a_kernel_panic_beside_a_judged_cell_exits_3_saying_why() {
    let test = "exit 3: kernel panic";
    let Some(zcsafe) = guest_ready(test) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let command = "case {policy} in \
        zc-naive) echo c > /proc/sysrq-trigger; sleep 30 ;; \
        *) zcsafe run --policy {policy} --transport {transport} --json ;; esac";
    let start = Instant::now();
    let (o, v) = matrix(
        &zcsafe,
        &[
            "--policies",
            "copy,zc-naive",
            "--transports",
            "veth",
            "--command",
            command,
        ],
        t.path(),
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(cell(&v, "copy")["verdict"], "safe", "{v:#}\n{err}");
    let panicked = cell(&v, "zc-naive");
    assert_eq!(panicked["verdict"], "error");
    let detail = panicked["evidence"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("before the guest finished")
            && detail.contains("kernel died: Kernel panic - not syncing: sysrq triggered crash"),
        "{panicked:#}"
    );
    assert!(
        panicked["console_tail"].as_str().unwrap().contains("sysrq"),
        "{panicked:#}"
    );
    assert_eq!(o.status.code(), Some(3), "{err}");
    eprintln!(
        "kernel panic beside a judged cell on 5.10: exit 3 in {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

/// `--retries 1` in a real guest: a sender that reuses its buffer at once on its first
/// run (corrupt, a contradiction: the guest command exits 1) and waits for the
/// notifications on the next is rerun once, in the same guest, and reported as agreed
/// after retry — exit 0, both verdicts in the JSON, a flakyFailure in the JUnit file.
#[test]
fn a_sender_that_contradicts_once_is_rerun_and_reported_flaky() {
    let test = "--retries in a guest";
    let Some(zcsafe) = guest_ready(test) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let Some(exe) = c_sender(test, t.path(), &[]) else {
        return;
    };
    let script = t.path().join("flaky-sender");
    std::fs::write(
        &script,
        "#!/bin/sh\n# The first run reuses the buffer at once, later runs wait (a flaky sender).\n\
         if [ -e /run/flaky-sender.tried ]; then mode=zc-wait; else : > /run/flaky-sender.tried; mode=zc-naive; fi\n\
         exec zc_sender \"$1\" \"$2\" --mode $mode\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cmd = format!("{} {{host}} {{port}}", script.display());
    let junit = t.path().join("j.xml");
    let (o, v) = matrix(
        &zcsafe,
        &[
            "--transports",
            "remote",
            "--external",
            &cmd,
            "--carry",
            exe.to_str().unwrap(),
            "--retries",
            "1",
            "--junit",
            junit.to_str().unwrap(),
        ],
        &t.path().join("m"),
        &[],
    );
    let c = only_cell(&v);
    assert_eq!(c["verdict"], "safe", "{c:#}");
    assert_eq!(
        c["evidence"]["attempts"],
        serde_json::json!(["corrupt", "safe"]),
        "{c:#}"
    );
    assert_eq!(c["evidence"]["counts"]["retries"], 1);
    assert!(
        c["evidence"]["detail"]
            .as_str()
            .unwrap()
            .contains("agreed after 1 retry (flaky)"),
        "{c:#}"
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("failures=\"0\""), "{xml}");
    assert!(
        xml.contains("<flakyFailure message=\"attempt 1 of 2: verdict corrupt, expected safe\""),
        "{xml}"
    );
    let md = std::fs::read_to_string(t.path().join("m/matrix.md")).unwrap();
    assert!(md.contains("safe ✓ (flaky: 1 retry)"), "{md}");
}

/// The cached 5.10 kernel's unpacked tree, which the user-kernel tests repackage.
fn debian_tree(test: &str) -> Option<(zcsafe_vm::Kernel, PathBuf)> {
    let k = common::kernel(test)?;
    let tree = k.vmlinuz.parent()?.parent()?.to_path_buf();
    Some((k, tree))
}

/// `--kernel-image` with a Debian kernel given by path, as a linux-image .deb (built here
/// from the cached 5.10 package's files with dpkg-deb): the matrix runs on it, its cells
/// and JUnit cases are named after its `uname -r`, its profile is probed in the guest.
/// The same kernel as an image plus modules, and as a build tree, resolves to the same
/// release (no boot: one guest is enough).
#[test]
fn your_own_kernel_given_as_a_deb_runs_the_matrix_under_its_release() {
    let test = "--kernel-image";
    let Some(zcsafe) = guest_ready(test) else {
        return;
    };
    let Some((k, tree)) = debian_tree(test) else {
        return;
    };
    if common::which("dpkg-deb").is_none() {
        common::skip(test, "dpkg-deb is not installed (apt-get install dpkg)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let pkg = t.path().join("pkg");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&tree)
        .arg(&pkg)
        .status()
        .unwrap();
    assert!(cp.success());
    std::fs::remove_file(pkg.join(".complete")).ok();
    std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    let package = k.packages.first().cloned().unwrap_or_default();
    std::fs::write(
        pkg.join("DEBIAN/control"),
        format!(
            "Package: {package}\nVersion: {}\nArchitecture: amd64\nMaintainer: zcsafe tests <t@example.org>\nDescription: the cached Debian kernel, repackaged\n",
            k.version
        ),
    )
    .unwrap();
    let deb = t.path().join(format!("{package}_{}_amd64.deb", k.version));
    let built = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Znone", "--build"])
        .arg(&pkg)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    std::fs::remove_dir_all(&pkg).unwrap();

    let cache = t.path().join("cache");
    let junit = t.path().join("j.xml");
    let start = Instant::now();
    let (o, v) = matrix_on(
        &zcsafe,
        &["--kernel-image", deb.to_str().unwrap()],
        &[
            "--policies",
            "copy,zc-naive",
            "--transports",
            "veth",
            "--junit",
            junit.to_str().unwrap(),
        ],
        &t.path().join("m"),
        &[("ZCSAFE_CACHE_DIR", &cache)],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{v:#}\n{err}");
    let kernels = v["kernels"].as_array().unwrap();
    assert_eq!(kernels.len(), 1, "only the user's kernel: {v:#}");
    assert_eq!(kernels[0]["name"], k.release.as_str());
    assert_eq!(kernels[0]["suite"], "local");
    assert_eq!(kernels[0]["version"], k.version.as_str());
    for (policy, verdict) in [("copy", "safe"), ("zc-naive", "corrupt")] {
        let c = cell(&v, policy);
        assert_eq!(c["kernel_name"], k.release.as_str(), "{c:#}");
        assert_eq!(
            c["kernel"],
            k.release.as_str(),
            "the guest's uname -r: {c:#}"
        );
        assert_eq!(c["verdict"], verdict, "{c:#}");
        assert!(
            c["rerun"]
                .as_str()
                .unwrap()
                .starts_with(&format!("zcsafe matrix --kernel-image {}", deb.display())),
            "{c:#}"
        );
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("tests=\"2\" failures=\"0\" errors=\"0\" skipped=\"0\""),
        "{xml}"
    );
    for policy in ["copy", "zc-naive"] {
        let name = format!("<testcase name=\"{}/veth/{policy}\"", k.release);
        assert!(xml.contains(&name), "{name}: {xml}");
    }
    eprintln!(
        "user kernel {} from a .deb: exit 0 in {:.1} s",
        k.release,
        start.elapsed().as_secs_f64()
    );

    // The same kernel as an image with its modules, and as a build tree.
    let same = |k2: zcsafe_vm::Kernel| {
        assert_eq!(k2.release, k.release);
        assert_eq!(k2.modules.file_name(), k.modules.file_name());
    };
    same(zcsafe_vm::kernel_image::resolve(&k.vmlinuz, Some(&k.modules), &cache).unwrap());
    let build = t.path().join("linux");
    std::fs::create_dir_all(build.join("arch/x86/boot")).unwrap();
    std::fs::copy(&k.vmlinuz, build.join("arch/x86/boot/bzImage")).unwrap();
    same(zcsafe_vm::kernel_image::resolve(&build, Some(&tree), &cache).unwrap());
}
