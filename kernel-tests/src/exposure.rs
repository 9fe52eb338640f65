//! How far a kernel run exercised the hazard it tests.
//!
//! A real kernel does not show who holds a page, so "no corruption seen" is evidence only
//! if the application rewrote a buffer (or a file page) while the stream bytes it held
//! before had not yet reached the receiving application: somewhere in a pipe, a socket
//! queue, a device ring or the peer's receive queue, where a zero-copy path still reads
//! the page. Every rewrite is a *reuse*; one whose previous bytes were still unread is a
//! *reuse while unread* — the moment an early reuse corrupts the stream. A `safe` run with
//! none of those says nothing about the reuse rule it was meant to test.
//!
//! The receiver publishes an upper bound of the bytes it has consumed ([`Consumed`]),
//! raised *before* each read: a sample taken by the sender may count a reuse as not
//! exposed when it was, never the other way round.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use zcsafe_policy::{FileId, Region};

/// The receiver's consumed-bytes bound, shared with the sender's executor.
#[derive(Clone, Debug, Default)]
pub struct Consumed(Arc<AtomicU64>);

impl Consumed {
    /// The receiver is about to read up to `bound` bytes of the stream in all.
    pub fn will_read_upto(&self, bound: u64) {
        self.0.fetch_max(bound, Ordering::SeqCst);
    }

    /// At most this many stream bytes have left the kernel for the receiving application.
    pub fn upper(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A page whose stream content the tracker follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum PageKey {
    Buf(u64),
    File(FileId, u64),
}

/// What a run's reuses showed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exposure {
    /// Writes into pages that held stream bytes before (`fill`, `pwrite`).
    pub reuses: u64,
    /// Of those, the writes made while some of the previous bytes were not yet read by
    /// the receiving application: the hazard, exercised.
    pub reuses_while_unread: u64,
    /// The most stream bytes the receiver was behind the end of a rewritten page's
    /// previous content, at one reuse.
    pub max_unread_bytes: u64,
    /// Pages that held stream bytes and were given back instead of rewritten: `munmap`,
    /// `mmap` over them, `unlink`, a file truncated by re-creating it — the policies that
    /// never rewrite a page rely on the kernel keeping its own reference.
    pub releases: u64,
    /// Of those, the ones made while some of their bytes were not yet read.
    pub releases_while_unread: u64,
}

impl Exposure {
    /// Rewrites and releases: every moment the application let go of a sent page.
    pub fn moments(&self) -> u64 {
        self.reuses + self.releases
    }

    /// Of those, the ones that came while the page's bytes were still unread.
    pub fn moments_while_unread(&self) -> u64 {
        self.reuses_while_unread + self.releases_while_unread
    }
}

impl Exposure {
    /// The reuse and release moments in the shared hazard vocabulary
    /// ([`zcsafe_policy::hazard`]): a reuse while unread is the model's
    /// `reuse-before-read`, the same moment.
    pub fn add_to(&self, h: &mut zcsafe_policy::Hazards) {
        use zcsafe_policy::Hazard;
        h.add_count(Hazard::Reuse, self.reuses);
        h.add_count(Hazard::ReuseBeforeRead, self.reuses_while_unread);
        if self.releases > 0 {
            h.add_count(Hazard::Release, self.releases);
            h.add_count(Hazard::ReleaseBeforeRead, self.releases_while_unread);
        }
    }
}

/// Several repetitions together: counts add up, the depth is the deepest.
impl std::ops::Add for Exposure {
    type Output = Exposure;

    fn add(self, o: Exposure) -> Exposure {
        Exposure {
            reuses: self.reuses + o.reuses,
            reuses_while_unread: self.reuses_while_unread + o.reuses_while_unread,
            max_unread_bytes: self.max_unread_bytes.max(o.max_unread_bytes),
            releases: self.releases + o.releases,
            releases_while_unread: self.releases_while_unread + o.releases_while_unread,
        }
    }
}

/// How much of the stream the kernel held while the receiver read, sampled after each
/// read: the exposure zcsafe can measure for any sender, even a program it cannot look
/// into (`run --external`), where the moments the sender reuses a buffer are unknown.
///
/// After a read, not before: before a read the receiver's queue always holds something
/// (poll said so). What a read leaves behind is the backlog — the receiver fell behind
/// the sender — and with nothing left behind and nothing unacknowledged at any sample the
/// kernel held the stream only on its way through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Samples taken: one after each read.
    pub samples: u64,
    /// The most stream bytes a read left queued unread at the receiver (`SIOCINQ`).
    pub max_unread: u64,
    /// The most bytes the sender's socket had written and not yet had acknowledged
    /// (`SIOCOUTQ`, read from outside through [`crate::sock_diag`]); `None` when the
    /// sender's socket was not looked at.
    pub max_unacked: Option<u64>,
}

impl Held {
    /// One sample: `unread` at the receiver, `unacked` at the sender if it was read.
    pub fn sample(&mut self, unread: u64, unacked: Option<u64>) {
        self.samples += 1;
        self.max_unread = self.max_unread.max(unread);
        self.max_unacked = self.max_unacked.max(unacked);
    }

    /// Whether the kernel was ever seen holding stream bytes between the two programs:
    /// without that, no reuse could have been too early.
    pub fn any(&self) -> bool {
        self.max_unread > 0 || self.max_unacked.is_some_and(|n| n > 0)
    }

    /// `up to 113152 bytes unread at the receiver and 262144 unacknowledged at the sender
    /// (sampled after each of 70 reads)`.
    pub fn describe(&self) -> String {
        let mut s = format!("up to {} bytes unread at the receiver", self.max_unread);
        if let Some(n) = self.max_unacked {
            s += &format!(" and {n} unacknowledged at the sender");
        }
        s + &format!(" (sampled after each of {} reads)", self.samples)
    }
}

/// Follows which stream bytes each buffer and file page holds, and measures every reuse
/// against the receiver's progress.
#[derive(Debug)]
pub struct Tracker {
    consumed: Consumed,
    page: u64,
    /// The end (exclusive) of the stream bytes each written page holds.
    ends: HashMap<PageKey, u64>,
    seen: Exposure,
}

impl Tracker {
    /// A tracker for pages of `page` bytes, against the receiver's `consumed`.
    pub fn new(consumed: Consumed, page: u64) -> Tracker {
        Tracker {
            consumed,
            page: page.max(1),
            ends: HashMap::new(),
            seen: Exposure::default(),
        }
    }

    /// `Op::Fill` of `buf` with the stream from `at`, about to happen.
    pub fn fill(&mut self, buf: Region, at: u64) {
        self.write(buf, at, PageKey::Buf);
    }

    /// `Op::WriteFile` of `file` at `region` with the stream from `at`, about to happen.
    pub fn write_file(&mut self, file: FileId, region: Region, at: u64) {
        self.write(region, at, |p| PageKey::File(file, p));
    }

    /// `munmap`/`mmap`: the pages are given back; fresh ones follow, whose first write
    /// reuses nothing.
    pub fn release_buf(&mut self, buf: Region) {
        let end = self
            .pages(buf)
            .filter_map(|p| self.ends.remove(&PageKey::Buf(p)))
            .max();
        self.released(end);
    }

    /// `unlink`, or a re-created (truncated) file: its pages leave the page cache; a new
    /// file of that slot starts fresh.
    pub fn release_file(&mut self, file: FileId) {
        let mut end = None;
        self.ends.retain(|k, e| match k {
            PageKey::File(f, _) if *f == file => {
                end = end.max(Some(*e));
                false
            }
            _ => true,
        });
        self.released(end);
    }

    fn released(&mut self, previous_end: Option<u64>) {
        let Some(old_end) = previous_end else {
            return;
        };
        self.seen.releases += 1;
        if old_end > self.consumed.upper() {
            self.seen.releases_while_unread += 1;
        }
    }

    /// The end of the stream bytes `buf` holds now (what a send of it carries), if
    /// any of its pages was written.
    pub fn content_end(&self, buf: Region) -> Option<u64> {
        self.pages(buf)
            .filter_map(|p| self.ends.get(&PageKey::Buf(p)).copied())
            .max()
    }

    /// What the run showed so far.
    pub fn exposure(&self) -> Exposure {
        self.seen
    }

    fn pages(&self, r: Region) -> std::ops::Range<u64> {
        r.offset / self.page..r.end().div_ceil(self.page)
    }

    fn write(&mut self, r: Region, at: u64, key: impl Fn(u64) -> PageKey) {
        let mut previous_end = None;
        for p in self.pages(r) {
            // The stream byte that lands at the end of this page (or of the region).
            let page_end = ((p + 1) * self.page).min(r.end());
            let end = at + (page_end - r.offset);
            if let Some(old) = self.ends.insert(key(p), end) {
                previous_end = previous_end.max(Some(old));
            }
        }
        let Some(old_end) = previous_end else {
            return;
        };
        self.seen.reuses += 1;
        let unread = old_end.saturating_sub(self.consumed.upper());
        if unread > 0 {
            self.seen.reuses_while_unread += 1;
            self.seen.max_unread_bytes = self.seen.max_unread_bytes.max(unread);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_counts_as_exposed_only_while_its_old_bytes_are_unread() {
        let consumed = Consumed::default();
        let mut t = Tracker::new(consumed.clone(), 4096);
        let slot = Region::new(0, 8192);
        t.fill(slot, 0);
        assert_eq!(
            t.exposure(),
            Exposure::default(),
            "a first write reuses nothing"
        );
        // The receiver has read nothing: the old bytes [0, 8192) are all unread.
        t.fill(slot, 16384);
        assert_eq!(
            t.exposure(),
            Exposure {
                reuses: 1,
                reuses_while_unread: 1,
                max_unread_bytes: 8192,
                ..Exposure::default()
            }
        );
        // It read past the new content's end: the next rewrite is harmless.
        consumed.will_read_upto(16384 + 8192);
        t.fill(slot, 32768);
        assert_eq!(t.exposure().reuses, 2);
        assert_eq!(t.exposure().reuses_while_unread, 1);
    }

    #[test]
    fn fresh_pages_and_removed_files_start_over() {
        let mut t = Tracker::new(Consumed::default(), 4096);
        let slot = Region::new(4096, 4096);
        t.fill(slot, 0);
        t.release_buf(slot);
        t.fill(slot, 4096);
        t.write_file(1, Region::new(0, 4096), 0);
        t.release_file(1);
        t.write_file(1, Region::new(0, 4096), 4096);
        assert_eq!(t.exposure().reuses, 0);
        assert_eq!(
            (t.exposure().releases, t.exposure().releases_while_unread),
            (2, 2),
            "both given back with their bytes unread"
        );
        t.write_file(1, Region::new(0, 4096), 8192);
        assert_eq!(t.exposure().reuses_while_unread, 1);
    }
}
