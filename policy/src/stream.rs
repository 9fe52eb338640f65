//! The stream pattern: the public contract between any sender and zcsafe's receiver.
//!
//! The 8-byte little-endian word number `k` (stream bytes `8k .. 8k+7`) is
//! `(k + seed) * 0x9E3779B97F4A7C15 mod 2^64`. The multiplier is odd, hence invertible
//! modulo 2^64: a wrong word tells which stream offset it was written for, so "offset X
//! carried the bytes meant for offset Y" measures how early a buffer was reused.

/// The multiplier (the 64-bit golden ratio, odd).
pub const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;
/// Its inverse modulo 2^64.
pub const INVERSE: u64 = inverse(MULTIPLIER);

const fn inverse(a: u64) -> u64 {
    // Newton's iteration: each step doubles the number of correct low bits.
    let mut x = a; // correct to 3 bits for odd a
    let mut i = 0;
    while i < 6 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x
}

/// The value of stream word `k`.
pub const fn word(k: u64, seed: u64) -> u64 {
    k.wrapping_add(seed).wrapping_mul(MULTIPLIER)
}

/// The word index a value was written for, if it is a stream word at all.
pub const fn word_index(value: u64, seed: u64) -> u64 {
    value.wrapping_mul(INVERSE).wrapping_sub(seed)
}

/// Fills `dst` with the stream bytes starting at `offset`. Offsets need not be aligned.
pub fn fill(dst: &mut [u8], offset: u64, seed: u64) {
    let mut pos = 0usize;
    let mut off = offset;
    while pos < dst.len() {
        let k = off / 8;
        let within = (off % 8) as usize;
        let bytes = word(k, seed).to_le_bytes();
        let n = (8 - within).min(dst.len() - pos);
        dst[pos..pos + n].copy_from_slice(&bytes[within..within + n]);
        pos += n;
        off += n as u64;
    }
}

/// A mismatch found by [`verify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Stream offset of the first wrong word.
    pub offset: u64,
    /// The stream offset the wrong bytes belong to, when they are a stream word.
    pub meant_for: Option<u64>,
}

/// The byte offset a word that is not the expected one was written for, if it is a stream
/// word at all. Zero pages and garbage decode to absurd offsets: only plausible ones
/// (within 2^40 bytes of the stream start) count.
pub const fn carried_offset(value: u64, seed: u64) -> Option<u64> {
    let j = word_index(value, seed);
    if j < 1 << 37 {
        Some(j * 8)
    } else {
        None
    }
}

/// Every wrong word of `data`, which must start at the word-aligned stream offset `offset`,
/// in stream order. A trailing partial word is compared byte-wise and never attributed.
///
/// The one definition of a wrong word: [`verify`] counts these, and a receiver that wants
/// to know where displaced words went (not only the first) walks them.
pub fn mismatches(data: &[u8], offset: u64, seed: u64) -> impl Iterator<Item = Mismatch> + '_ {
    debug_assert_eq!(offset % 8, 0, "mismatches needs word-aligned offsets");
    let first = offset / 8;
    let chunks = data.chunks_exact(8);
    let rest = chunks.remainder();
    let whole = chunks.enumerate().filter_map(move |(i, w)| {
        let k = first + i as u64;
        let got = u64::from_le_bytes(w.try_into().expect("chunks_exact(8)"));
        (got != word(k, seed)).then(|| Mismatch {
            offset: k * 8,
            meant_for: carried_offset(got, seed),
        })
    });
    let k = first + (data.len() / 8) as u64;
    let tail = (!rest.is_empty() && rest != &word(k, seed).to_le_bytes()[..rest.len()]).then_some(
        Mismatch {
            offset: k * 8,
            meant_for: None,
        },
    );
    whole.chain(tail)
}

/// Checks `data`, which must start at the word-aligned stream offset `offset`; returns the
/// number of wrong words and the first mismatch ([`mismatches`]).
pub fn verify(data: &[u8], offset: u64, seed: u64) -> (u64, Option<Mismatch>) {
    mismatches(data, offset, seed).fold((0, None), |(bad, first), m| (bad + 1, first.or(Some(m))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_is_inverse() {
        assert_eq!(MULTIPLIER.wrapping_mul(INVERSE), 1);
        for k in [0u64, 1, 7, 1 << 20, u64::MAX / 3] {
            assert_eq!(word_index(word(k, 5), 5), k);
        }
    }

    #[test]
    fn fill_matches_words_at_any_alignment() {
        let mut whole = vec![0u8; 64];
        fill(&mut whole, 0, 0);
        assert_eq!(&whole[8..16], &word(1, 0).to_le_bytes());
        let mut part = vec![0u8; 13];
        fill(&mut part, 3, 0);
        assert_eq!(&part[..], &whole[3..16]);
    }

    #[test]
    fn verify_reports_where_bytes_belonged() {
        let mut data = vec![0u8; 4096];
        fill(&mut data, 8192, 0);
        assert_eq!(verify(&data, 8192, 0), (0, None));
        // Bytes meant for stream offset 16384 land at 8192 + 64: reused 8128 bytes early.
        fill(&mut data[64..128], 16384, 0);
        let (bad, first) = verify(&data, 8192, 0);
        assert_eq!(bad, 8);
        assert_eq!(
            first,
            Some(Mismatch {
                offset: 8256,
                meant_for: Some(16384)
            })
        );
    }

    #[test]
    fn garbage_is_counted_and_not_attributed() {
        let data = vec![0xA5u8; 20];
        let (bad, first) = verify(&data, 8, 0);
        assert_eq!(bad, 3, "two whole words and the trailing partial word");
        assert_eq!(first.unwrap().offset, 8);
        assert_eq!(first.unwrap().meant_for, None);
    }
}
