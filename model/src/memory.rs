//! Pages and what they contain: the user's buffer, tmpfs files, and references to them.
//!
//! The model works in whole pages (`Geometry::page == 1`), so a page holds one stream
//! unit. A [`DataRef`] is what a kernel object (pipe buffer, skb frag) points at: a user
//! page, a page-cache page, or bytes the kernel copied. Reading a reference yields the
//! page's content *now* — that is how early reuse turns into wrong bytes.

use zcsafe_policy::{FileId, Page, Region};

/// What a page holds: the stream unit written into it, or zeroes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Content(u16);

impl Content {
    pub const ZERO: Content = Content(u16::MAX);

    pub fn unit(unit: u64) -> Content {
        Content(u16::try_from(unit).expect("model streams are short"))
    }

    /// The stream unit, or `None` for a zero page.
    pub fn stream_unit(self) -> Option<u64> {
        (self != Content::ZERO).then_some(self.0 as u64)
    }
}

/// A kernel reference to data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataRef {
    /// Page `n` of the user buffer (as mapped when the reference was taken).
    User(u16),
    /// Page `n` of a tmpfs file, in the page cache.
    File(FileId, u16),
    /// Bytes the kernel copied (or a page nobody can write any more).
    Copied(Content),
}

/// User buffer pages and tmpfs files.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Memory {
    /// Per user page: its content, or `None` while unmapped.
    user: Vec<Option<Content>>,
    /// Per file slot: its pages, or `None` if it does not exist.
    files: Vec<Option<Vec<Content>>>,
}

clone_reusing!(Memory { user, files });

/// Memory access the application got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("page {0} of the buffer is not mapped (SIGSEGV)")]
    Unmapped(u64),
    #[error("page {0} is outside the buffer")]
    OutOfBuffer(u64),
    #[error("file {0} does not exist")]
    NoFile(FileId),
    #[error("file {file} has no page {page}")]
    PastEof { file: FileId, page: u64 },
}

impl Memory {
    pub fn new(buffer_pages: u64) -> Memory {
        Memory {
            user: vec![Some(Content::ZERO); buffer_pages as usize],
            files: Vec::new(),
        }
    }

    fn user_page(&self, page: u64) -> Result<Content, Fault> {
        match self.user.get(page as usize) {
            None => Err(Fault::OutOfBuffer(page)),
            Some(None) => Err(Fault::Unmapped(page)),
            Some(Some(c)) => Ok(*c),
        }
    }

    /// The current content behind a reference. Dangling references cannot exist: pages
    /// are frozen into copies before they become unreachable (see [`Memory::unmap`]).
    pub fn read(&self, r: DataRef) -> Content {
        match r {
            DataRef::User(p) => self.user[p as usize].expect("frozen before unmap"),
            DataRef::File(f, p) => self.files[f as usize]
                .as_ref()
                .expect("frozen before unlink")[p as usize],
            DataRef::Copied(c) => c,
        }
    }

    /// Writes stream units `stream..` into the user pages of `buf`.
    pub fn fill(&mut self, buf: Region, stream: u64) -> Result<(), Fault> {
        for i in 0..buf.len {
            self.user_page(buf.offset + i)?;
        }
        for i in 0..buf.len {
            self.user[(buf.offset + i) as usize] = Some(Content::unit(stream + i));
        }
        Ok(())
    }

    /// References to the user pages of `buf`, checking they are mapped.
    pub fn user_refs(&self, buf: Region) -> Result<Vec<DataRef>, Fault> {
        (buf.offset..buf.end())
            .map(|p| self.user_page(p).map(|_| DataRef::User(p as u16)))
            .collect()
    }

    /// Unmaps `buf`. The caller must first freeze kernel references to these pages:
    /// the kernel keeps the old pages alive, but nobody can change them any more.
    pub fn unmap(&mut self, buf: Region) -> Result<(), Fault> {
        for p in buf.offset..buf.end() {
            self.user_page(p)?;
        }
        for p in buf.offset..buf.end() {
            self.user[p as usize] = None;
        }
        Ok(())
    }

    /// Maps fresh zero pages at `buf` (`MAP_FIXED` replaces whatever was there).
    pub fn map(&mut self, buf: Region) -> Result<(), Fault> {
        if buf.end() > self.user.len() as u64 {
            return Err(Fault::OutOfBuffer(buf.end() - 1));
        }
        for p in buf.offset..buf.end() {
            self.user[p as usize] = Some(Content::ZERO);
        }
        Ok(())
    }

    fn file_mut(&mut self, file: FileId) -> Result<&mut Vec<Content>, Fault> {
        self.files
            .get_mut(file as usize)
            .and_then(Option::as_mut)
            .ok_or(Fault::NoFile(file))
    }

    /// Creates (or truncates to empty) a file. Truncation drops pages from the page
    /// cache; the caller freezes references first.
    pub fn create(&mut self, file: FileId) {
        let i = file as usize;
        if self.files.len() <= i {
            self.files.resize(i + 1, None);
        }
        self.files[i] = Some(Vec::new());
    }

    pub fn exists(&self, file: FileId) -> bool {
        matches!(self.files.get(file as usize), Some(Some(_)))
    }

    /// `pwrite`: overwrites page-cache pages in place, extending the file as needed.
    pub fn write_file(&mut self, file: FileId, region: Region, stream: u64) -> Result<(), Fault> {
        let pages = self.file_mut(file)?;
        if pages.len() < region.end() as usize {
            pages.resize(region.end() as usize, Content::ZERO);
        }
        for i in 0..region.len {
            pages[(region.offset + i) as usize] = Content::unit(stream + i);
        }
        Ok(())
    }

    /// References to the page-cache pages of a file region.
    pub fn file_refs(&self, file: FileId, region: Region) -> Result<Vec<DataRef>, Fault> {
        let pages = self
            .files
            .get(file as usize)
            .and_then(Option::as_ref)
            .ok_or(Fault::NoFile(file))?;
        (region.offset..region.end())
            .map(|p| {
                if (p as usize) < pages.len() {
                    Ok(DataRef::File(file, p as u16))
                } else {
                    Err(Fault::PastEof { file, page: p })
                }
            })
            .collect()
    }

    /// References to the pages of a file region that exist (none if the file does not):
    /// what a write over the region rewrites rather than extends.
    pub fn file_refs_existing(&self, file: FileId, region: Region) -> Vec<DataRef> {
        let len = match self.files.get(file as usize) {
            Some(Some(pages)) => pages.len() as u64,
            _ => 0,
        };
        (region.offset..region.end().min(len))
            .map(|p| DataRef::File(file, p as u16))
            .collect()
    }

    /// Removes a file. The caller freezes references first.
    pub fn remove(&mut self, file: FileId) -> Result<(), Fault> {
        self.file_mut(file)?;
        self.files[file as usize] = None;
        Ok(())
    }

    /// Bytes of the heap buffers behind the pages (see `Kernel::heap_bytes`).
    pub fn heap_bytes(&self) -> usize {
        let header = crate::kernel::MALLOC_HEADER;
        let files: usize = (self.files.iter().flatten())
            .map(|f| f.capacity() * std::mem::size_of::<Content>() + header)
            .sum();
        self.user.capacity() * std::mem::size_of::<Option<Content>>()
            + self.files.capacity() * std::mem::size_of::<Option<Vec<Content>>>()
            + 2 * header
            + files
    }

    /// Number of user pages.
    pub fn user_pages(&self) -> u64 {
        self.user.len() as u64
    }

    /// `(name, content)` of every existing page, for timelines.
    pub fn pages(&self) -> Vec<(DataRef, Option<Content>)> {
        let mut out: Vec<_> = (0..self.user.len())
            .map(|p| (DataRef::User(p as u16), self.user[p]))
            .collect();
        for (f, pages) in self.files.iter().enumerate() {
            for (p, c) in pages.iter().flatten().enumerate() {
                out.push((DataRef::File(f as FileId, p as u16), Some(*c)));
            }
        }
        out
    }
}

impl DataRef {
    /// The page a reference names, as traces name it; `None` for a copy.
    pub fn page(&self) -> Option<Page> {
        match *self {
            DataRef::User(p) => Some(Page::Buf(p)),
            DataRef::File(f, p) => Some(Page::File(f, p)),
            DataRef::Copied(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_see_writes_until_frozen() {
        let mut m = Memory::new(2);
        m.fill(Region::new(0, 2), 10).unwrap();
        let r = m.user_refs(Region::new(1, 1)).unwrap()[0];
        assert_eq!(m.read(r), Content::unit(11));
        m.fill(Region::new(1, 1), 20).unwrap();
        assert_eq!(m.read(r), Content::unit(20), "a reference sees the reuse");
        m.unmap(Region::new(1, 1)).unwrap();
        assert_eq!(m.fill(Region::new(1, 1), 0), Err(Fault::Unmapped(1)));
        m.map(Region::new(1, 1)).unwrap();
        assert_eq!(m.user_refs(Region::new(1, 1)).unwrap().len(), 1);
    }

    #[test]
    fn files_are_overwritten_in_place() {
        let mut m = Memory::new(1);
        assert_eq!(m.file_refs(0, Region::new(0, 1)), Err(Fault::NoFile(0)));
        m.create(0);
        m.write_file(0, Region::new(0, 1), 3).unwrap();
        let r = m.file_refs(0, Region::new(0, 1)).unwrap()[0];
        m.write_file(0, Region::new(0, 1), 4).unwrap();
        assert_eq!(m.read(r), Content::unit(4));
        assert!(matches!(
            m.file_refs(0, Region::new(0, 2)),
            Err(Fault::PastEof { .. })
        ));
    }
}
