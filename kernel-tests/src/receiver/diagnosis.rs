//! What went wrong with a corrupt stream, told by where the displaced words reappear.
//!
//! A wrong word decodes to the offset it was written for, and the receiver used to read
//! every such word as buffer reuse ("offset P carried the bytes meant for C: reused C − P
//! bytes too early"). But the same first wrong word comes from different faults: two
//! in-flight sends on one socket whose bytes interleave on the wire put a later offset's
//! bytes at P too, and the bytes meant for P then arrive further on. Only the rest of the
//! stream tells them apart: do P's bytes arrive anywhere, and do C's arrive twice?
//!
//! So the receiver keeps [`Runs`] — maximal stretches of wrong words whose carried offset
//! minus position is constant, a bounded number ([`MAX_RUNS`]) so that a 1 GiB stream costs
//! no more than a 1 MiB one — and [`Runs::diagnose`] classifies the first one at the end.
//! Right words are not stored: a word position outside every run carries its own offset.

use serde::{Deserialize, Serialize};
use std::fmt;
use zcsafe_policy::stream::Mismatch;

/// How many runs of wrong words the receiver remembers; past that the diagnosis is partial.
pub const MAX_RUNS: usize = 4096;

/// Why the stream is wrong, from its first wrong word. Offsets are stream byte offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    /// Buffer reuse: `at` carries the bytes meant for `carries`, and the bytes meant for
    /// `at` never arrive anywhere (those for `carries` typically arrive at `carries` too).
    Overwritten { at: u64, carries: u64 },
    /// Interleaved or reordered sends: the bytes meant for `at` arrive later, at
    /// `arrives_at`; `carries` arrived early instead, once.
    Interleaved {
        at: u64,
        carries: u64,
        arrives_at: u64,
    },
    /// Skipped bytes: those meant for `at .. carries` never arrive and nothing stands in
    /// their place — the stream goes on at `at` with the bytes meant for `carries`, no
    /// word arrives twice, and the stream is short (when its length is known).
    Lost { at: u64, carries: u64 },
    /// A repeated range: the `bytes` bytes from `carries` arrive twice, first at their
    /// place and again at `at`; the bytes meant for `at` follow later.
    Duplicated { at: u64, carries: u64, bytes: u64 },
    /// Bytes that carry no stream offset (zeroes, foreign data) at `at`.
    Foreign { at: u64 },
}

/// The receiver's diagnosis of a corrupt stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    #[serde(flatten)]
    pub cause: Cause,
    /// More than [`MAX_RUNS`] runs of wrong words: the later ones were not remembered, so
    /// a displaced word may have arrived unseen.
    pub partial: bool,
}

impl Diagnosis {
    /// `Some(n)`: the first wrong bytes were overwritten by those of a stream offset `n`
    /// bytes later, so the sender reused its buffer `n` bytes of stream too early. Only an
    /// overwrite is reuse: interleaved, lost or repeated bytes are not.
    pub fn reused_early_by(&self) -> Option<u64> {
        match self.cause {
            Cause::Overwritten { at, carries } if carries > at => Some(carries - at),
            _ => None,
        }
    }
}

/// The words that follow "first at stream offset P" in the receiver's summary.
impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let carrying =
            |f: &mut fmt::Formatter<'_>, c: u64| write!(f, "carrying the bytes meant for {c} ");
        match self.cause {
            Cause::Overwritten { at, carries } => {
                carrying(f, carries)?;
                match self.reused_early_by() {
                    Some(n) => write!(f, "(buffer reused {n} bytes too early)"),
                    None => write!(
                        f,
                        "(overwritten with older bytes: the bytes meant for {at} never arrived)"
                    ),
                }
            }
            Cause::Interleaved {
                at,
                carries,
                arrives_at,
            } => {
                carrying(f, carries)?;
                write!(
                    f,
                    "(interleaved, not reused: the bytes meant for {at} arrived later, \
                     at stream offset {arrives_at})"
                )
            }
            Cause::Lost { at, carries } => {
                carrying(f, carries)?;
                write!(
                    f,
                    "(lost: the {} bytes meant for {at}..{carries} never arrived \
                     and nothing stands in their place)",
                    carries - at
                )
            }
            Cause::Duplicated { carries, bytes, .. } => {
                carrying(f, carries)?;
                write!(
                    f,
                    "(duplicated: the {bytes} bytes from stream offset {carries} arrived twice)"
                )
            }
            Cause::Foreign { .. } => write!(f, "(not stream bytes)"),
        }?;
        if self.partial {
            write!(
                f,
                "; diagnosis partial: more than {MAX_RUNS} runs of wrong words"
            )?;
        }
        Ok(())
    }
}

/// Consecutive wrong words whose carried word index minus position is constant; in words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    pos: u64,
    /// The word index the first word carries; `None`: not stream words.
    carried: Option<u64>,
    len: u64,
}

impl Run {
    fn extends_to(&self, pos: u64, carried: Option<u64>) -> bool {
        pos == self.pos + self.len && carried == self.carried.map(|c| c + self.len)
    }

    fn holds(&self, pos: u64) -> bool {
        (self.pos..self.pos + self.len).contains(&pos)
    }

    /// Where in the stream this run put the word meant for `word`, if it carries it.
    fn position_of(&self, word: u64) -> Option<u64> {
        let c = self.carried?;
        (c..c + self.len)
            .contains(&word)
            .then(|| self.pos + (word - c))
    }
}

/// The wrong words of a stream, as runs ([`MAX_RUNS`] at most).
#[derive(Clone, Debug, Default)]
pub struct Runs {
    runs: Vec<Run>,
    truncated: bool,
}

impl Runs {
    /// Records one wrong word; words must come in stream order.
    pub fn note(&mut self, m: Mismatch) {
        let (pos, carried) = (m.offset / 8, m.meant_for.map(|b| b / 8));
        if let Some(last) = self.runs.last_mut() {
            if last.extends_to(pos, carried) {
                last.len += 1;
                return;
            }
        }
        if self.runs.len() == MAX_RUNS {
            self.truncated = true;
            return;
        }
        self.runs.push(Run {
            pos,
            carried,
            len: 1,
        });
    }

    /// Why the stream of `received` bytes is wrong (`None`: no word was), classified from
    /// its first run of wrong words. `expected`: the stream length the sender meant, if
    /// known — bytes meant for beyond it cannot be a skip.
    pub fn diagnose(&self, received: u64, expected: Option<u64>) -> Option<Diagnosis> {
        let first = self.runs.first()?;
        let at = first.pos * 8;
        let cause = match first.carried {
            None => Cause::Foreign { at },
            Some(c) => {
                let cov = Coverage {
                    runs: &self.runs,
                    received: received.div_ceil(8),
                };
                cov.classify(first.pos, c, expected.map(|e| e.div_ceil(8)))
            }
        };
        Some(Diagnosis {
            cause,
            partial: self.truncated,
        })
    }
}

/// How many times each word of the stream arrived, from the runs; in words.
struct Coverage<'a> {
    runs: &'a [Run],
    /// Word positions received (a trailing partial word counts).
    received: u64,
}

impl Coverage<'_> {
    /// Classifies position `p`, which carries word `c`, in a stream meant to be `expected`
    /// words long.
    fn classify(&self, p: u64, c: u64, expected: Option<u64>) -> Cause {
        let (at, carries) = (p * 8, c * 8);
        if let Some(q) = self.arrival(p) {
            if self.count(c) >= 2 {
                let bytes = (self.extent(c, |n| n >= 2) - c) * 8;
                return Cause::Duplicated { at, carries, bytes };
            }
            return Cause::Interleaved {
                at,
                carries,
                arrives_at: q * 8,
            };
        }
        if c > p && self.skipped(p, c, expected) {
            Cause::Lost { at, carries }
        } else {
            Cause::Overwritten { at, carries }
        }
    }

    /// Whether the words `p .. c` were skipped rather than overwritten: none of them
    /// arrived, and nothing stands in their place. A buffer reused for each next chunk
    /// looks the same near `p` (every chunk one chunk early), so the whole stream must
    /// say it: no word arrived twice, and a stream of known length came up short.
    fn skipped(&self, p: u64, c: u64, expected: Option<u64>) -> bool {
        let short = expected.is_none_or(|e| c < e && self.received < e);
        short && self.extent(p, |n| n == 0) >= c && self.extent(0, |n| n <= 1) == u64::MAX
    }

    /// Where the word meant for `word` arrived displaced, if it did.
    fn arrival(&self, word: u64) -> Option<u64> {
        self.runs.iter().find_map(|r| r.position_of(word))
    }

    /// How many times the word meant for `word` arrived: at its own place (a received
    /// position outside every run) and wherever a run carries it.
    fn count(&self, word: u64) -> usize {
        let home = word < self.received && !self.runs.iter().any(|r| r.holds(word));
        usize::from(home)
            + self
                .runs
                .iter()
                .filter(|r| r.position_of(word).is_some())
                .count()
    }

    /// The first word at or after `from` whose count fails `keep` (`u64::MAX`: none does).
    /// The count only changes where a run starts or ends, in position or carried words.
    fn extent(&self, from: u64, keep: impl Fn(usize) -> bool) -> u64 {
        let mut edges: Vec<u64> = self
            .runs
            .iter()
            .flat_map(|r| {
                let carried = r.carried.map(|c| [c, c + r.len]);
                [r.pos, r.pos + r.len]
                    .into_iter()
                    .chain(carried.into_iter().flatten())
            })
            .chain([self.received])
            .filter(|&e| e > from)
            .collect();
        edges.sort_unstable();
        edges.dedup();
        std::iter::once(from)
            .chain(edges)
            .find(|&w| !keep(self.count(w)))
            .unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream of word-index segments: `(position start, carried start or None, len)`
    /// runs only; every other position carries its own word.
    fn runs(wrong: &[(u64, Option<u64>, u64)]) -> Runs {
        let mut r = Runs::default();
        for &(pos, carried, len) in wrong {
            for i in 0..len {
                r.note(Mismatch {
                    offset: (pos + i) * 8,
                    meant_for: carried.map(|c| (c + i) * 8),
                });
            }
        }
        r
    }

    fn cause(wrong: &[(u64, Option<u64>, u64)], received_words: u64) -> Cause {
        runs(wrong)
            .diagnose(received_words * 8, None)
            .unwrap()
            .cause
    }

    #[test]
    fn consecutive_words_with_the_same_displacement_are_one_run() {
        let r = runs(&[(10, Some(20), 5), (15, Some(10), 5), (30, None, 3)]);
        assert_eq!(r.runs.len(), 3, "{:?}", r.runs);
        assert_eq!(r.runs[1].len, 5);
    }

    #[test]
    fn swapped_blocks_are_interleaved() {
        let c = cause(&[(0, Some(4), 4), (4, Some(0), 4)], 16);
        assert_eq!(
            c,
            Cause::Interleaved {
                at: 0,
                carries: 32,
                arrives_at: 32
            }
        );
    }

    #[test]
    fn a_later_block_in_place_of_one_that_never_arrives_is_overwritten() {
        assert_eq!(
            cause(&[(4, Some(12), 4)], 16),
            Cause::Overwritten {
                at: 32,
                carries: 96
            }
        );
    }

    #[test]
    fn a_shift_that_skips_words_is_lost_unless_they_were_meant_beyond_the_stream() {
        // Words 4..6 skipped: positions 4..14 carry 6..16.
        assert_eq!(
            cause(&[(4, Some(6), 10)], 14),
            Cause::Lost {
                at: 32,
                carries: 48
            }
        );
        // Word 16 is beyond a 16-word stream: reuse by the bytes after its end.
        let d = runs(&[(12, Some(16), 4)]).diagnose(128, Some(128)).unwrap();
        assert_eq!(
            d.cause,
            Cause::Overwritten {
                at: 96,
                carries: 128
            }
        );
    }

    /// One buffer reused at once: every chunk carries the next one's bytes, the last
    /// arrives twice. Near word 1 this is a skip of one word; the whole stream is not.
    #[test]
    fn a_buffer_reused_for_each_next_chunk_is_overwritten_not_lost() {
        let chained = [(1, Some(2), 6)];
        for expected in [None, Some(64)] {
            let d = runs(&chained).diagnose(64, expected).unwrap();
            assert_eq!(d.cause, Cause::Overwritten { at: 8, carries: 16 });
        }
    }

    #[test]
    fn a_repeated_range_is_duplicated() {
        // Words 2..6 again after word 5, the rest follows shifted.
        assert_eq!(
            cause(&[(6, Some(2), 14)], 20),
            Cause::Duplicated {
                at: 48,
                carries: 16,
                bytes: 32
            }
        );
    }

    #[test]
    fn too_many_runs_make_a_partial_diagnosis() {
        let wrong: Vec<_> = (0..MAX_RUNS as u64 + 1).map(|i| (2 * i, None, 1)).collect();
        let d = runs(&wrong).diagnose(80_000, None).unwrap();
        assert!(d.partial);
        assert!(
            d.to_string()
                .ends_with("more than 4096 runs of wrong words"),
            "{d}"
        );
        assert!(!runs(&wrong[1..]).diagnose(80_000, None).unwrap().partial);
    }

    #[test]
    fn no_wrong_word_no_diagnosis() {
        assert_eq!(Runs::default().diagnose(4096, Some(4096)), None);
    }

    #[test]
    fn the_json_names_the_kind() {
        let d = Diagnosis {
            cause: Cause::Interleaved {
                at: 8,
                carries: 64,
                arrives_at: 72,
            },
            partial: false,
        };
        let v = serde_json::to_value(d).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind": "interleaved", "at": 8, "carries": 64,
                               "arrives_at": 72, "partial": false})
        );
        assert_eq!(serde_json::from_value::<Diagnosis>(v).unwrap(), d);
    }
}
