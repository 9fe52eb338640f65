//! A short bench on tiny streams: the JSON has the `results` shape with the bench's
//! numbers, `copy` is the baseline of its own rounds, and every ratio comes from the
//! same run. No performance assertions: numbers come from `make bench-kernel`.

use std::time::Duration;
use zcsafe_bench::{BenchOptions, BenchReport};
use zcsafe_kernel::skip::skip;
use zcsafe_kernel::Transport;
use zcsafe_policy::Results;

fn tiny(transport: Transport) -> BenchOptions {
    BenchOptions {
        policies: ["zc-completion", "siocoutq-seq", "copy"]
            .iter()
            .map(|n| zcsafe_policies::find(n).unwrap())
            .collect(),
        transports: vec![transport],
        chunks: vec![4 << 10, 16 << 10],
        slots: 4,
        min_inflight: 0,
        repeat: 2,
        warmup: 1,
        bytes: Some(128 << 10),
        op_timeout: Duration::from_secs(5),
        ..BenchOptions::default()
    }
}

fn check_shape(report: &BenchReport) {
    assert_eq!(report.results.len(), 2 * 3, "3 policies × 2 chunk sizes");
    let json = serde_json::to_value(report).unwrap();
    // The shape every command prints: it parses as `Results`…
    let as_results: Results = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(as_results.results.len(), 6);
    for (r, v) in report
        .results
        .iter()
        .zip(json["results"].as_array().unwrap())
    {
        // …with the bench's numbers on each result.
        for key in [
            "throughput_bytes_per_s",
            "cpu_s_per_gib",
            "ratio_to_copy",
            "cpu_ratio_to_copy",
            "chunk_bytes",
            "buffer_bytes",
        ] {
            assert!(v[key].is_number(), "{key} missing in {v}");
        }
        assert_eq!(v["backend"], "bench");
        assert_eq!(
            r.rounds, 2,
            "{}: {}",
            r.finding.policy, r.finding.evidence.detail
        );
        assert!(r.throughput_bytes_per_s > 0.0 && r.cpu_s_per_gib >= 0.0);
        assert_eq!(r.stream_bytes, 128 << 10);
        // The ratio is the median of per-round ratios, so it lies within their spread.
        assert!(r.ratio.min <= r.ratio_to_copy && r.ratio_to_copy <= r.ratio.max);
        if r.expected_safe {
            assert_eq!(r.corrupt_words, 0, "{}", r.finding.evidence.detail);
        }
    }
    for chunk in [4 << 10, 16 << 10] {
        let group: Vec<_> = report
            .results
            .iter()
            .filter(|r| r.chunk_bytes == chunk)
            .collect();
        // copy runs first and is the baseline of its own rounds: exactly 1.
        assert_eq!(group[0].finding.policy, "copy");
        assert_eq!(group[0].ratio_to_copy, 1.0);
        assert_eq!(group[0].ratio.min, 1.0);
        assert_eq!(group[0].ratio.max, 1.0);
        let seq = group
            .iter()
            .find(|r| r.finding.policy == "siocoutq-seq")
            .unwrap();
        assert_eq!(seq.twin.as_deref(), Some("siocoutq-drain"));
        assert_eq!(seq.ratio_to_twin, None, "its twin did not run");
    }
    let table = zcsafe_bench::render::table(report);
    assert!(table.contains("zc-completion") && table.contains("×copy"));
    columns_line_up(&table);
    let svg = zcsafe_bench::render::svg(report);
    assert!(svg.starts_with("<svg") && svg.contains("polyline"));
}

#[test]
fn loopback_bench_has_the_results_shape_and_in_run_ratios() {
    let report = zcsafe_bench::run(&tiny(Transport::Loopback)).unwrap();
    check_shape(&report);
    assert!(report
        .results
        .iter()
        .all(|r| r.finding.transport == "loopback"));

    // One report from several kernels (`zcsafe bench --kernels`) keeps them apart.
    let mut merged = report.clone();
    merged
        .results
        .extend(report.results.iter().cloned().map(|mut r| {
            r.finding.kernel = Some("5.10.0-32-cloud-amd64".into());
            r
        }));
    let table = zcsafe_bench::render::table(&merged);
    let host = report.results[0].finding.kernel.clone().unwrap();
    assert!(
        table.contains(&format!("Linux {host}, loopback, "))
            && table.contains("Linux 5.10.0-32-cloud-amd64, loopback, "),
        "{table}"
    );
    let svg = zcsafe_bench::render::svg(&merged);
    assert!(
        svg.contains(&format!("{host}, 5.10.0-32-cloud-amd64")),
        "title names both"
    );
}

#[test]
fn veth_bench_has_the_results_shape() {
    let t = Transport::Veth;
    if skip("veth_bench_has_the_results_shape", &t) {
        return;
    }
    let report = zcsafe_bench::run(&tiny(t)).unwrap();
    check_shape(&report);
}

/// In every block, left-aligned columns start and right-aligned (numeric) columns end at
/// their title's char offsets on every row (chars, not bytes: `×`, `±`).
fn columns_line_up(table: &str) {
    let lines: Vec<Vec<char>> = table.lines().map(|l| l.chars().collect()).collect();
    for (h, header) in lines.iter().enumerate() {
        let text: String = header.iter().collect();
        if !text.starts_with("  policy ") {
            continue;
        }
        let at = |title: &str| text[..text.find(title).unwrap()].chars().count();
        let starts = [at("local"), at("notes")];
        let ends: Vec<usize> = ["GiB/s", "×copy", "CPU s/GiB", "peak held"]
            .iter()
            .map(|t| at(t) + t.chars().count() - 1)
            .collect();
        let rows = lines[h + 1..].iter().take_while(|l| !l.is_empty());
        for row in rows {
            let s: String = row.iter().collect();
            assert_eq!(row[starts[0] - 1], ' ', "{s:?}");
            assert_ne!(row[starts[0]], ' ', "{s:?}");
            if row.len() > starts[1] {
                assert_eq!(row[starts[1] - 1], ' ', "{s:?}");
            }
            for &e in &ends {
                assert_ne!(row[e], ' ', "column ending at {e} in {s:?}");
                assert!(
                    row.get(e + 1).is_none_or(|c| *c == ' '),
                    "column ending at {e} in {s:?}"
                );
            }
        }
    }
}
