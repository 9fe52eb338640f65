//! The set of states already reached, kept as 64-bit fingerprints rather than whole
//! states: about 10–20 bytes a state instead of hundreds (docs/design.md §11 gives the
//! collision bound and why it is acceptable).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// A state's 64-bit fingerprint.
pub(crate) type Fingerprint = u64;

/// Fingerprints of every state reached so far.
#[derive(Default)]
pub(crate) struct Visited {
    // The fingerprint is already a strong hash: the table uses it as is.
    set: HashSet<Fingerprint, BuildHasherDefault<Identity>>,
}

impl Visited {
    /// Records `fp`; `true` if it was not there yet.
    pub(crate) fn insert(&mut self, fp: Fingerprint) -> bool {
        self.set.insert(fp)
    }

    /// Whether `fp` was recorded.
    pub(crate) fn contains(&self, fp: Fingerprint) -> bool {
        self.set.contains(&fp)
    }

    /// Bytes the table holds: a fingerprint and a control byte per bucket.
    pub(crate) fn bytes(&self) -> usize {
        // hashbrown keeps buckets = capacity · 8/7, rounded up to a power of two.
        let buckets = (self.set.capacity() * 8 / 7).next_power_of_two();
        buckets * (std::mem::size_of::<Fingerprint>() + 1)
    }
}

/// The fingerprint of `value`: its derived `Hash`, fed through [`FoldHasher`].
#[cfg(test)]
pub(crate) fn fingerprint<T: Hash>(value: &T) -> Fingerprint {
    let mut h = FoldHasher::default();
    value.hash(&mut h);
    h.finish()
}

/// The fingerprint of the state `(policy, kernel)` without building it: a struct's
/// derived `Hash` hashes its fields in order, so this equals `fingerprint(&State {..})`.
pub(crate) fn fingerprint_parts<A: Hash, B: Hash>(a: &A, b: &B) -> Fingerprint {
    Prefix::of(a).then(b)
}

/// The hash of a state's first part, kept to finish with each second part: every
/// kernel event of a state leaves its policy as it is, so the policy is hashed once per
/// state, not once per move.
#[derive(Clone, Copy)]
pub(crate) struct Prefix(FoldHasher);

impl Prefix {
    pub(crate) fn of<A: Hash>(a: &A) -> Prefix {
        let mut h = FoldHasher::default();
        a.hash(&mut h);
        Prefix(h)
    }

    /// The fingerprint of the first part followed by `b`.
    pub(crate) fn then<B: Hash>(mut self, b: &B) -> Fingerprint {
        b.hash(&mut self.0);
        self.0.finish()
    }
}

/// A fast, non-linear 64-bit hash (the folded multiply of wyhash/foldhash). Not FxHash:
/// Fx is a polynomial in the input words, so two states whose small differences cancel
/// collide deterministically, which a fingerprint must not allow. Fixed keys: the same
/// state has the same fingerprint in every run, so a run is reproducible.
#[derive(Clone, Copy)]
pub(crate) struct FoldHasher {
    acc: u64,
}

/// Odd constants from the digits of pi (as in wyhash's secret).
const K0: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x1319_8a2e_0370_7344;
const K2: u64 = 0xa409_3822_299f_31d0;

impl Default for FoldHasher {
    fn default() -> Self {
        FoldHasher { acc: K2 }
    }
}

/// The high and low halves of the full product, xored: every input bit reaches every
/// output bit, and the map is not linear in either operand.
#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = (a as u128).wrapping_mul(b as u128);
    (full as u64) ^ ((full >> 64) as u64)
}

impl FoldHasher {
    #[inline(always)]
    fn mix(&mut self, word: u64) {
        self.acc = folded_multiply(self.acc ^ word, K0);
    }
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes(c.try_into().expect("8-byte chunk")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut tail = [0u8; 8];
            tail[..rest.len()].copy_from_slice(rest);
            // The length keeps "ab" and "ab\0" apart.
            self.mix(u64::from_le_bytes(tail) ^ ((rest.len() as u64) << 56));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(i as u64);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.mix(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        folded_multiply(self.acc ^ K1, K0 ^ K2)
    }
}

/// The identity "hash" of a fingerprint, for the table that stores fingerprints.
#[derive(Default)]
pub(crate) struct Identity(u64);

impl Hasher for Identity {
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 fingerprints are stored; fold anything else in, to stay correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_a_fingerprint_and_small_differences_do_not_collide() {
        assert_eq!(fingerprint(&(1u8, 2u64)), fingerprint(&(1u8, 2u64)));
        // All pairs of small fields (the shape of a kernel state), no collision.
        let mut seen = HashSet::new();
        for a in 0u64..300 {
            for b in 0u64..300 {
                assert!(seen.insert(fingerprint(&(a, b))), "collision at {a},{b}");
            }
        }
        assert_ne!(fingerprint(&vec![0u8]), fingerprint(&vec![0u8, 0]));
    }

    #[test]
    fn a_state_hashed_in_two_parts_has_the_fingerprint_of_the_whole() {
        let whole = fingerprint(&(3u16, vec![1u8, 2]));
        assert_eq!(fingerprint_parts(&3u16, &vec![1u8, 2]), whole);
        assert_eq!(Prefix::of(&3u16).then(&vec![1u8, 2]), whole);
    }

    #[test]
    fn a_fingerprint_is_inserted_once() {
        let mut v = Visited::default();
        assert!(v.insert(7));
        assert!(!v.insert(7));
    }
}
