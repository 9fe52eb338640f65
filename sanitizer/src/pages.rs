//! Which pages the runtime write-protects, and why.
//!
//! A page is protected while some in-flight range touches it (`pins`), unless a system
//! call is about to write into it (`lifts`: the kernel would fail with `EFAULT`) or a
//! thread is single-stepping a store to it (`steps`). Pages that were not writable to
//! begin with are never touched. Every change of the wanted state is applied at once,
//! under the tracker's lock, so the table and the real protection agree.

use std::collections::BTreeMap;

/// Page size of x86-64 Linux.
pub const PAGE: u64 = 4096;

/// The first page of `addr`.
pub fn page_of(addr: u64) -> u64 {
    addr & !(PAGE - 1)
}

/// The pages `[start, start + len)` touches.
pub fn pages(start: u64, len: u64) -> impl Iterator<Item = u64> {
    let first = page_of(start);
    let end = if len == 0 {
        first
    } else {
        page_of(start.saturating_add(len - 1)) + PAGE
    };
    (first..end).step_by(PAGE as usize)
}

/// Applies a protection to one page (`mprotect`; a recorder in unit tests).
pub trait Protect {
    /// Sets `page`'s protection to `prot`; false if that failed.
    fn protect(&mut self, page: u64, prot: i32) -> bool;
    /// The protection of `page` before the runtime touched it (`None`: unmapped, or a
    /// page the runtime must leave alone, such as a thread's stack).
    fn original(&mut self, page: u64) -> Option<i32>;
}

/// One page the runtime knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// In-flight ranges touching it.
    pub pins: u32,
    /// System calls writing into it right now.
    pub lifts: u32,
    /// Threads single-stepping a store to it.
    pub steps: u32,
    /// Its protection before; `None`: not writable, never protected.
    pub writable_prot: Option<i32>,
    /// Whether it is write-protected now.
    pub protected: bool,
    /// A premature write to it was reported: it stays writable until another range
    /// pins it (otherwise every store of a `memcpy` over a held buffer would trap).
    pub reported: bool,
}

impl Page {
    fn wanted(&self) -> bool {
        self.pins > 0
            && self.lifts == 0
            && self.steps == 0
            && !self.reported
            && self.writable_prot.is_some()
    }
}

/// The table of pages.
#[derive(Debug, Default)]
pub struct Pages {
    map: BTreeMap<u64, Page>,
    /// `mprotect` calls that failed.
    pub failures: u64,
}

impl Pages {
    /// The state of `page`, if the runtime knows it.
    pub fn get(&self, page: u64) -> Option<&Page> {
        self.map.get(&page)
    }

    /// Whether any page is protected or tracked (the fast path skips everything else).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn entry(&mut self, page: u64, p: &mut impl Protect) -> &mut Page {
        self.map.entry(page).or_insert_with(|| Page {
            writable_prot: p.original(page).filter(|prot| prot & libc::PROT_WRITE != 0),
            ..Page::default()
        })
    }

    fn settle(&mut self, page: u64, p: &mut impl Protect) {
        let Some(e) = self.map.get_mut(&page) else {
            return;
        };
        let want = e.wanted();
        if want != e.protected {
            let prot = e.writable_prot.unwrap_or(libc::PROT_READ);
            let target = if want { prot & !libc::PROT_WRITE } else { prot };
            if p.protect(page, target) {
                e.protected = want;
            } else {
                self.failures += 1;
            }
        }
        let e = self.map[&page];
        if e.pins == 0 && e.lifts == 0 && e.steps == 0 && !e.protected {
            self.map.remove(&page);
        }
    }

    /// An in-flight range now holds `[start, start + len)`.
    pub fn pin(&mut self, start: u64, len: u64, p: &mut impl Protect) {
        for pg in pages(start, len) {
            let e = self.entry(pg, p);
            e.pins += 1;
            e.reported = false;
            self.settle(pg, p);
        }
    }

    /// That range was released.
    pub fn unpin(&mut self, start: u64, len: u64, p: &mut impl Protect) {
        for pg in pages(start, len) {
            if let Some(e) = self.map.get_mut(&pg) {
                e.pins = e.pins.saturating_sub(1);
            }
            self.settle(pg, p);
        }
    }

    /// A system call will write into `[start, start + len)`: make its known pages
    /// writable, and mark up to `eager` pages as lifted even if unknown, so that a range
    /// pinned meanwhile by another thread stays writable too.
    pub fn lift(&mut self, start: u64, len: u64, eager: u64, p: &mut impl Protect) {
        let n = pages(start, len).count() as u64;
        if n <= eager {
            for pg in pages(start, len) {
                self.entry(pg, p).lifts += 1;
                self.settle(pg, p);
            }
        } else {
            let (lo, hi) = span(start, len);
            let known: Vec<u64> = self.map.range(lo..hi).map(|(k, _)| *k).collect();
            for pg in known {
                if let Some(e) = self.map.get_mut(&pg) {
                    e.lifts += 1;
                }
                self.settle(pg, p);
            }
        }
    }

    /// The system call of [`Pages::lift`] returned (same arguments).
    pub fn unlift(&mut self, start: u64, len: u64, eager: u64, p: &mut impl Protect) {
        let n = pages(start, len).count() as u64;
        let (lo, hi) = span(start, len);
        let known: Vec<u64> = if n <= eager {
            pages(start, len).collect()
        } else {
            self.map.range(lo..hi).map(|(k, _)| *k).collect()
        };
        for pg in known {
            if let Some(e) = self.map.get_mut(&pg) {
                e.lifts = e.lifts.saturating_sub(1);
            }
            self.settle(pg, p);
        }
    }

    /// A premature write to `page` was reported: leave it writable until a new range
    /// pins it.
    pub fn reported(&mut self, page: u64, p: &mut impl Protect) {
        if let Some(e) = self.map.get_mut(&page) {
            e.reported = true;
        }
        self.settle(page, p);
    }

    /// A thread starts single-stepping a store to `page`.
    pub fn step_begin(&mut self, page: u64, p: &mut impl Protect) {
        if let Some(e) = self.map.get_mut(&page) {
            e.steps += 1;
        }
        self.settle(page, p);
    }

    /// That store was executed.
    pub fn step_end(&mut self, page: u64, p: &mut impl Protect) {
        if let Some(e) = self.map.get_mut(&page) {
            e.steps = e.steps.saturating_sub(1);
        }
        self.settle(page, p);
    }

    /// Makes every page writable again and forgets them (a forked child: its copies of
    /// the parent's in-flight ranges are released nowhere it could see).
    pub fn release_all(&mut self, p: &mut impl Protect) {
        let all: Vec<u64> = self.map.keys().copied().collect();
        for pg in all {
            if let Some(e) = self.map.get_mut(&pg) {
                *e = Page {
                    writable_prot: e.writable_prot,
                    protected: e.protected,
                    ..Page::default()
                };
                e.reported = false;
            }
            self.settle(pg, p);
        }
    }
}

fn span(start: u64, len: u64) -> (u64, u64) {
    let first = page_of(start);
    (first, page_of(start.saturating_add(len.max(1) - 1)) + PAGE)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Records protections; every page starts read-write.
    #[derive(Default)]
    pub struct Recorder {
        pub calls: Vec<(u64, i32)>,
        pub readonly: Vec<u64>,
    }

    impl Protect for Recorder {
        fn protect(&mut self, page: u64, prot: i32) -> bool {
            self.calls.push((page, prot));
            true
        }
        fn original(&mut self, page: u64) -> Option<i32> {
            Some(if self.readonly.contains(&page) {
                libc::PROT_READ
            } else {
                libc::PROT_READ | libc::PROT_WRITE
            })
        }
    }

    const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;
    const RO: i32 = libc::PROT_READ;

    #[test]
    fn overlapping_ranges_keep_a_shared_page_protected_until_the_last_release() {
        let (mut t, mut r) = (Pages::default(), Recorder::default());
        t.pin(0x1f00, 0x200, &mut r); // pages 0x1000, 0x2000
        t.pin(0x2100, 0x10, &mut r); // page 0x2000 again
        assert_eq!(r.calls, vec![(0x1000, RO), (0x2000, RO)]);
        t.unpin(0x1f00, 0x200, &mut r);
        assert_eq!(r.calls[2..], [(0x1000, RW)]);
        assert!(t.get(0x2000).unwrap().protected);
        t.unpin(0x2100, 0x10, &mut r);
        assert_eq!(r.calls[3..], [(0x2000, RW)]);
        assert!(t.is_empty());
    }

    #[test]
    fn a_lift_makes_a_page_writable_for_the_call_and_a_step_for_the_store() {
        let (mut t, mut r) = (Pages::default(), Recorder::default());
        t.pin(0x1000, 10, &mut r);
        t.lift(0x1800, 100, 16, &mut r);
        assert_eq!(r.calls, vec![(0x1000, RO), (0x1000, RW)]);
        // a call writes at 0x5000 while another thread's send pins it: stays writable
        t.lift(0x5000, 1, 16, &mut r);
        t.pin(0x5000, 10, &mut r);
        assert!(!t.get(0x5000).unwrap().protected);
        t.unlift(0x5000, 1, 16, &mut r);
        assert!(t.get(0x5000).unwrap().protected);
        t.unlift(0x1800, 100, 16, &mut r);
        assert_eq!(r.calls.last(), Some(&(0x1000, RO)));
        t.step_begin(0x1000, &mut r);
        assert!(!t.get(0x1000).unwrap().protected);
        t.step_end(0x1000, &mut r);
        assert!(t.get(0x1000).unwrap().protected);
        // reported: writable until a new range pins the page
        t.reported(0x1000, &mut r);
        assert!(!t.get(0x1000).unwrap().protected);
        t.pin(0x1100, 8, &mut r);
        assert!(t.get(0x1000).unwrap().protected);
    }

    #[test]
    fn read_only_pages_are_never_touched() {
        let mut r = Recorder {
            readonly: vec![0x3000],
            ..Recorder::default()
        };
        let mut t = Pages::default();
        t.pin(0x3000, 4096, &mut r);
        assert!(r.calls.is_empty());
        t.unpin(0x3000, 4096, &mut r);
        assert!(r.calls.is_empty() && t.is_empty());
    }
}
