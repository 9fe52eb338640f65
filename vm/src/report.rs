//! Matrix reports: `matrix.json` (the data), `matrix.md` (for humans and PRs), a
//! self-contained `matrix.html` (click a cell for its evidence, trace and rerun command),
//! and `merge` of per-kernel JSON files (one CI job per kernel).

use crate::error::{IoContext, Result, VmError};
use crate::matrix::{Cell, KernelRun, Matrix, MATRIX_FORMAT};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use zcsafe_policy::junit;

/// Writes the three files into `dir` (created if needed); returns their paths.
pub fn write_all(m: &Matrix, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).at(dir)?;
    let files = [
        (
            "matrix.json",
            serde_json::to_string_pretty(m).expect("serialisable") + "\n",
        ),
        ("matrix.md", markdown(m)),
        ("matrix.html", html(m)),
    ];
    let mut out = Vec::new();
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, text).at(&p)?;
        out.push(p);
    }
    Ok(out)
}

/// The matrix as a JUnit XML report: one test case per cell, named
/// `KERNEL/TRANSPORT/POLICY` after the cell's catalogue kernel name (`6.1`, `host`), with
/// its time and, in a failure, its rerun command (see [`zcsafe_policy::junit`]).
pub fn junit(m: &Matrix) -> String {
    let cases: Vec<junit::Case<'_>> = m
        .results
        .iter()
        .map(|c| junit::Case {
            kernel: &c.kernel_name,
            rerun: Some(&c.rerun),
            seconds: Some(c.seconds),
            known: m.excuse(c),
            ..junit::Case::of(&c.finding)
        })
        .collect();
    junit::write("zcsafe matrix", &cases)
}

/// Reads a `matrix.json`.
pub fn read(path: &Path) -> Result<Matrix> {
    let bytes = std::fs::read(path).at(path)?;
    let m: Matrix = serde_json::from_slice(&bytes).map_err(|e| VmError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if m.format != MATRIX_FORMAT {
        return Err(VmError::Json {
            path: path.to_path_buf(),
            message: format!(
                "matrix format {} (this zcsafe reads {MATRIX_FORMAT})",
                m.format
            ),
        });
    }
    Ok(m)
}

/// Merges matrices: kernels and cells of later files replace equal ones of earlier files
/// (same kernel name, policy, transport, NIC and netem); the wall time is the longest.
pub fn merge(parts: &[Matrix]) -> Matrix {
    let mut kernels: Vec<KernelRun> = Vec::new();
    let mut cells: Vec<Cell> = Vec::new();
    let mut accel = Vec::<String>::new();
    let mut wall = 0f64;
    for m in parts {
        for k in &m.kernels {
            match kernels.iter_mut().find(|x| x.name == k.name) {
                Some(x) => *x = k.clone(),
                None => kernels.push(k.clone()),
            }
        }
        for c in &m.results {
            let key = |c: &Cell| {
                (
                    c.kernel_name.clone(),
                    c.finding.policy.clone(),
                    c.finding.transport.clone(),
                    c.nic.clone(),
                    c.netem.clone(),
                )
            };
            match cells.iter_mut().find(|x| key(x) == key(c)) {
                Some(x) => *x = c.clone(),
                None => cells.push(c.clone()),
            }
        }
        if !accel.contains(&m.accel) {
            accel.push(m.accel.clone());
        }
        wall = wall.max(m.wall_seconds);
    }
    let kpos = |n: &str| {
        kernels
            .iter()
            .position(|k| k.name == n)
            .unwrap_or(usize::MAX)
    };
    cells.sort_by_key(|c| kpos(&c.kernel_name));
    Matrix {
        format: MATRIX_FORMAT,
        results: cells,
        kernels,
        accel: accel.join("+"),
        wall_seconds: wall,
        // Known differences were matched per part; the merged cells are matched again
        // (`matrix merge --known`), since a later part may have replaced an excused cell.
        known: Default::default(),
    }
}

fn ordered<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for i in items {
        if !v.iter().any(|x| x == i) {
            v.push(i.to_string());
        }
    }
    v
}

/// Grid axes: transports (one table each), policies (rows), kernels (columns).
fn axes(m: &Matrix) -> (Vec<String>, Vec<String>, Vec<String>) {
    let transports = ordered(m.results.iter().map(|c| c.finding.transport.as_str()));
    let policies = ordered(m.results.iter().map(|c| c.finding.policy.as_str()));
    let kernels = ordered(
        m.kernels
            .iter()
            .map(|k| k.name.as_str())
            .chain(m.results.iter().map(|c| c.kernel_name.as_str())),
    );
    (transports, policies, kernels)
}

fn index(m: &Matrix) -> BTreeMap<(String, String, String), usize> {
    m.results
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                (
                    c.finding.transport.clone(),
                    c.finding.policy.clone(),
                    c.kernel_name.clone(),
                ),
                i,
            )
        })
        .collect()
}

fn cell_text(m: &Matrix, c: &Cell) -> String {
    let f = &c.finding;
    match mark(m, c) {
        "✓" if f.flaky() => format!("{} ✓ (flaky: {})", f.verdict, retries(f)),
        "✓" => format!("{} ✓", f.verdict),
        m => format!("**{} {m}** (expected {})", f.verdict, f.expected),
    }
}

/// `1 retry`, `2 retries`: the reruns of a cell (`--retries`).
fn retries(f: &zcsafe_policy::Finding) -> String {
    match f.evidence.attempts.len().saturating_sub(1) {
        1 => "1 retry".into(),
        n => format!("{n} retries"),
    }
}

/// ✓ as expected, ? inconclusive, ≈ a known difference (`--known`), ✗ a contradiction
/// or an error.
fn mark(m: &Matrix, c: &Cell) -> &'static str {
    let f = &c.finding;
    if f.agrees() {
        "✓"
    } else if m.excuse(c).is_some() {
        "≈"
    } else if f.verdict == zcsafe_policy::Verdict::Inconclusive {
        "?"
    } else {
        "✗"
    }
}

/// `N contradicting the expectation` and, when there are any, `, M inconclusive`: cells
/// whose run never exercised the hazard are neither as expected nor a contradiction.
fn tally(m: &Matrix) -> String {
    let bad = m
        .results
        .iter()
        .filter(|c| {
            !c.finding.agrees()
                && c.finding.verdict != zcsafe_policy::Verdict::Inconclusive
                && m.excuse(c).is_none()
        })
        .count();
    let known = m.known.excused.len();
    let unsure = m
        .results
        .iter()
        .filter(|c| c.finding.verdict == zcsafe_policy::Verdict::Inconclusive)
        .count();
    let flaky = m.results.iter().filter(|c| c.finding.flaky()).count();
    let mut s = format!("{bad} contradicting the expectation");
    if flaky > 0 {
        let _ = write!(s, ", {flaky} agreed after retry (flaky)");
    }
    if known > 0 {
        let _ = write!(s, ", {known} known difference(s)");
    }
    if unsure > 0 {
        let _ = write!(s, ", {unsure} inconclusive");
    }
    s
}

fn release_of<'a>(m: &'a Matrix, name: &str) -> &'a str {
    m.kernels
        .iter()
        .find(|k| k.name == name)
        .map(|k| k.release.as_str())
        .unwrap_or("")
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

pub fn markdown(m: &Matrix) -> String {
    let (transports, policies, kernels) = axes(m);
    let idx = index(m);
    let mut s = String::new();
    let _ = writeln!(s, "# zcsafe kernel matrix\n");
    let _ = writeln!(
        s,
        "{} cells, {}; {} kernels; accelerator {}; wall time {:.0} s.\n",
        m.results.len(),
        tally(m),
        m.kernels.len(),
        m.accel,
        m.wall_seconds
    );
    let _ = writeln!(s, "| kernel | release | Debian version | boot to userspace (median s) | note |\n|---|---|---|---|---|");
    for k in &m.kernels {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            k.name,
            k.release,
            k.version,
            median(&k.boot_seconds)
                .map(|b| format!("{b:.1}"))
                .unwrap_or_default(),
            k.error
                .as_deref()
                .unwrap_or("")
                .replace('\n', " ")
                .replace('|', "\\|")
        );
    }
    for t in &transports {
        let _ = writeln!(s, "\n## transport `{t}`\n");
        let _ = write!(s, "| policy |");
        for k in &kernels {
            let _ = write!(s, " {k} |");
        }
        let _ = write!(s, "\n|---|");
        for _ in &kernels {
            let _ = write!(s, "---|");
        }
        let _ = writeln!(s);
        for p in &policies {
            let _ = write!(s, "| {p} |");
            for k in &kernels {
                let text = idx
                    .get(&(t.clone(), p.clone(), k.clone()))
                    .map(|&i| cell_text(m, &m.results[i]))
                    .unwrap_or_default();
                let _ = write!(s, " {text} |");
            }
            let _ = writeln!(s);
        }
    }
    let failing: Vec<&Cell> = m
        .results
        .iter()
        .filter(|c| !c.finding.agrees() || c.finding.flaky())
        .collect();
    if !failing.is_empty() {
        let _ = writeln!(
            s,
            "\n## Contradictions, errors, inconclusive and flaky cells\n"
        );
        for c in failing {
            let _ = writeln!(
                s,
                "- **{} / {} / {}** ({}): {} — expected {} ({}). {}\n  rerun: `{}`",
                c.kernel_name,
                c.finding.transport,
                c.finding.policy,
                release_of(m, &c.kernel_name),
                c.finding.verdict,
                c.finding.expected,
                c.finding.expected_why,
                c.finding.evidence.detail.replace('\n', " "),
                c.rerun
            );
            if let Some(k) = m.excuse(c) {
                let _ = writeln!(s, "  known difference ({}): {}", m.known.at(k), k.reason);
            }
        }
    }
    let stale = m.known.stale_lines();
    if !stale.is_empty() {
        let _ = writeln!(s, "\n## Stale known differences\n");
        for line in stale {
            let _ = writeln!(s, "- {line}");
        }
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn html(m: &Matrix) -> String {
    let (transports, policies, kernels) = axes(m);
    let idx = index(m);
    let mut s = String::new();
    s += r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>zcsafe kernel matrix</title><style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #bbb;padding:4px 8px;text-align:center}
th{background:#f0f0f0}
td.v{cursor:pointer;min-width:6em}
td.safe{background:#c8efc8}td.inconclusive{background:#e4e4f4}td.corrupt{background:#f6b8b8}td.stuck{background:#f8d9a0}
td.unsupported{background:#ddd}td.error{background:#d8c4f0}
td.bad{outline:3px solid #c00;outline-offset:-3px;font-weight:bold}
td.sel{box-shadow:inset 0 0 0 2px #000}
#detail{position:sticky;bottom:0;background:#fafafa;border-top:2px solid #888;padding:.5em 1em;max-height:50vh;overflow:auto}
pre{white-space:pre-wrap;background:#fff;border:1px solid #ddd;padding:.5em;font-size:12px}
code{background:#eee;padding:1px 4px}
</style></head><body><h1>zcsafe kernel matrix</h1>
"#;
    let _ = writeln!(
        s,
        "<p>{} cells, <b>{}</b>; accelerator {}; wall time {:.0} s. ✓ = as expected, ✗ = contradiction (outlined), ? = inconclusive (the run never exercised the hazard). Click a cell.</p>",
        m.results.len(),
        esc(&tally(m)),
        esc(&m.accel),
        m.wall_seconds
    );
    s += "<table><tr><th>kernel</th><th>release</th><th>Debian version</th><th>boot to userspace (median s)</th><th>note</th></tr>\n";
    for k in &m.kernels {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&k.name),
            esc(&k.release),
            esc(&k.version),
            median(&k.boot_seconds)
                .map(|b| format!("{b:.1}"))
                .unwrap_or_default(),
            esc(k.error.as_deref().unwrap_or(""))
        );
    }
    s += "</table>\n";
    for t in &transports {
        let _ = writeln!(
            s,
            "<h2>transport <code>{}</code></h2><table><tr><th>policy</th>",
            esc(t)
        );
        for k in &kernels {
            let _ = write!(
                s,
                "<th>{}<br><small>{}</small></th>",
                esc(k),
                esc(release_of(m, k))
            );
        }
        s += "</tr>\n";
        for p in &policies {
            let _ = write!(s, "<tr><th>{}</th>", esc(p));
            for k in &kernels {
                match idx.get(&(t.clone(), p.clone(), k.clone())) {
                    Some(&i) => {
                        let c = &m.results[i];
                        let ok = c.finding.agrees() || m.excuse(c).is_some();
                        let _ = write!(
                            s,
                            "<td class=\"v {}{}\" data-i=\"{i}\" title=\"expected {}\">{} {}</td>",
                            c.finding.verdict,
                            if ok { "" } else { " bad" },
                            c.finding.expected,
                            c.finding.verdict,
                            mark(m, c)
                        );
                    }
                    None => s += "<td></td>",
                }
            }
            s += "</tr>\n";
        }
        s += "</table>\n";
    }
    // The data, embedded: `<` escaped so no string can close the script element.
    let data = serde_json::to_string(&m.results)
        .expect("serialisable")
        .replace('<', "\\u003c");
    s +=
        "<div id=\"detail\"><i>Click a cell for its evidence, trace and rerun command.</i></div>\n";
    let _ = writeln!(
        s,
        "<script id=\"data\" type=\"application/json\">{data}</script>"
    );
    s += r#"<script>
const cells = JSON.parse(document.getElementById('data').textContent);
const esc = s => String(s ?? '').replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
function show(td) {
  document.querySelectorAll('td.sel').forEach(e => e.classList.remove('sel'));
  td.classList.add('sel');
  const c = cells[+td.dataset.i];
  const ev = c.evidence || {};
  let h = `<h3>${esc(c.kernel_name)} (${esc(c.kernel)}) · ${esc(c.transport)} · ${esc(c.policy)}</h3>`;
  h += `<p><b>${esc(c.verdict)}</b>, expected <b>${esc(c.expected)}</b>: ${esc(c.expected_why)}`;
  if (c.predicted) h += ` · model predicts <b>${esc(c.predicted)}</b>`;
  h += `</p><p>${esc(ev.detail)}</p>`;
  h += `<p>rerun: <code>${esc(c.rerun)}</code> · ${(+c.seconds).toFixed(1)} s`;
  if (c.nic) h += ` · NIC ${esc(c.nic)}`;
  if (c.netem) h += ` · netem ${esc(c.netem)}`;
  h += `</p>`;
  if (ev.counts && Object.keys(ev.counts).length) h += `<h4>counts</h4><pre>${esc(JSON.stringify(ev.counts, null, 1))}</pre>`;
  if (ev.trace) {
    h += `<h4>trace: ${esc(ev.trace.summary)}</h4><pre>`;
    for (const st of ev.trace.steps || []) h += `${esc(st.actor.padEnd(9))} ${esc(st.action)}${st.note ? '  — ' + esc(st.note) : ''}\n`;
    h += `</pre>`;
  }
  if (c.console_tail) h += `<h4>console tail</h4><pre>${esc(c.console_tail)}</pre>`;
  document.getElementById('detail').innerHTML = h;
}
document.querySelectorAll('td.v').forEach(td => td.addEventListener('click', () => show(td)));
</script></body></html>
"#;
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::testing::{cell, matrix};
    use crate::matrix::GuestTransport::{Loopback, Remote};
    use zcsafe_policy::Verdict::{Corrupt, Error, Safe, Unsupported};

    #[test]
    fn junit_has_a_case_per_cell_named_by_kernel_with_the_rerun_of_failures() {
        let mut slow = cell("5.10", "copy", Loopback, Safe, Safe);
        slow.seconds = 2.5;
        let m = matrix(vec![
            slow,
            cell("5.10", "zc-naive", Loopback, Safe, Corrupt),
            cell("6.1", "copy", Remote, Unsupported, Unsupported),
            cell("6.1", "zc-naive", Remote, Error, Corrupt),
        ]);
        let xml = junit(&m);
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let suites: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testsuite"))
            .map(|n| ["name", "tests", "failures", "skipped"].map(|a| n.attribute(a).unwrap()))
            .collect();
        assert_eq!(suites, [["5.10", "2", "1", "0"], ["6.1", "2", "0", "2"]]);
        let cases: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        let names: Vec<_> = cases.iter().map(|c| c.attribute("name").unwrap()).collect();
        assert_eq!(
            names,
            [
                "5.10/loopback/copy",
                "5.10/loopback/zc-naive",
                "6.1/remote/copy",
                "6.1/remote/zc-naive"
            ]
        );
        assert_eq!(cases[0].attribute("time"), Some("2.500"));
        assert_eq!(cases[0].attribute("classname"), Some("zcsafe.vm"));
        let failure = cases[1].first_element_child().unwrap();
        assert_eq!(failure.tag_name().name(), "failure");
        assert!(failure
            .text()
            .unwrap()
            .ends_with(&format!("rerun: {}", m.results[1].rerun)));
    }

    #[test]
    fn a_known_difference_is_reported_with_its_reason_and_a_stale_entry_is_listed() {
        let mut m = matrix(vec![
            cell("6.1", "zc-naive", Loopback, Safe, Corrupt),
            cell("5.10", "zc-naive", Loopback, Safe, Corrupt),
        ]);
        assert_eq!(m.exit_code(), 1);
        let file = zcsafe_policy::KnownFile::parse(
            Path::new("known.toml"),
            r#"
[[known]]
kernel = "6.1"
policy = "zc-naive"
transport = "loopback"
verdict = "safe"
reason = "6.1 copies small sends"

[[known]]
kernel = "5.10"
policy = "copy"
transport = "loopback"
verdict = "corrupt"
reason = "was flaky"
"#,
        )
        .unwrap();
        m.apply_known(&file);
        assert_eq!(m.exit_code(), 1, "5.10 is not excused");
        m.results.pop();
        m.apply_known(&file);
        assert_eq!(m.exit_code(), 0, "the one contradiction left is known");
        let md = markdown(&m);
        assert!(
            md.contains("1 cells, 0 contradicting the expectation, 1 known difference(s)"),
            "{md}"
        );
        assert!(md.contains("**safe ≈** (expected corrupt)"), "{md}");
        assert!(
            md.contains("known difference (known.toml:2): 6.1 copies small sends"),
            "{md}"
        );
        assert!(md.contains("## Stale known differences\n\n- STALE known difference known.toml:9: copy / loopback on 5.10"), "{md}");
        let doc = junit(&m);
        assert!(doc.contains("skipped=\"1\""), "{doc}");
        assert!(
            doc.contains("known difference: 6.1 copies small sends"),
            "{doc}"
        );
        // The JSON keeps both, and reads back.
        let json = serde_json::to_string(&m).unwrap();
        let back: Matrix = serde_json::from_str(&json).unwrap();
        assert_eq!(back.known, m.known);
        assert_eq!(back.exit_code(), 0);
    }
}
