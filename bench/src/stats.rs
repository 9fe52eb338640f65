//! Statistics over rounds: a median with its spread, and ratios taken inside a round.
//!
//! Why a module: how the bench reduces noisy samples to one number is the part a reader
//! must trust before any ratio in the report; it is pure arithmetic, tested apart from
//! the kernel.

use crate::measure::Sample;
use serde::{Deserialize, Serialize};

/// A median and the spread around it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(values: &[f64]) -> Stat {
        if values.is_empty() {
            return Stat::default();
        }
        let mut v = values.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stat {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }

    /// (max − min) / median, in percent.
    pub fn spread_pct(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / self.median * 100.0
        }
    }
}

/// The ratio `f(a) / f(b)` taken inside each round (index = round; a failed stream is
/// `None`), then its median and spread over the rounds — never a ratio of medians, so a
/// round slowed down by a neighbour's compile moves both sides together.
pub fn in_round_ratio(
    a: &[Option<Sample>],
    b: &[Option<Sample>],
    f: &dyn Fn(&Sample) -> f64,
) -> Option<Stat> {
    let r: Vec<f64> = a
        .iter()
        .zip(b)
        .filter_map(|(a, b)| Some(f(a.as_ref()?) / f(b.as_ref()?)))
        .filter(|v| v.is_finite())
        .collect();
    (!r.is_empty()).then(|| Stat::of(&r))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn medians_and_spreads() {
        let s = Stat::of(&[3.0, 1.0, 2.0, 10.0]);
        assert_eq!(s.median, 2.5);
        assert_eq!((s.min, s.max), (1.0, 10.0));
        assert_eq!(Stat::of(&[4.0, 2.0, 9.0]).median, 4.0);
        assert!((Stat::of(&[1.0, 2.0, 3.0]).spread_pct() - 100.0).abs() < 1e-9);
    }

    pub(crate) fn sample(bytes_per_s: u64) -> Option<Sample> {
        Some(Sample {
            bytes: bytes_per_s,
            wall: Duration::from_secs(1),
            send_wall: Duration::from_secs(1),
            sender_user: Duration::ZERO,
            sender_sys: Duration::from_millis(100),
            receiver_cpu: Duration::ZERO,
            peak_pinned: Some(0),
            ops: 1,
            corrupt_words: 0,
            exposure: Default::default(),
            failure: None,
        })
    }

    #[test]
    fn ratios_are_taken_within_each_round() {
        // copy's speed swings 100× between rounds (machine load); the policy is 3×, 1×
        // and 1.5× copy in the same rounds. Ratio of medians would say 1.0.
        let copy = [sample(1000), sample(10_000), sample(100_000)];
        let p = [sample(3000), sample(10_000), sample(150_000)];
        let r = in_round_ratio(&p, &copy, &|s| s.throughput()).unwrap();
        assert_eq!((r.median, r.min, r.max), (1.5, 1.0, 3.0));
        // A failed round drops out of both sides.
        let p = [sample(3000), None, sample(150_000)];
        assert_eq!(
            in_round_ratio(&p, &copy, &|s| s.throughput())
                .unwrap()
                .median,
            2.25
        );
        assert!(in_round_ratio(&[None], &copy[..1], &|s| s.throughput()).is_none());
    }
}
