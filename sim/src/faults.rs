//! Network and receiver faults, and the `--faults` spec that names them.
//!
//! A spec is a comma-separated list of `key=value`:
//!
//! ```text
//! latency=5ms,jitter=2ms,loss=0.05,reorder=0.1,partition=20ms..40ms,hold=50ms..60ms,
//! slow-reader=3ms,device=2ms,rto=30ms,drop=3
//! ```
//!
//! Keys left out keep their default ([`Faults::default`]). Durations take `us`, `ms` or
//! `s`. A window `A..B` is simulated time since the start of the run.

use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;
use thiserror::Error;

/// Faults applied to one simulated run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Minimum one-way latency of the link (segments and ACKs).
    pub latency: Duration,
    /// Latency varies in `latency ..= latency + jitter` (turmoil's exponential curve);
    /// datagrams overtake each other when it is not zero.
    pub jitter: Duration,
    /// Probability that the link drops a message (turmoil's `fail_rate`, repaired on
    /// the next message).
    pub loss: f64,
    /// Probability that the sender's qdisc holds a segment back by one more
    /// `latency + jitter` before it enters the link (netem-style reordering).
    pub reorder: f64,
    /// The link drops everything during this window.
    pub partition: Option<Window>,
    /// The link holds everything during this window, then releases it.
    pub hold: Option<Window>,
    /// The receiving application reads one page, then sleeps this long.
    pub slow_reader: Duration,
    /// How slow the NIC's TX completion is (remote only): each 1 ms tick completes the
    /// ring with probability `1 / (1 + device in ms)`, so about this long on average.
    pub device: Duration,
    /// Retransmission timeout; `None` derives it from latency and jitter.
    pub rto: Option<Duration>,
    /// The K-th segment carrying new sequence space (1-based, in the order they reach
    /// the receiver; retransmissions never) is lost once: the same rule as the `tun`
    /// peer's `drop=K`, so one scenario file drives both
    /// ([`zcsafe_policy::FailureScenario`]).
    #[serde(default)]
    pub drop: Option<u32>,
}

/// A time window `[start, end)` of simulated time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: Duration,
    pub end: Duration,
}

impl Window {
    pub fn contains(&self, t: Duration) -> bool {
        self.start <= t && t < self.end
    }
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
            reorder: 0.0,
            partition: None,
            hold: None,
            slow_reader: Duration::ZERO,
            device: Duration::ZERO,
            rto: None,
            drop: None,
        }
    }
}

/// A `--faults` spec that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FaultsError {
    #[error("`{0}` is not `key=value` (e.g. `latency=5ms`)")]
    NotKeyValue(String),
    #[error("unknown fault `{0}`; known: latency, jitter, loss, reorder, partition, hold, slow-reader, device, rto, drop")]
    UnknownKey(String),
    #[error("`{key}={value}`: expected a duration such as 500us, 5ms or 1s")]
    BadDuration { key: String, value: String },
    #[error("`{key}={value}`: expected a probability between 0 and 1")]
    BadProbability { key: String, value: String },
    #[error("`{key}={value}`: expected a window START..END with START < END, e.g. 20ms..40ms")]
    BadWindow { key: String, value: String },
    #[error("`{key}={value}`: expected a segment number, 1 for the first")]
    BadSegment { key: String, value: String },
    #[error("`{0}` is given twice")]
    Duplicate(String),
}

impl Faults {
    /// Parses a spec; an empty spec is [`Faults::default`].
    pub fn parse(spec: &str) -> Result<Faults, FaultsError> {
        let mut f = Faults::default();
        let mut seen: Vec<String> = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| FaultsError::NotKeyValue(item.to_string()))?;
            let (key, value) = (key.trim(), value.trim());
            if seen.iter().any(|k| k == key) {
                return Err(FaultsError::Duplicate(key.to_string()));
            }
            seen.push(key.to_string());
            let dur = || {
                parse_duration(value).ok_or_else(|| FaultsError::BadDuration {
                    key: key.into(),
                    value: value.into(),
                })
            };
            let prob = || {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(|| FaultsError::BadProbability {
                        key: key.into(),
                        value: value.into(),
                    })
            };
            let window = || {
                value
                    .split_once("..")
                    .and_then(|(a, b)| Some((parse_duration(a)?, parse_duration(b)?)))
                    .filter(|(a, b)| a < b)
                    .map(|(start, end)| Window { start, end })
                    .ok_or_else(|| FaultsError::BadWindow {
                        key: key.into(),
                        value: value.into(),
                    })
            };
            match key {
                "latency" => f.latency = dur()?,
                "jitter" => f.jitter = dur()?,
                "loss" => f.loss = prob()?,
                "reorder" => f.reorder = prob()?,
                "partition" => f.partition = Some(window()?),
                "hold" => f.hold = Some(window()?),
                "slow-reader" => f.slow_reader = dur()?,
                "device" => f.device = dur()?,
                "rto" => f.rto = Some(dur()?),
                "drop" => {
                    f.drop = Some(value.parse::<u32>().ok().filter(|k| *k >= 1).ok_or_else(
                        || FaultsError::BadSegment {
                            key: key.into(),
                            value: value.into(),
                        },
                    )?)
                }
                _ => return Err(FaultsError::UnknownKey(key.to_string())),
            }
        }
        Ok(f)
    }

    /// Faults drawn from a seed: what `sim` explores when no spec is given. Mostly
    /// mild, sometimes harsh, so that both common and rare orders show up.
    pub fn random(rng: &mut Rng) -> Faults {
        let ms = |n: u64| Duration::from_millis(n);
        let latency = ms(rng.below(4));
        let jitter = ms(*rng.pick(&[0, 0, 2, 5, 10]));
        let slow = ms(*rng.pick(&[0, 0, 1, 3, 8, 20]));
        let window = |rng: &mut Rng| {
            let start = ms(rng.below(40));
            Window {
                start,
                end: start + ms(1 + rng.below(30)),
            }
        };
        Faults {
            latency,
            jitter,
            loss: *rng.pick(&[0.0, 0.0, 0.02, 0.1, 0.25]),
            reorder: *rng.pick(&[0.0, 0.0, 0.1, 0.3]),
            partition: rng.chance(0.15).then(|| window(rng)),
            hold: rng.chance(0.15).then(|| window(rng)),
            slow_reader: slow,
            device: ms(*rng.pick(&[0, 1, 3, 10])),
            rto: rng.chance(0.4).then(|| ms(*rng.pick(&[2, 4, 8, 16]))),
            drop: None,
        }
    }

    /// The retransmission timeout in force.
    pub fn rto(&self) -> Duration {
        self.rto.unwrap_or_else(|| {
            (2 * (self.latency + self.jitter) + Duration::from_millis(10))
                .max(Duration::from_millis(5))
        })
    }

    /// The longest a message can spend on the link when it is not held.
    pub fn max_latency(&self) -> Duration {
        self.latency + self.jitter
    }
}

fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    match unit {
        "us" => Some(Duration::from_micros(n)),
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        _ => None,
    }
}

fn show(d: Duration) -> String {
    if d.subsec_micros() % 1000 != 0 {
        format!("{}us", d.as_micros())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Prints the spec that parses back to the same faults (every key, for replay).
impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "latency={},jitter={},loss={},reorder={}",
            show(self.latency),
            show(self.jitter),
            self.loss,
            self.reorder
        )?;
        if let Some(w) = self.partition {
            write!(f, ",partition={}..{}", show(w.start), show(w.end))?;
        }
        if let Some(w) = self.hold {
            write!(f, ",hold={}..{}", show(w.start), show(w.end))?;
        }
        write!(
            f,
            ",slow-reader={},device={}",
            show(self.slow_reader),
            show(self.device)
        )?;
        if let Some(r) = self.rto {
            write!(f, ",rto={}", show(r))?;
        }
        if let Some(k) = self.drop {
            write!(f, ",drop={k}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let f = Faults::parse(
            "latency=5ms,jitter=2ms,loss=0.05,reorder=0.1,partition=20ms..40ms,slow-reader=3ms,rto=1s",
        )
        .unwrap();
        assert_eq!(f.latency, Duration::from_millis(5));
        assert_eq!(f.loss, 0.05);
        assert_eq!(
            f.partition,
            Some(Window {
                start: Duration::from_millis(20),
                end: Duration::from_millis(40)
            })
        );
        assert_eq!(f.rto(), Duration::from_secs(1));
        assert_eq!(Faults::parse("").unwrap(), Faults::default());
        let d = Faults::parse("drop=3").unwrap();
        assert_eq!(d.drop, Some(3));
        assert_eq!(Faults::parse(&d.to_string()).unwrap(), d);
        assert!(Faults::parse("drop=0").is_err());
    }

    #[test]
    fn display_round_trips() {
        let mut rng = Rng::new(7);
        for _ in 0..50 {
            let f = Faults::random(&mut rng);
            assert_eq!(Faults::parse(&f.to_string()).unwrap(), f, "{f}");
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = |s| Faults::parse(s).unwrap_err().to_string();
        assert!(e("latency").contains("key=value"));
        assert!(e("lag=1ms").contains("unknown fault `lag`"));
        assert!(e("latency=5").contains("duration"));
        assert!(e("loss=1.5").contains("probability"));
        assert!(e("partition=40ms..20ms").contains("START < END"));
        assert!(e("loss=0.1,loss=0.2").contains("twice"));
    }
}
