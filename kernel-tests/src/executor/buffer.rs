//! The user buffer: `Fill` (the application writes the stream into it), `Munmap` and
//! `Mmap` (it gives pages back and maps fresh ones at the same addresses).
//!
//! Why a module: the buffer's page table (`mapped`) is what makes `Fill` of an unmapped
//! page a policy bug instead of a SIGSEGV, and the three operations that read or change
//! it belong together.

use super::{Executor, Halt, Step};
use zcsafe_policy::{stream, Outcome, Region};

/// [`stream::fill`], a word at a time when the range is word-aligned (every policy's
/// is): five times faster, so the sender is not slowed down by producing the stream.
pub(super) fn fill(dst: &mut [u8], offset: u64, seed: u64) {
    if offset % 8 != 0 || dst.len() % 8 != 0 {
        return stream::fill(dst, offset, seed);
    }
    let k0 = offset / 8;
    for (i, w) in dst.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&stream::word(k0 + i as u64, seed).to_le_bytes());
    }
}

impl Executor {
    /// `Op::Fill`: writes stream bytes from offset `at` into `buf`.
    pub(super) fn fill(&mut self, buf: Region, at: u64) -> Step {
        let (off, len) = self.region(buf)?;
        let ps = self.g.page;
        if let Some(p) =
            (buf.offset / ps..buf.end().div_ceil(ps)).find(|&p| !self.mapped[p as usize])
        {
            return Err(Halt::Failed(format!(
                "policy filled buf{buf}, but page {p} is unmapped"
            )));
        }
        // On UDP the tracker's bound is the error queue: read it as of now.
        self.udp_before_fill();
        self.reuses.fill(buf, at);
        fill(self.buf.slice_mut(off, len), at, self.seed);
        Ok(Outcome::Ok)
    }

    /// `Op::Munmap`: leaves a hole in the buffer.
    pub(super) fn munmap(&mut self, buf: Region) -> Step {
        let (off, len) = self.region(buf)?;
        self.page_aligned(buf)?;
        // SAFETY: a page-aligned range inside our mapping (checked above); `set_mapped`
        // records the hole, and Fill, the only writer, refuses holes.
        if let Err(e) = unsafe { self.buf.unmap(off, len) } {
            return Ok(self.err("munmap", &e));
        }
        self.set_mapped(buf, false);
        self.reuses.release_buf(buf);
        Ok(Outcome::Ok)
    }

    /// `Op::Mmap`: fresh zeroed pages where `buf` was.
    pub(super) fn mmap(&mut self, buf: Region) -> Step {
        let (off, len) = self.region(buf)?;
        self.page_aligned(buf)?;
        if let Err(e) = self.buf.map_fixed(off, len) {
            return Ok(self.err("mmap(MAP_FIXED)", &e));
        }
        self.set_mapped(buf, true);
        self.reuses.release_buf(buf);
        Ok(Outcome::Ok)
    }

    fn page_aligned(&self, r: Region) -> Result<(), Halt> {
        if r.offset % self.g.page != 0 || r.len % self.g.page != 0 {
            return Err(Halt::Failed(format!("buf{r} is not whole pages")));
        }
        Ok(())
    }

    fn set_mapped(&mut self, r: Region, on: bool) {
        for p in r.offset / self.g.page..r.end() / self.g.page {
            self.mapped[p as usize] = on;
        }
    }
}
