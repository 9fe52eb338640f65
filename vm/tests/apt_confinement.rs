//! The private apt configuration writes only below its own root, and offline or unknown
//! packages fail with a message naming the package and the fix.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use zcsafe_vm::apt::AptRoot;
use zcsafe_vm::{Catalogue, Fetcher, VmError};

/// Path → (size, mtime) of everything below the system's apt directories.
fn snapshot() -> BTreeMap<PathBuf, (u64, Option<SystemTime>)> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<PathBuf> = [
        "/etc/apt",
        "/var/lib/apt",
        "/var/cache/apt",
        "/var/log/apt",
        "/var/lib/dpkg/status",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        out.insert(p.clone(), (md.len(), md.modified().ok()));
        if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    out
}

/// A flat repository with one tiny package.
fn local_repo(test: &str, dir: &Path) -> Option<PathBuf> {
    common::local_repo(
        test,
        dir,
        &[common::FakeDeb {
            name: "zcsafe-test-pkg",
            version: "1.0",
            depends: &[],
            files: &[("usr/share/zcsafe-test/hello", b"hi\n")],
        }],
    )
}

#[test]
fn apt_writes_only_inside_its_root() {
    let t = tempfile::tempdir().unwrap();
    let Some(repo) = local_repo("apt_writes_only_inside_its_root", t.path()) else {
        return;
    };
    let root = t.path().join("aptroot");
    let mut apt = AptRoot::new(&root, "./", &format!("file://{}", repo.display()));
    apt.trusted = true; // the local test repository is unsigned; real roots use signed-by

    let before = snapshot();
    apt.update()
        .expect("apt-get update of the local repository");
    let info = apt.show("zcsafe-test-pkg").expect("apt-cache show");
    assert_eq!(info.version, "1.0");
    let debs = apt
        .download(&["zcsafe-test-pkg".to_string()], &root.join("download"))
        .expect("apt-get download");
    assert_eq!(debs.len(), 1);
    assert!(debs[0].starts_with(&root));
    let missing = apt.show("zcsafe-no-such-package").unwrap_err();
    assert!(
        matches!(missing, VmError::NoSuchPackage { .. }),
        "{missing}"
    );
    assert!(missing.to_string().contains("zcsafe-no-such-package"));
    let after = snapshot();

    let changed: Vec<_> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(v))
        .map(|(p, _)| p.clone())
        .chain(before.keys().filter(|p| !after.contains_key(*p)).cloned())
        .collect();
    assert!(changed.is_empty(), "apt touched system paths: {changed:?}");
    // And the configuration names only paths below the root.
    let conf = std::fs::read_to_string(root.join("etc/apt.conf")).unwrap();
    for line in conf
        .lines()
        .filter(|l| l.starts_with("Dir::") && !l.contains("\"\"") && !l.contains("/bin/false"))
    {
        assert!(line.contains(&root.display().to_string()), "{line}");
    }
}

#[test]
fn offline_fetch_names_the_package_and_the_fix() {
    if common::which("apt-get").is_none() {
        common::skip(
            "offline_fetch_names_the_package_and_the_fix",
            "apt-get not installed",
        );
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // Port 9 (discard) on localhost: connection refused at once, like an offline machine.
    let cat = Catalogue::parse(
        "mirror = \"http://127.0.0.1:9/debian\"\n[[kernel]]\nname = \"5.10\"\nsuite = \"bullseye\"\nseries = \"5.10\"\nmeta = \"linux-image-cloud-amd64\"\n",
        "test",
    )
    .unwrap();
    let mut f = Fetcher::new(t.path().to_path_buf(), &cat);
    f.mirror = "http://127.0.0.1:9/debian".into();
    let e = f.fetch(cat.get("5.10").unwrap()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, VmError::Fetch { .. }), "{msg}");
    assert!(msg.contains("linux-image-cloud-amd64"), "{msg}");
    assert!(msg.contains("fix:"), "{msg}");
    // Nothing was written outside the cache dir we gave it.
    assert!(t.path().join("apt/bullseye/etc/apt.conf").is_file());
}
