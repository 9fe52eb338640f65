//! What `zcsafe sanitize` must know of a program file before it runs it: whether the
//! dynamic loader will start it (a `PT_INTERP` header), since only the loader honours
//! `LD_PRELOAD`; and, for symbolising a faulting instruction, which virtual address a
//! file offset is loaded at.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;

/// A program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// `p_type`.
    pub kind: u32,
    /// `p_offset`.
    pub offset: u64,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_filesz`.
    pub filesz: u64,
}

/// The program headers of a 64-bit little-endian ELF file.
pub fn segments(bytes: &[u8]) -> Option<Vec<Segment>> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(bytes.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(bytes.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(bytes.get(o..o + 8)?.try_into().ok()?));
    let phoff = u64_at(32)? as usize;
    let phentsize = u16_at(54)? as usize;
    let phnum = u16_at(56)? as usize;
    (0..phnum)
        .map(|i| {
            let h = phoff + i * phentsize;
            Some(Segment {
                kind: u32_at(h)?,
                offset: u64_at(h + 8)?,
                vaddr: u64_at(h + 16)?,
                filesz: u64_at(h + 32)?,
            })
        })
        .collect()
}

/// The virtual address (as the ELF file numbers it, what `addr2line` takes) of a file
/// offset inside a loaded segment.
pub fn vaddr_of(bytes: &[u8], offset: u64) -> Option<u64> {
    segments(bytes)?
        .into_iter()
        .find(|s| s.kind == PT_LOAD && s.offset <= offset && offset < s.offset + s.filesz)
        .map(|s| offset - s.offset + s.vaddr)
}

/// `name` as the shell would find it (a path as given, else the first match in `PATH`).
pub fn resolve(name: &str) -> Result<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        if !p.is_file() {
            bail!("{name}: no such program file");
        }
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name}: not found in PATH"))
}

/// Refuses a program the preloaded runtime cannot reach: statically linked (no
/// `PT_INTERP`), or not an ELF program at all. A `#!` script is judged by its
/// interpreter.
pub fn check_preloadable(program: &Path) -> Result<()> {
    check_at(program, 0)
}

fn check_at(program: &Path, depth: u32) -> Result<()> {
    let bytes = std::fs::read(program)
        .with_context(|| format!("cannot read the program {}", program.display()))?;
    if let Some(rest) = bytes.strip_prefix(b"#!") {
        let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
        let interp = String::from_utf8_lossy(line);
        let Some(interp) = interp.split_whitespace().next() else {
            bail!("{}: a #! line without an interpreter", program.display());
        };
        if depth > 2 {
            bail!("{}: #! interpreters nest too deep", program.display());
        }
        return check_at(Path::new(interp), depth + 1);
    }
    let Some(segs) = segments(&bytes) else {
        bail!(
            "{} is not a 64-bit ELF program (nor a #! script): zcsafe sanitize runs x86-64 Linux programs",
            program.display()
        );
    };
    if !segs.iter().any(|s| s.kind == PT_INTERP) {
        bail!(
            "{} is statically linked (its ELF file has no PT_INTERP): the dynamic loader never \
             runs, so LD_PRELOAD cannot put the sanitizer into it; build it dynamically linked \
             (e.g. without -static, or without crt-static for Rust)",
            program.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_programs_pass_and_a_script_is_judged_by_its_interpreter() {
        let sh = resolve("sh").unwrap();
        check_preloadable(&sh).unwrap();
        let dir = std::env::temp_dir().join(format!("zcsafe-elf-{}", std::process::id()));
        std::fs::write(&dir, "#!/bin/sh\necho hi\n").unwrap();
        check_preloadable(&dir).unwrap();
        std::fs::write(&dir, "plain text").unwrap();
        let e = check_preloadable(&dir).unwrap_err().to_string();
        std::fs::remove_file(&dir).unwrap();
        assert!(e.contains("not a 64-bit ELF program"), "{e}");
        let bytes = std::fs::read(&sh).unwrap();
        let text = segments(&bytes)
            .unwrap()
            .into_iter()
            .find(|s| s.kind == PT_LOAD && s.offset > 0)
            .unwrap();
        assert_eq!(vaddr_of(&bytes, text.offset + 1), Some(text.vaddr + 1));
    }

    /// A minimal ELF file: the header and the given program headers.
    fn elf(kinds: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(kinds.len() as u16).to_le_bytes());
        for k in kinds {
            let mut h = vec![0u8; 56];
            h[..4].copy_from_slice(&k.to_le_bytes());
            b.extend(h);
        }
        b
    }

    #[test]
    fn a_static_program_is_refused_with_the_reason() {
        let p = std::env::temp_dir().join(format!("zcsafe-static-{}", std::process::id()));
        std::fs::write(&p, elf(&[PT_LOAD])).unwrap();
        let e = check_preloadable(&p).unwrap_err().to_string();
        std::fs::write(&p, elf(&[PT_LOAD, PT_INTERP])).unwrap();
        let ok = check_preloadable(&p);
        std::fs::remove_file(&p).unwrap();
        assert!(
            e.contains("statically linked") && e.contains("PT_INTERP"),
            "{e}"
        );
        ok.unwrap();
    }
}
