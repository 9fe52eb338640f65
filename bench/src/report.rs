//! The bench's results: one [`BenchResult`] per policy × transport × chunk size (a
//! [`Finding`] with the bench's numbers beside it), the [`BenchReport`] that holds them
//! and its exit status, and the summary that turns a group's rounds into results.
//!
//! Why a module: this is the shape `--json` writes and `render` and the CLI read; the
//! verdict and expectation of every result are decided here, in one place.

use crate::measure::{Failure, Sample};
use crate::rounds::{geometry, Cell};
use crate::{in_round_ratio, BenchOptions, Stat, BASELINE};
use serde::{Deserialize, Serialize};
use zcsafe_kernel::transport::Transport;
use zcsafe_policy::{Evidence, Finding, Profile, Verdict};

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
    /// The measured rounds' reuses together: how far they exercised the hazard.
    #[serde(default)]
    pub exposure: zcsafe_kernel::Exposure,
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
        zcsafe_policy::exit_status(zcsafe_policy::Outcomes {
            contradicted: self
                .results
                .iter()
                .any(|r| r.expected_safe && r.corrupt_words > 0),
            unjudged: self
                .results
                .iter()
                .any(|r| r.finding.verdict == Verdict::Error),
            inconclusive: self
                .results
                .iter()
                .any(|r| r.finding.verdict == Verdict::Inconclusive),
        })
    }
}

/// The results of one transport × chunk group, from its cells' measured rounds.
pub(crate) fn summarise(
    opts: &BenchOptions,
    t: Transport,
    chunk: u64,
    cells: &[Cell],
) -> Vec<BenchResult> {
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
            let exposure = ok
                .iter()
                .fold(zcsafe_kernel::Exposure::default(), |a, s| a + s.exposure);
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
                        attempts: Vec::new(),
                        ..Default::default()
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
                exposure,
                stream_bytes: cell.stream,
                rounds: ok.len() as u32,
                corrupt_words: corrupt,
                expected_safe,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::tests::sample;

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
}
