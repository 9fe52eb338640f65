//! `zcsafe bench --kernels`: the same bench inside QEMU guests, through the matrix's
//! machinery (kernel fetch, initramfs, one VM per kernel × transport, watchdog).
//!
//! Each VM runs one `zcsafe bench --transport T … --json` — every policy in the same
//! rounds, so in-round ratios stay meaningful — and its report comes back over the
//! result port. Under TCG the absolute numbers are emulation speed; the ratios are the
//! guest kernel's.

use super::Args;
use crate::progress::ProgressBar;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Duration;
use zcsafe_bench::{BenchError, BenchOptions, BenchReport, BenchResult, Stat};
use zcsafe_kernel::Transport;
use zcsafe_vm::matrix::{self, Cell, Options, Progress};
use zcsafe_vm::qemu::Nic;

/// Benchmarks in the guests of `list` (and on this host for `host`), one report.
pub fn bench(
    args: &Args,
    list: &str,
    host_opts: &BenchOptions,
) -> Result<Result<BenchReport, BenchError>> {
    let names: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect();
    let guests: Vec<&str> = names.iter().copied().filter(|&k| k != "host").collect();
    let mut report = BenchReport::default();
    if !guests.is_empty() {
        let mut o = Options::new(PathBuf::new());
        o.kernels = guests.join(",");
        // One cell per VM: the bench itself runs every policy.
        o.policies = vec!["copy".into()];
        o.transports = host_opts
            .transports
            .iter()
            .map(|t| t.name().parse())
            .collect::<Result<_, _>>()
            .context("a host transport the guests do not offer")?;
        o.nic = args.nic.parse::<Nic>().context("--nic")?;
        // Benchmarks must not share the cores with each other.
        o.jobs = 1;
        o.command = guest_command(args);
        o.keep_output = true;
        o.machine.limits.cell = Duration::from_secs(args.cell_timeout.max(30));
        o.machine.limits.total = o.machine.limits.cell + Duration::from_secs(300);
        o.validate().map_err(crate::cmd::matrix::option_hints)?;
        o.guest_binary = crate::cmd::matrix::guest_binary(args.guest_binary.clone())?;
        let mut bar = ProgressBar::new("guest benches");
        let m = matrix::run(&o, |p| match p {
            Progress::Kernel { name, message } => {
                bar.note(&format!("zcsafe: kernel {name}: {message}"))
            }
            Progress::Cell { done, total, cell } => bar.line(
                &format!(
                    "[{done}/{total}] {} {}: {} in {:.0} s",
                    cell.kernel_name,
                    cell.finding.transport,
                    if cell.finding.verdict == zcsafe_policy::Verdict::Error {
                        "failed"
                    } else {
                        "measured"
                    },
                    cell.seconds
                ),
                *done,
                *total,
            ),
        })?;
        drop(bar);
        for cell in &m.results {
            report.results.extend(results_of(cell));
        }
    }
    if names.contains(&"host") {
        let mut host = host_opts.clone();
        host.transports.retain(|t| *t != Transport::Remote);
        if !host.transports.is_empty() {
            match zcsafe_bench::run(&host) {
                Ok(r) => report.results.extend(r.results),
                Err(e) => return Ok(Err(e)),
            }
        }
    }
    Ok(Ok(report))
}

/// The guest's command line: this run's options, one transport per VM.
fn guest_command(a: &Args) -> String {
    let mut cmd = format!(
        "zcsafe bench --transport {{transport}} --chunk {} --repeat {} --warmup {} --slots {} \
         --min-inflight {} --target-ms {} --rate {} --loss {} --json",
        a.chunk, a.repeat, a.warmup, a.slots, a.min_inflight, a.target_ms, a.rate, a.loss
    );
    if a.safe {
        cmd += " --safe";
    } else if !a.policies.is_empty() {
        cmd += &format!(" --policy {}", a.policies.join(","));
    }
    if let Some(b) = &a.bytes {
        cmd += &format!(" --bytes {b}");
    }
    cmd
}

/// The bench results a guest printed, marked as measured in a VM; a cell without a
/// report becomes one row that carries the reason.
fn results_of(cell: &Cell) -> Vec<BenchResult> {
    match report_in(&cell.output) {
        Some(r) if !r.results.is_empty() => r
            .results
            .into_iter()
            .map(|mut r| {
                r.finding.backend = "vm".into();
                r
            })
            .collect(),
        _ => vec![failed(cell)],
    }
}

/// The first bench report in a command's output (pretty-printed JSON over many lines).
fn report_in(lines: &[String]) -> Option<BenchReport> {
    let text = lines.join("\n");
    text.match_indices('{').find_map(|(at, _)| {
        let mut it = serde_json::Deserializer::from_str(&text[at..]).into_iter::<BenchReport>();
        it.next()?.ok()
    })
}

fn failed(cell: &Cell) -> BenchResult {
    let mut finding = cell.finding.clone();
    finding.verdict = zcsafe_policy::Verdict::Error;
    if finding.evidence.detail.is_empty() {
        finding.evidence.detail = "the guest printed no bench report".into();
    }
    BenchResult {
        finding,
        chunk_bytes: 0,
        throughput_bytes_per_s: 0.0,
        cpu_s_per_gib: 0.0,
        ratio_to_copy: 0.0,
        cpu_ratio_to_copy: 0.0,
        ratio_to_twin: None,
        twin: None,
        throughput: Stat::default(),
        cpu_per_gib: Stat::default(),
        ratio: Stat::default(),
        receiver_cpu_s_per_gib: 0.0,
        buffer_bytes: 0,
        peak_pinned_bytes: None,
        exposure: Default::default(),
        stream_bytes: 0,
        rounds: 0,
        corrupt_words: 0,
        expected_safe: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pretty_report_is_found_among_other_output() {
        let r = BenchReport {
            results: vec![failed(&Cell {
                finding: zcsafe_policy::Finding {
                    policy: "copy".into(),
                    transport: "remote".into(),
                    backend: "bench".into(),
                    kernel: Some("5.10.0-32-cloud-amd64".into()),
                    verdict: zcsafe_policy::Verdict::Safe,
                    expected: zcsafe_policy::Verdict::Safe,
                    expected_why: String::new(),
                    predicted: None,
                    evidence: Default::default(),
                },
                kernel_name: "5.10".into(),
                kernel_version: String::new(),
                nic: None,
                netem: None,
                seconds: 1.0,
                rerun: String::new(),
                console_tail: None,
                output: vec![],
            })],
        };
        let mut lines = vec!["zcsafe: warming up {not json".to_string()];
        lines.extend(
            serde_json::to_string_pretty(&r)
                .unwrap()
                .lines()
                .map(String::from),
        );
        assert_eq!(report_in(&lines), Some(r));
        assert_eq!(report_in(&["{\"x\": 1}".to_string()]), None);
    }
}
