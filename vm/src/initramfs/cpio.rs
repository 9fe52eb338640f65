//! The newc cpio format the kernel unpacks as its initial root file system: the archive's
//! entries, the writer, a reader (for tests and listings), and the rule that every
//! directory precedes its contents. Nothing here knows what goes into a guest.

use crate::error::{Result, VmError};
use flate2::write::GzEncoder;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

/// One file in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path without a leading `/`.
    pub path: String,
    /// Full `st_mode` (type and permissions).
    pub mode: u32,
    pub data: Vec<u8>,
}

pub(crate) const S_IFDIR: u32 = 0o040000;
pub(crate) const S_IFREG: u32 = 0o100000;
pub(crate) const S_IFLNK: u32 = 0o120000;
pub(crate) const S_IFMT: u32 = 0o170000;

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

/// `entries` with a directory entry before the first entry inside it, for every directory
/// not already listed (the kernel's unpacker does not create parents).
pub(crate) fn with_parent_dirs(entries: Vec<Entry>) -> Vec<Entry> {
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
}
