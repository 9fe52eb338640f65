//! What a file is, as far as running it in the guest goes: a static or dynamically
//! linked x86-64 ELF, a `#!/bin/sh` script, or something the guest cannot run — read from
//! the ELF and program headers, so a wrong file is refused with a reason before any VM
//! boots.

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
    // Little-endian fields; every offset read is bounds-checked below (0 past the end).
    let u32_at = |o: usize| {
        bytes
            .get(o..o.saturating_add(4))
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o.saturating_add(8))
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes) as usize
    };
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
