//! The cost of every buffer-reuse policy against plain `send()`, measured on the running
//! kernel with the same sans-IO policies the model checks (`zcsafe bench`).
//!
//! For each transport and chunk size the bench runs *rounds*; in every round each
//! policy sends one stream, `copy` first. Ratios to `copy` are taken inside a round (the
//! same minutes, the same machine load) and their median over the measured rounds is
//! reported; the first `warmup` rounds are discarded (and size the streams: each stream
//! is sized to take about `target_run` at the speed the warm-up measured). Absolute
//! numbers are medians too, with their spread, but only ratios are comparable between
//! runs of the bench.
//!
//! The receiver is zcsafe's verifying receiver reading as fast as it can (256 KiB reads,
//! every word checked). Policies pipeline over `slots` chunk-sized buffer slots.

pub mod measure;
pub mod render;

use measure::{measure_stream, Failure, Sample, StreamOptions};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use zcsafe_kernel::transport::Transport;
use zcsafe_kernel::veth::Network;
use zcsafe_policies::{Entry, Layout};
use zcsafe_policy::{Evidence, Finding, Geometry, Profile, Verdict};

/// The baseline every policy is compared with.
pub const BASELINE: &str = "copy";

/// Policies the bench runs by default: `copy`, each safe reference policy and its unsafe
/// twin (the naive scheme it fixes, [`Entry::twin`]).
pub const DEFAULT_POLICIES: &[&str] = &[
    "copy",
    "zc-naive",
    "zc-completion",
    "uring-zc-naive",
    "uring-zc-notif",
    "vmsplice-double-buffer",
    "app-ack",
    "vmsplice-gift-fresh",
    "siocoutq-drain",
    "siocoutq-seq",
    "sendfile-rewrite",
    "sendfile-rotate",
];

/// Default chunk sizes: 4 KiB to 1 MiB.
pub const DEFAULT_CHUNKS: &[u64] = &[4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20];

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Catalogue entries; `copy` is added first if missing.
    pub policies: Vec<Entry>,
    pub transports: Vec<Transport>,
    pub chunks: Vec<u64>,
    /// Buffer slots (chunks in flight) of the pipelined policies…
    pub slots: u64,
    /// …raised so that at least this many bytes can be in flight. A completion comes
    /// only when the ACK frees the skb, so a safe policy with less user buffer than the
    /// socket may queue is throttled by its own buffer while its unsafe twin is throttled
    /// by `sk_sndbuf`: zc-completion at 4 KiB on veth was 0.35× zc-naive with 32 slots,
    /// 0.5× with 1 MiB in flight, 0.87–1.0× with 4 MiB (= `tcp_wmem[2]`). Default:
    /// [`sndbuf_ceiling`].
    pub min_inflight: u64,
    /// Measured rounds per transport and chunk size.
    pub repeat: u32,
    /// Rounds run first and discarded.
    pub warmup: u32,
    /// Fixed stream length; `None`: sized from the warm-up to take about `target_run`.
    pub bytes: Option<u64>,
    pub target_run: Duration,
    /// Bounds of an adaptive stream length.
    pub min_bytes: u64,
    pub max_bytes: u64,
    pub seed: u64,
    pub op_timeout: Duration,
    /// Progress lines on stderr.
    pub verbose: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            policies: DEFAULT_POLICIES
                .iter()
                .filter_map(|n| zcsafe_policies::find(n))
                .collect(),
            transports: vec![Transport::Loopback],
            chunks: DEFAULT_CHUNKS.to_vec(),
            slots: 32,
            min_inflight: sndbuf_ceiling(),
            repeat: 5,
            warmup: 1,
            bytes: None,
            target_run: Duration::from_millis(250),
            min_bytes: 4 << 20,
            max_bytes: 512 << 20,
            seed: 0,
            op_timeout: Duration::from_secs(10),
            verbose: false,
        }
    }
}

/// Where `/proc` publishes the TCP send-buffer bounds (min, default, max).
const TCP_WMEM: &str = "/proc/sys/net/ipv4/tcp_wmem";

/// The most a TCP socket may queue for sending: the autotuning ceiling `tcp_wmem[2]`
/// (`tcp_sndbuf_expand` grows `sk_sndbuf` up to it). New network namespaces copy the
/// initial namespace's value (`tcp_sk_init`), so the host's file holds for veth too.
/// 4 MiB, the kernel's default, when the file cannot be read.
pub fn sndbuf_ceiling() -> u64 {
    std::fs::read_to_string(TCP_WMEM)
        .ok()
        .and_then(|s| parse_tcp_wmem(&s))
        .unwrap_or(4 << 20)
}

fn parse_tcp_wmem(s: &str) -> Option<u64> {
    s.split_whitespace().nth(2)?.parse().ok()
}

impl BenchOptions {
    /// The slots a pipelined policy gets at `chunk`.
    pub fn slots_for(&self, chunk: u64) -> u64 {
        self.slots.max(self.min_inflight / chunk.max(1)).max(1)
    }
}

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

/// One policy × transport × chunk size. Serialises as a [`Finding`] (the `results`
/// shape of every command, backend `bench`) with the bench's numbers beside it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    #[serde(flatten)]
    pub finding: Finding,
    pub chunk_bytes: u64,
    /// Median over the measured rounds.
    pub throughput_bytes_per_s: f64,
    /// Sender thread user + system CPU seconds per GiB, median.
    pub cpu_s_per_gib: f64,
    /// Median over rounds of (this policy's throughput / copy's, same round).
    pub ratio_to_copy: f64,
    /// Median over rounds of (this policy's CPU per GiB / copy's, same round).
    pub cpu_ratio_to_copy: f64,
    /// Median over rounds of (throughput / the unsafe twin's, same round).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_to_twin: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twin: Option<String>,
    pub throughput: Stat,
    pub cpu_per_gib: Stat,
    pub ratio: Stat,
    /// Receiver thread CPU seconds per GiB, median.
    pub receiver_cpu_s_per_gib: f64,
    /// The user buffer the policy cycles through.
    pub buffer_bytes: u64,
    /// Largest number of user-buffer bytes the kernel held at once (max over rounds);
    /// `None` when the policy's operations do not tell (sendfile: page-cache pages).
    pub peak_pinned_bytes: Option<u64>,
    /// Stream length of the measured rounds.
    pub stream_bytes: u64,
    pub rounds: u32,
    /// Corrupt words summed over the rounds (an unsafe policy may corrupt even with a
    /// fast reader; a safe one never may).
    pub corrupt_words: u64,
    /// The policy is expected safe on this transport (classic kernel profile).
    pub expected_safe: bool,
}

/// Everything one `zcsafe bench` measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub results: Vec<BenchResult>,
}

impl BenchReport {
    /// Exit status, as every command's ([`zcsafe_policy::Results::exit_code`]): 1 when a
    /// policy expected safe corrupted data (a contradiction), else 3 when a stream could
    /// not be measured (`error`), else 0.
    pub fn exit_code(&self) -> u8 {
        if self
            .results
            .iter()
            .any(|r| r.expected_safe && r.corrupt_words > 0)
        {
            1
        } else if self
            .results
            .iter()
            .any(|r| r.finding.verdict == Verdict::Error)
        {
            3
        } else {
            0
        }
    }
}

/// Why the bench could not run at all.
#[derive(Debug)]
pub struct BenchError(pub String);

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

/// The geometry a policy runs with at `chunk` bytes, as its [`Layout`] asks: `slots`
/// slots and a pipe that holds a chunk (at least the kernel's default 64 KiB, a power of
/// two as `F_SETPIPE_SZ` rounds), or two halves of a one-chunk pipe.
pub fn geometry(entry: &Entry, chunk: u64, slots: u64, stream: u64) -> Geometry {
    match entry.layout {
        Layout::Slots => Geometry::kernel(
            chunk,
            slots.max(1) * chunk,
            chunk.max(64 << 10).next_power_of_two(),
            stream,
        ),
        Layout::PipeHalves => Geometry::kernel(chunk, 2 * chunk, chunk.next_power_of_two(), stream),
    }
}

fn round_to_chunk(bytes: u64, chunk: u64) -> u64 {
    (bytes / chunk).max(1) * chunk
}

/// Per policy: its samples in the measured rounds (index = round).
struct Cell {
    entry: Entry,
    samples: Vec<Option<Sample>>,
    errors: Vec<Failure>,
    stream: u64,
    buffer: u64,
}

/// Runs the bench; `on_result` sees each finished transport × chunk group.
pub fn run(opts: &BenchOptions) -> Result<BenchReport, BenchError> {
    let mut entries = opts.policies.clone();
    if !entries.iter().any(|e| e.name == BASELINE) {
        entries.insert(
            0,
            zcsafe_policies::find(BASELINE).expect("copy is catalogued"),
        );
    } else {
        // copy first: every round starts with the baseline.
        entries.sort_by_key(|e| e.name != BASELINE);
    }
    if opts.repeat == 0 {
        return Err(BenchError("--repeat must be at least 1".into()));
    }
    for &c in &opts.chunks {
        if c == 0 || c % 4096 != 0 {
            return Err(BenchError(format!(
                "chunk {c} is not a positive multiple of 4096"
            )));
        }
    }
    let mut report = BenchReport::default();
    for &t in &opts.transports {
        if let Some(why) = zcsafe_kernel::veth::unavailable(&t) {
            return Err(BenchError(why));
        }
        let net = Network::setup(t).map_err(|e| BenchError(e.to_string()))?;
        for &chunk in &opts.chunks {
            let cells = run_group(opts, &entries, &net, t, chunk);
            report.results.extend(summarise(opts, t, chunk, &cells));
        }
    }
    Ok(report)
}

fn log(opts: &BenchOptions, line: impl FnOnce() -> String) {
    if opts.verbose {
        eprintln!("{}", line());
    }
}

fn run_group(
    opts: &BenchOptions,
    entries: &[Entry],
    net: &Network,
    t: Transport,
    chunk: u64,
) -> Vec<Cell> {
    let warm_bytes = round_to_chunk(
        opts.bytes
            .unwrap_or(opts.min_bytes)
            .max(8 * chunk)
            .min(opts.max_bytes.max(8 * chunk)),
        chunk,
    );
    let mut cells: Vec<Cell> = entries
        .iter()
        .map(|e| Cell {
            entry: *e,
            samples: Vec::new(),
            errors: Vec::new(),
            stream: opts.bytes.map_or(warm_bytes, |b| round_to_chunk(b, chunk)),
            buffer: geometry(e, chunk, opts.slots_for(chunk), chunk).buffer,
        })
        .collect();
    let rounds = opts.warmup + opts.repeat;
    for round in 0..rounds {
        let measured = round >= opts.warmup;
        for cell in cells.iter_mut() {
            let g = geometry(&cell.entry, chunk, opts.slots_for(chunk), cell.stream);
            let sample = match cell.entry.build(&g) {
                Err(e) => Err(format!("{} cannot use this geometry: {e}", cell.entry.name)),
                Ok(policy) => {
                    let so = StreamOptions {
                        geometry: g,
                        seed: opts.seed.wrapping_add(round as u64),
                        app_ack: cell.entry.needs_app_ack,
                        op_timeout: opts.op_timeout,
                        run_timeout: opts.op_timeout * 6,
                    };
                    measure_stream(policy, net, &so)
                }
            };
            let sample = match sample {
                Ok(s) => match &s.failure {
                    Some(f) => {
                        cell.errors.push(f.clone());
                        None
                    }
                    None => Some(s),
                },
                Err(e) => {
                    cell.errors.push(Failure::Failed(e));
                    None
                }
            };
            log(opts, || match &sample {
                Some(s) => format!(
                    "{:<10} {:>5} KiB  {:<22} {}{} {:>7.3} GiB/s  cpu {:>6.3} s/GiB  {} MiB",
                    t.label(),
                    chunk >> 10,
                    cell.entry.name,
                    if measured { "" } else { "(warm-up) " },
                    round,
                    s.throughput() / (1u64 << 30) as f64,
                    s.cpu_s_per_gib(),
                    s.bytes >> 20
                ),
                None => format!(
                    "{:<10} {:>5} KiB  {:<22} round {round}: {}",
                    t.label(),
                    chunk >> 10,
                    cell.entry.name,
                    cell.errors.last().map_or("?".into(), Failure::to_string)
                ),
            });
            if !measured {
                // Size the measured streams from the warm-up's speed.
                if let (None, Some(s)) = (opts.bytes, &sample) {
                    let want = s.throughput() * opts.target_run.as_secs_f64();
                    let want = (want as u64).clamp(opts.min_bytes, opts.max_bytes);
                    cell.stream = round_to_chunk(want.max(8 * chunk), chunk);
                }
            } else {
                cell.samples.push(sample);
            }
        }
    }
    cells
}

fn summarise(opts: &BenchOptions, t: Transport, chunk: u64, cells: &[Cell]) -> Vec<BenchResult> {
    let base = cells.iter().find(|c| c.entry.name == BASELINE);
    let profile = Profile::classic();
    let ratio_to = |cell: &Cell, other: Option<&Cell>, f: &dyn Fn(&Sample) -> f64| {
        in_round_ratio(&cell.samples, &other?.samples, f)
    };
    cells
        .iter()
        .map(|cell| {
            let ok: Vec<&Sample> = cell.samples.iter().flatten().collect();
            let tput = Stat::of(&ok.iter().map(|s| s.throughput()).collect::<Vec<_>>());
            let cpu = Stat::of(&ok.iter().map(|s| s.cpu_s_per_gib()).collect::<Vec<_>>());
            let rx_cpu = Stat::of(
                &ok.iter()
                    .map(|s| s.receiver_cpu.as_secs_f64() / (s.bytes as f64 / (1u64 << 30) as f64))
                    .collect::<Vec<_>>(),
            );
            let ratio = ratio_to(cell, base, &|s| s.throughput()).unwrap_or_default();
            let cpu_ratio = ratio_to(cell, base, &|s| s.cpu_s_per_gib()).unwrap_or_default();
            let twin_name = cell.entry.twin;
            let twin_cell = twin_name.and_then(|n| cells.iter().find(|c| c.entry.name == n));
            let ratio_to_twin = ratio_to(cell, twin_cell, &|s| s.throughput()).map(|s| s.median);
            let corrupt: u64 = ok.iter().map(|s| s.corrupt_words).sum();
            let peak = ok
                .iter()
                .map(|s| s.peak_pinned)
                .try_fold(0u64, |m, p| p.map(|p| m.max(p)));
            let g = geometry(&cell.entry, chunk, opts.slots_for(chunk), cell.stream);
            let expectation = cell.entry.expect_for(t.class(), &profile, &g);
            let expected_safe = expectation.verdict == Verdict::Safe;
            let unsupported = cell
                .errors
                .iter()
                .any(|e| matches!(e, Failure::Unsupported(_)));
            let verdict = if ok.is_empty() && unsupported {
                Verdict::Unsupported
            } else if ok.is_empty() {
                Verdict::Error
            } else if corrupt > 0 {
                Verdict::Corrupt
            } else {
                Verdict::Safe
            };
            let mut detail = if ok.is_empty() {
                format!(
                    "no stream completed: {}",
                    cell.errors.first().map_or("?".into(), Failure::to_string)
                )
            } else {
                format!(
                    "{:.3} GiB/s ({:.2}× copy), {:.3} CPU s/GiB, {} of {} rounds",
                    tput.median / (1u64 << 30) as f64,
                    ratio.median,
                    cpu.median,
                    ok.len(),
                    cell.samples.len()
                )
            };
            if corrupt > 0 {
                detail += &format!("; the receiver saw {corrupt} corrupt words");
            }
            if !ok.is_empty() && !cell.errors.is_empty() {
                detail += &format!("; failed rounds: {}", cell.errors[0]);
            }
            let mut counts = serde_json::Map::new();
            counts.insert("chunk_bytes".into(), chunk.into());
            counts.insert("stream_bytes".into(), cell.stream.into());
            counts.insert("rounds".into(), (ok.len() as u64).into());
            counts.insert("warmup_rounds".into(), opts.warmup.into());
            counts.insert("slots".into(), (g.buffer / g.chunk).into());
            let ops = Stat::of(
                &ok.iter()
                    .map(|s| s.ops as f64 / (s.bytes as f64 / chunk as f64))
                    .collect::<Vec<_>>(),
            );
            counts.insert(
                "ops_per_chunk".into(),
                ((ops.median * 100.0).round() / 100.0).into(),
            );
            BenchResult {
                finding: Finding {
                    policy: cell.entry.name.to_string(),
                    transport: t.label(),
                    backend: "bench".into(),
                    kernel: Some(zcsafe_kernel::kernel_release()),
                    verdict,
                    expected: expectation.verdict,
                    expected_why: expectation.why.into(),
                    predicted: None,
                    evidence: Evidence {
                        detail,
                        trace: None,
                        counts,
                    },
                },
                chunk_bytes: chunk,
                throughput_bytes_per_s: tput.median,
                cpu_s_per_gib: cpu.median,
                ratio_to_copy: ratio.median,
                cpu_ratio_to_copy: cpu_ratio.median,
                ratio_to_twin,
                twin: twin_name.map(str::to_string),
                throughput: tput,
                cpu_per_gib: cpu,
                ratio,
                receiver_cpu_s_per_gib: rx_cpu.median,
                buffer_bytes: cell.buffer,
                peak_pinned_bytes: peak,
                stream_bytes: cell.stream,
                rounds: ok.len() as u32,
                corrupt_words: corrupt,
                expected_safe,
            }
        })
        .collect()
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

/// Parses `4K,16k,64KiB,1M,65536`.
pub fn parse_sizes(s: &str) -> Result<Vec<u64>, BenchError> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(parse_size)
        .collect()
}

pub fn parse_size(p: &str) -> Result<u64, BenchError> {
    let lower = p.to_ascii_lowercase();
    let t = lower
        .trim_end_matches("ib")
        .trim_end_matches('b')
        .to_string();
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (&t[..], 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| BenchError(format!("bad size {p:?}: use e.g. 4K, 64KiB, 1M or 65536")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sndbuf_ceiling_is_the_third_tcp_wmem_field() {
        assert_eq!(parse_tcp_wmem("4096\t16384\t4194304\n"), Some(4 << 20));
        assert_eq!(parse_tcp_wmem("4096 16384"), None);
        assert_eq!(parse_tcp_wmem("a b c"), None);
        assert!(sndbuf_ceiling() >= 4096);
    }

    #[test]
    fn a_kernel_without_the_feature_is_unsupported_not_a_failed_bench() {
        let cell = |name: &str, errors: Vec<Failure>, samples: Vec<Option<Sample>>| Cell {
            entry: zcsafe_policies::find(name).unwrap(),
            samples,
            errors,
            stream: 1 << 20,
            buffer: 1 << 20,
        };
        let cells = [
            cell("copy", vec![], vec![sample(1 << 30)]),
            cell(
                "uring-zc-notif",
                vec![Failure::Unsupported("no SEND_ZC".into())],
                vec![None],
            ),
            cell(
                "zc-completion",
                vec![Failure::Failed("stuck".into())],
                vec![None],
            ),
        ];
        let rs = summarise(&BenchOptions::default(), Transport::Loopback, 65536, &cells);
        let verdicts: Vec<Verdict> = rs.iter().map(|r| r.finding.verdict).collect();
        assert_eq!(
            verdicts,
            [Verdict::Safe, Verdict::Unsupported, Verdict::Error]
        );
        assert!(rs[1]
            .finding
            .evidence
            .detail
            .contains("unsupported: no SEND_ZC"));
        let only_unsupported = BenchReport {
            results: rs[..2].to_vec(),
        };
        assert_eq!(only_unsupported.exit_code(), 0);
        // A stream that failed is not a contradiction: it could not be judged.
        assert_eq!(
            BenchReport {
                results: rs.clone()
            }
            .exit_code(),
            3
        );
        let mut corrupted = rs;
        corrupted[0].corrupt_words = 1;
        assert_eq!(BenchReport { results: corrupted }.exit_code(), 1);
    }

    #[test]
    fn medians_and_spreads() {
        let s = Stat::of(&[3.0, 1.0, 2.0, 10.0]);
        assert_eq!(s.median, 2.5);
        assert_eq!((s.min, s.max), (1.0, 10.0));
        assert_eq!(Stat::of(&[4.0, 2.0, 9.0]).median, 4.0);
        assert!((Stat::of(&[1.0, 2.0, 3.0]).spread_pct() - 100.0).abs() < 1e-9);
    }

    fn sample(bytes_per_s: u64) -> Option<Sample> {
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

    #[test]
    fn sizes_parse() {
        assert_eq!(
            parse_sizes("4K,64KiB, 1M,8192").unwrap(),
            vec![4096, 65536, 1 << 20, 8192]
        );
        assert!(parse_sizes("4Q").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn geometries_validate_for_every_default_policy() {
        for name in DEFAULT_POLICIES {
            for &c in DEFAULT_CHUNKS {
                let e = zcsafe_policies::find(name).unwrap();
                let g = geometry(&e, c, 32, 64 * c);
                assert!(e.build(&g).is_ok(), "{name} at {c}");
            }
        }
    }

    #[test]
    fn small_chunks_get_enough_slots_to_keep_a_pipeline() {
        let o = BenchOptions {
            min_inflight: 1 << 20,
            ..BenchOptions::default()
        };
        assert_eq!(o.slots_for(4 << 10), 256);
        assert_eq!(o.slots_for(64 << 10), 32);
        assert_eq!(o.slots_for(1 << 20), 32);
        let o = BenchOptions {
            min_inflight: 0,
            ..o
        };
        assert_eq!(o.slots_for(4 << 10), 32);
    }

    #[test]
    fn twins_are_in_the_default_set() {
        for name in DEFAULT_POLICIES {
            if let Some(t) = zcsafe_policies::find(name).unwrap().twin {
                assert!(DEFAULT_POLICIES.contains(&t));
            }
        }
    }
}
