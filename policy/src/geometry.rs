//! The sizes a policy is built for.
//!
//! The same policy runs with bytes on a real kernel and with whole pages in the model:
//! the model uses `page = 1`, so one "byte" there is one page. Policies therefore compute
//! only with the numbers in [`Geometry`] and never assume a page is 4096 bytes.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Sizes shared by the sender and every backend. All values are in bytes (model: pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Geometry {
    /// Page size. Buffers, chunks and the pipe are whole pages.
    pub page: u64,
    /// Bytes handed to the kernel per send operation.
    pub chunk: u64,
    /// Size of the user buffer the policy may fill.
    pub buffer: u64,
    /// Pipe capacity, for the splice-based policies (`F_SETPIPE_SZ`).
    pub pipe: u64,
    /// Length of the whole stream; the receiver expects exactly this many bytes.
    pub stream: u64,
    /// Width of the `MSG_ZEROCOPY` send counter: 32 on real kernels (`sk_zckey`); the
    /// model uses a few bits so that the checker reaches wrap-around.
    #[serde(default = "default_zc_id_bits")]
    pub zc_id_bits: u8,
}

fn default_zc_id_bits() -> u8 {
    32
}

/// A geometry that no policy can work with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GeometryError {
    /// Page references are what the kernel keeps, so every size is counted in whole pages.
    #[error("{field} is {value}, which is not a positive multiple of the page size {page}")]
    NotPageMultiple {
        /// Which [`Geometry`] field (`chunk`, `buffer`, …).
        field: &'static str,
        /// Its value, in bytes.
        value: u64,
        /// The page size it must be a multiple of.
        page: u64,
    },
    /// A send operation takes one chunk out of the buffer, so the buffer must hold one.
    #[error("the buffer ({buffer} bytes) is smaller than one chunk ({chunk} bytes)")]
    BufferSmallerThanChunk {
        /// [`Geometry::buffer`].
        buffer: u64,
        /// [`Geometry::chunk`].
        chunk: u64,
    },
    /// Policies cycle through the buffer slot by slot; a partial last slot has no owner.
    #[error("the buffer ({buffer} bytes) is not a whole number of chunks ({chunk} bytes)")]
    BufferNotChunks {
        /// [`Geometry::buffer`].
        buffer: u64,
        /// [`Geometry::chunk`].
        chunk: u64,
    },
    /// The last send would be short, and no backend models a short last chunk.
    #[error("the stream ({stream} bytes) is not a whole number of chunks ({chunk} bytes)")]
    StreamNotChunks {
        /// [`Geometry::stream`].
        stream: u64,
        /// [`Geometry::chunk`].
        chunk: u64,
    },
    /// The receiver verifies the stream word by word (see [`crate::stream`]).
    #[error("the stream length must be a multiple of 8 bytes (one stream word), got {0}")]
    StreamNotWords(u64),
    /// The counter lives in a `u32`, and a zero-bit counter cannot number anything.
    #[error("zc_id_bits must be between 1 and 32, got {0}")]
    ZcIdBits(u8),
}

impl Geometry {
    /// Checks that sizes are whole pages and chunks; every backend calls this first.
    pub fn validate(&self) -> Result<(), GeometryError> {
        let page = self.page;
        for (field, value) in [
            ("page", self.page),
            ("chunk", self.chunk),
            ("buffer", self.buffer),
            ("pipe", self.pipe),
            ("stream", self.stream),
        ] {
            if value == 0 || page == 0 || value % page != 0 {
                return Err(GeometryError::NotPageMultiple { field, value, page });
            }
        }
        if self.buffer < self.chunk {
            return Err(GeometryError::BufferSmallerThanChunk {
                buffer: self.buffer,
                chunk: self.chunk,
            });
        }
        if self.buffer % self.chunk != 0 {
            return Err(GeometryError::BufferNotChunks {
                buffer: self.buffer,
                chunk: self.chunk,
            });
        }
        if self.stream % self.chunk != 0 {
            return Err(GeometryError::StreamNotChunks {
                stream: self.stream,
                chunk: self.chunk,
            });
        }
        if page > 1 && self.stream % 8 != 0 {
            return Err(GeometryError::StreamNotWords(self.stream));
        }
        if !(1..=32).contains(&self.zc_id_bits) {
            return Err(GeometryError::ZcIdBits(self.zc_id_bits));
        }
        Ok(())
    }

    /// The model checker's standard geometry, in pages: one-page chunks, a buffer of two
    /// slots, a one-page pipe, a five-page stream and a 1-bit zero-copy counter. Small
    /// enough to exhaust in milliseconds, large enough for every known failure (a reused
    /// slot, a wrapped counter). The one source for the model's standard scenario and the
    /// catalogue's expectations.
    pub const fn model_standard() -> Geometry {
        Geometry {
            page: 1,
            chunk: 1,
            buffer: 2,
            pipe: 1,
            stream: 5,
            zc_id_bits: 1,
        }
    }

    /// A real kernel's geometry: 4 KiB pages, 32-bit zero-copy counter.
    pub fn kernel(chunk: u64, buffer: u64, pipe: u64, stream: u64) -> Geometry {
        Geometry {
            page: 4096,
            chunk,
            buffer,
            pipe,
            stream,
            zc_id_bits: 32,
        }
    }

    /// The `MSG_ZEROCOPY` counter one after `id`, wrapping at `2^zc_id_bits`.
    pub fn zc_next(&self, id: u32) -> u32 {
        ((id as u64 + 1) % (1u64 << self.zc_id_bits)) as u32
    }

    /// Whether counter `id` lies in the wrapping range `lo..=hi`.
    pub fn zc_in_range(&self, id: u32, lo: u32, hi: u32) -> bool {
        let m = 1u64 << self.zc_id_bits;
        let off = (id as u64 + m - lo as u64) % m;
        let span = (hi as u64 + m - lo as u64) % m;
        off <= span
    }

    /// Number of chunks in the stream.
    pub fn chunks(&self) -> u64 {
        self.stream / self.chunk
    }

    /// Number of chunk-sized slots in the buffer.
    pub fn slots(&self) -> u64 {
        self.buffer / self.chunk
    }

    /// The buffer region that holds chunk `n` when the buffer is used as a ring of
    /// chunk-sized slots — the layout most policies share.
    pub fn ring_slot(&self, n: u64) -> Region {
        Region::new((n % self.slots()) * self.chunk, self.chunk)
    }

    /// Stream offset of chunk `n`.
    pub fn chunk_offset(&self, n: u64) -> u64 {
        n * self.chunk
    }
}

/// The shape of a policy's send pipeline, declared by the policy so that a checker can
/// derive a scenario that exercises it ([`Pipeline::model_geometry`]; the model's
/// `Scenario::derived` adds the windows). A scenario smaller than the pipeline hides its
/// bugs: a 4-slot ring judged with a 2-page send buffer never has four sends in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Pipeline {
    /// Pages handed to the kernel per send ([`Geometry::chunk`]).
    pub chunk: u64,
    /// Chunk-sized buffer slots the policy cycles through ([`Geometry::slots`]).
    pub slots: u64,
    /// Sends the policy may keep outstanding (queued, in flight or unreleased) at once:
    /// the send buffer and windows a scenario must allow for the pipeline to fill.
    pub outstanding: u64,
    /// The socket the sends go to.
    #[serde(default, skip_serializing_if = "crate::SocketKind::is_tcp")]
    pub socket: crate::SocketKind,
}

impl Pipeline {
    /// Two one-page slots, both outstanding: the pipeline of every built-in policy and the
    /// one [`Geometry::model_standard`] was sized for.
    pub const STANDARD: Pipeline = Pipeline::ring(2);

    /// A ring of `slots` one-page slots with a send outstanding from each.
    pub const fn ring(slots: u64) -> Pipeline {
        Pipeline {
            chunk: 1,
            slots,
            outstanding: slots,
            socket: crate::SocketKind::Tcp,
        }
    }

    /// This pipeline on a UDP socket.
    pub const fn udp(self) -> Pipeline {
        Pipeline {
            socket: crate::SocketKind::Udp,
            ..self
        }
    }

    /// The narrowest counter that numbers every outstanding send apart: `2^bits >=
    /// outstanding`. A narrower one makes two unreleased sends share a counter, which no
    /// real kernel can (its 32-bit `sk_zckey` outnumbers any optmem), and a notification
    /// for one would release the other: a model artefact, not a policy bug.
    pub const fn min_zc_id_bits(&self) -> u8 {
        let mut bits = 1u8;
        while bits < 32 && (1u64 << bits) < self.outstanding {
            bits += 1;
        }
        bits
    }

    /// Chunks a derived scenario streams: every slot is reused at least twice (filled
    /// three times), and at least `2^min_bits + slots + 1`, so that the slot of the
    /// first send after the counter wraps is refilled within the run.
    pub const fn derived_chunks(&self) -> u64 {
        let wrap_and_refill = (1u64 << self.min_zc_id_bits()) + self.slots + 1;
        if 3 * self.slots > wrap_and_refill {
            3 * self.slots
        } else {
            wrap_and_refill
        }
    }

    /// The widest zero-copy counter that wraps within a stream of `chunks` chunks with
    /// room for the slot of the first send after the wrap to be refilled (the largest
    /// `bits` with `2^bits + slots + 1 <= chunks`), but never narrower than
    /// [`min_zc_id_bits`](Pipeline::min_zc_id_bits). Wide, because a narrower counter
    /// also caps how many sends one notification range covers (at most `2^bits - 1`)
    /// and so hides what coalesced ranges do.
    pub fn wrapping_bits(&self, chunks: u64) -> u8 {
        let room = chunks.saturating_sub(self.slots + 1).max(2);
        ((63 - room.leading_zeros()) as u8).clamp(self.min_zc_id_bits(), 32)
    }

    /// [`wrapping_bits`](Pipeline::wrapping_bits) of the
    /// [`derived_chunks`](Pipeline::derived_chunks).
    pub fn derived_zc_id_bits(&self) -> u8 {
        self.wrapping_bits(self.derived_chunks())
    }

    /// The kernel geometry (bytes) of this pipeline: chunks of `chunk_bytes` per model
    /// page, its slots, a pipe of one chunk and a stream of `stream` bytes — what the
    /// kernel backend runs the policy with.
    pub fn kernel_geometry(&self, chunk_bytes: u64, stream: u64) -> Geometry {
        let chunk = self.chunk * chunk_bytes;
        Geometry::kernel(chunk, self.slots * chunk, chunk, stream)
    }

    /// The model geometry (pages) that exercises this pipeline: its chunk and slots, a
    /// pipe of one chunk, [`derived_chunks`](Pipeline::derived_chunks) chunks of stream
    /// and a [`derived_zc_id_bits`](Pipeline::derived_zc_id_bits)-bit counter.
    pub fn model_geometry(&self) -> Geometry {
        Geometry {
            page: 1,
            chunk: self.chunk,
            buffer: self.slots * self.chunk,
            pipe: self.chunk,
            stream: self.derived_chunks() * self.chunk,
            zc_id_bits: self.derived_zc_id_bits(),
        }
    }
}

/// A byte range `[offset, offset + len)` of the user buffer (or of a file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Region {
    /// First byte, from the start of the buffer (or file).
    pub offset: u64,
    /// Bytes in the range; zero is an empty range (what is left of a finished op).
    pub len: u64,
}

impl Region {
    /// `[offset, offset + len)`; `const` so catalogue tables can hold regions.
    #[must_use]
    pub const fn new(offset: u64, len: u64) -> Self {
        Region { offset, len }
    }

    /// One past the last byte, where the next region of a sequential stream starts.
    pub const fn end(&self) -> u64 {
        self.offset + self.len
    }

    /// The part of `self` that starts `n` bytes in (what is left after a partial op).
    pub fn advance(&self, n: u64) -> Region {
        let n = n.min(self.len);
        Region::new(self.offset + n, self.len - n)
    }

    /// No bytes left: a partial operation has finished.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}..{})", self.offset, self.end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g() -> Geometry {
        Geometry::kernel(8192, 32768, 16384, 65536)
    }

    #[test]
    fn zc_counter_wraps() {
        let g = Geometry {
            zc_id_bits: 2,
            ..g()
        };
        assert_eq!(g.zc_next(3), 0);
        assert!(g.zc_in_range(0, 3, 1));
        assert!(g.zc_in_range(3, 3, 1));
        assert!(!g.zc_in_range(2, 3, 1));
        assert!(Geometry::kernel(1, 1, 1, 8).zc_in_range(u32::MAX, u32::MAX, 0));
    }

    #[test]
    fn valid_geometry_and_ring_slots() {
        let g = g();
        assert_eq!(g.validate(), Ok(()));
        assert_eq!(g.slots(), 4);
        assert_eq!(g.ring_slot(5), Region::new(8192, 8192));
    }

    #[test]
    fn rejects_partial_pages_and_chunks() {
        let mut bad = g();
        bad.chunk = 5000;
        assert!(matches!(
            bad.validate(),
            Err(GeometryError::NotPageMultiple { field: "chunk", .. })
        ));
        let mut bad = g();
        bad.buffer = 4096;
        assert!(matches!(
            bad.validate(),
            Err(GeometryError::BufferSmallerThanChunk { .. })
        ));
        let mut bad = g();
        bad.stream = 8192 * 3 + 4096;
        assert!(matches!(
            bad.validate(),
            Err(GeometryError::StreamNotChunks { .. })
        ));
    }

    #[test]
    fn derived_geometries_reuse_every_slot_twice_and_wrap_the_counter() {
        for slots in 1..=8u64 {
            let p = Pipeline::ring(slots);
            let g = p.model_geometry();
            assert_eq!(g.validate(), Ok(()), "{slots} slots");
            assert_eq!(g.slots(), slots);
            assert!(g.chunks() >= 3 * slots, "every slot filled three times");
            let wrap = 1u64 << g.zc_id_bits;
            assert!(
                wrap >= p.outstanding,
                "{slots} slots: outstanding sends numbered apart"
            );
            assert!(
                wrap + slots < g.chunks(),
                "{slots} slots: a send after the wrap refills"
            );
        }
        assert_eq!(Pipeline::STANDARD.model_geometry().zc_id_bits, 1);
        assert_eq!(Pipeline::ring(4).model_geometry().zc_id_bits, 2);
        assert_eq!(Pipeline::ring(8).model_geometry().zc_id_bits, 3);
        assert_eq!(
            Pipeline::ring(4).wrapping_bits(7),
            2,
            "never below 2^bits >= 4"
        );
    }

    #[test]
    fn region_advance_saturates() {
        let r = Region::new(10, 5);
        assert_eq!(r.advance(3), Region::new(13, 2));
        assert!(r.advance(9).is_empty());
    }
}
