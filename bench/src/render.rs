//! The bench report for people: a text table and an SVG chart.

use crate::{BenchReport, BenchResult};
use std::fmt::Write;
use zcsafe_policy::{Align, Table};

const GIB: f64 = (1u64 << 30) as f64;

/// `4 KiB`, `1 MiB`.
pub fn size(b: u64) -> String {
    if b >= 1 << 20 && b % (1 << 20) == 0 {
        format!("{} MiB", b >> 20)
    } else if b >= 1 << 10 && b % (1 << 10) == 0 {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}

/// Where a result was measured, as block titles say it: the transport, prefixed with the
/// kernel when one report holds several (`zcsafe bench --kernels`).
fn place_of(report: &BenchReport) -> impl Fn(&BenchResult) -> String {
    let first = report
        .results
        .first()
        .and_then(|r| r.finding.kernel.clone());
    let several = report.results.iter().any(|r| r.finding.kernel != first);
    move |r: &BenchResult| match (several, &r.finding.kernel) {
        (true, Some(k)) => format!("Linux {k}, {}", r.finding.transport),
        _ => r.finding.transport.clone(),
    }
}

/// One block per (kernel,) transport and chunk size; rows in the order the bench ran them.
pub fn table(report: &BenchReport) -> String {
    let mut out = String::new();
    let place = place_of(report);
    let mut groups: Vec<(String, u64)> = Vec::new();
    for r in &report.results {
        let k = (place(r), r.chunk_bytes);
        if !groups.contains(&k) {
            groups.push(k);
        }
    }
    for (t, chunk) in groups {
        let rows: Vec<&BenchResult> = report
            .results
            .iter()
            .filter(|r| place(r) == t && r.chunk_bytes == chunk)
            .collect();
        let rounds = rows.iter().map(|r| r.rounds).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "\n{t}, {} chunks ({rounds} rounds; medians, spread = (max-min)/median, ratios within each round)",
            size(chunk)
        );
        let mut table = Table::new([
            "policy",
            "local",
            "GiB/s",
            "±%",
            "×copy",
            "CPU s/GiB",
            "CPU×copy",
            "×twin",
            "buffer",
            "peak held",
            "notes",
        ])
        .indent("  ");
        for col in 2..=9 {
            table = table.align(col, Align::Right);
        }
        for r in rows {
            let twin = match (r.ratio_to_twin, &r.twin) {
                (Some(x), Some(_)) => format!("{x:.2}"),
                _ => "-".into(),
            };
            let mut notes = Vec::new();
            if r.corrupt_words > 0 {
                notes.push(format!("CORRUPT ({} words)", r.corrupt_words));
            }
            if r.rounds == 0 {
                notes.push(r.finding.evidence.detail.clone());
            }
            if let Some(t) = &r.twin {
                notes.push(format!("twin {t}"));
            }
            if r.rounds > 0 {
                let x = r.exposure;
                notes.push(format!(
                    "exposed {}/{}",
                    x.moments_while_unread(),
                    x.moments()
                ));
            }
            table.row([
                r.finding.policy.clone(),
                if r.expected_safe { "safe" } else { "unsafe" }.to_string(),
                format!("{:.3}", r.throughput_bytes_per_s / GIB),
                format!("{:.0}", r.throughput.spread_pct()),
                format!("{:.2}", r.ratio_to_copy),
                format!("{:.3}", r.cpu_s_per_gib),
                format!("{:.2}", r.cpu_ratio_to_copy),
                twin,
                size(r.buffer_bytes),
                r.peak_pinned_bytes.map_or("-".into(), size),
                notes.join("; "),
            ]);
        }
        out.push_str(&table.render());
    }
    out
}

const COLORS: &[&str] = &[
    "#000000", "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
    "#9a6324", "#808000", "#469990", "#800000", "#000075", "#a9a9a9",
];

/// The kernels a report measured, in order: `6.18.44, 5.10.0-32-cloud-amd64`.
fn kernels(report: &BenchReport) -> String {
    let mut ks: Vec<&str> = Vec::new();
    for k in report
        .results
        .iter()
        .filter_map(|r| r.finding.kernel.as_deref())
    {
        if !ks.contains(&k) {
            ks.push(k);
        }
    }
    if ks.is_empty() {
        "?".into()
    } else {
        ks.join(", ")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Throughput and sender CPU per GiB against chunk size (log scale), one row of two
/// panels per (kernel,) transport, one line per policy (dashed: expected unsafe here).
pub fn svg(report: &BenchReport) -> String {
    let place = place_of(report);
    let mut transports: Vec<String> = Vec::new();
    let mut policies: Vec<String> = Vec::new();
    let mut chunks: Vec<u64> = Vec::new();
    for r in &report.results {
        if !transports.contains(&place(r)) {
            transports.push(place(r));
        }
        if !policies.contains(&r.finding.policy) {
            policies.push(r.finding.policy.clone());
        }
        if !chunks.contains(&r.chunk_bytes) {
            chunks.push(r.chunk_bytes);
        }
    }
    chunks.sort_unstable();
    let (pw, ph) = (420.0, 260.0);
    let (ml, mt, gap) = (60.0, 40.0, 80.0);
    let legend_w = 210.0;
    let width = ml + 2.0 * pw + gap + legend_w + 20.0;
    let height = mt + transports.len() as f64 * (ph + 70.0) + 20.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{ml}" y="20" font-size="14">zcsafe bench: throughput and sender CPU per GiB against chunk size (kernel {})</text>"#,
        esc(&kernels(report))
    );
    let xs = |c: u64, x0: f64| {
        if chunks.len() <= 1 {
            return x0 + pw / 2.0;
        }
        let (lo, hi) = (
            (chunks[0] as f64).log2(),
            (*chunks.last().expect("non-empty") as f64).log2(),
        );
        x0 + ((c as f64).log2() - lo) / (hi - lo) * pw
    };
    for (ti, t) in transports.iter().enumerate() {
        let y0 = mt + ti as f64 * (ph + 70.0) + 20.0;
        let rows: Vec<&BenchResult> = report
            .results
            .iter()
            .filter(|r| &place(r) == t && r.rounds > 0)
            .collect();
        type Metric = fn(&BenchResult) -> f64;
        let panels: [(&str, Metric); 2] = [
            ("throughput, GiB/s", |r| r.throughput_bytes_per_s / GIB),
            ("sender CPU, s per GiB", |r| r.cpu_s_per_gib),
        ];
        for (pi, (title, f)) in panels.iter().enumerate() {
            let x0 = ml + pi as f64 * (pw + gap);
            let ymax = rows.iter().map(|r| f(r)).fold(0.0f64, f64::max).max(1e-9) * 1.08;
            let ys = |v: f64| y0 + ph - v / ymax * ph;
            let _ = writeln!(
                s,
                r##"<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#888"/><text x="{x0}" y="{}" font-size="12">{} — {}</text>"##,
                y0 - 6.0,
                esc(t),
                title
            );
            for k in 0..=4 {
                let v = ymax * k as f64 / 4.0;
                let y = ys(v);
                let _ = writeln!(
                    s,
                    r##"<line x1="{x0}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{v:.2}</text>"##,
                    x0 + pw,
                    x0 - 4.0,
                    y + 4.0
                );
            }
            for &c in &chunks {
                let x = xs(c, x0);
                let _ = writeln!(
                    s,
                    r#"<text x="{x}" y="{}" text-anchor="middle">{}</text>"#,
                    y0 + ph + 14.0,
                    size(c)
                );
            }
            for (pi2, p) in policies.iter().enumerate() {
                let mut pts: Vec<&&BenchResult> =
                    rows.iter().filter(|r| &r.finding.policy == p).collect();
                pts.sort_by_key(|r| r.chunk_bytes);
                if pts.is_empty() {
                    continue;
                }
                let color = COLORS[pi2 % COLORS.len()];
                let dash = if pts[0].expected_safe {
                    ""
                } else {
                    r#" stroke-dasharray="5,3""#
                };
                let path: Vec<String> = pts
                    .iter()
                    .map(|r| format!("{:.1},{:.1}", xs(r.chunk_bytes, x0), ys(f(r))))
                    .collect();
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash} points="{}"><title>{}</title></polyline>"#,
                    path.join(" "),
                    esc(p)
                );
                for r in &pts {
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{color}"><title>{} {}: {:.3}</title></circle>"#,
                        xs(r.chunk_bytes, x0),
                        ys(f(r)),
                        esc(p),
                        size(r.chunk_bytes),
                        f(r)
                    );
                }
            }
        }
    }
    let lx = ml + 2.0 * pw + gap + 20.0;
    for (i, p) in policies.iter().enumerate() {
        let y = mt + 30.0 + i as f64 * 16.0;
        let safe = report
            .results
            .iter()
            .find(|r| &r.finding.policy == p)
            .is_some_and(|r| r.expected_safe);
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="2"{}/><text x="{}" y="{}">{}{}</text>"#,
            lx + 22.0,
            COLORS[i % COLORS.len()],
            if safe {
                ""
            } else {
                r#" stroke-dasharray="5,3""#
            },
            lx + 28.0,
            y + 4.0,
            esc(p),
            if safe { "" } else { " (unsafe here)" }
        );
    }
    s.push_str("</svg>\n");
    s
}
