//! Where a faulting instruction is in the source: the runtime records the file and the
//! offset in it (from `/proc/self/maps`, in the handler); `addr2line` (binutils, there
//! wherever gcc is) turns that into a function and a line, after the run.

use super::elf;
use std::process::Command;

/// A function and its source position, when the file has symbols (and debug info): the
/// innermost function, if the store was inlined (`addr2line -i` lists the callers after
/// it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The function (demangled).
    pub function: String,
    /// `file:line`, or `??:0` without debug info.
    pub source: String,
}

/// Symbolises `offset` in `module`; `None` if the file or `addr2line` is missing or
/// knows nothing.
pub fn locate(module: &str, offset: u64) -> Option<Location> {
    let bytes = std::fs::read(module).ok()?;
    let vaddr = elf::vaddr_of(&bytes, offset)?;
    let out = Command::new("addr2line")
        .args(["-f", "-i", "-C", "-e", module])
        .arg(format!("{vaddr:#x}"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let function = lines.next()?.trim().to_string();
    let source = lines.next().unwrap_or("??:0").trim().to_string();
    (function != "??").then_some(Location { function, source })
}
