//! `zcsafe fixtures [--check]`: the fixtures — cases from the literature and bugs public
//! projects shipped — with their source and expected verdict per backend; `--check`
//! replays each on every backend that has an expectation (the model always; the
//! simulator and the host kernel where available, skipping with a counted reason).

use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::process::ExitCode;
use zcsafe_fixtures::check::check;
use zcsafe_fixtures::{Backend, Manifest, Status};
use zcsafe_policy::Table;

#[derive(clap::Args)]
pub struct Args {
    /// Run every fixture on its backends and compare with the expected verdicts.
    #[arg(long)]
    check: bool,
    /// Backends to check (comma list of model, sim, kernel; default all).
    #[arg(long, value_delimiter = ',', value_name = "BACKEND")]
    backend: Vec<String>,
    /// Only fixtures whose name contains this.
    #[arg(long, value_name = "TEXT")]
    only: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// The manifest (default: fixtures/fixtures.toml of the source tree zcsafe was built from).
    #[arg(long, value_name = "FILE")]
    manifest: Option<std::path::PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let path = args.manifest.clone().unwrap_or_else(Manifest::path);
    let m = Manifest::load(&path)?;
    let backends: Vec<Backend> = if args.backend.is_empty() {
        Backend::ALL.to_vec()
    } else {
        args.backend
            .iter()
            .map(|b| b.parse::<Backend>())
            .collect::<Result<_, _>>()?
    };
    let fixtures: Vec<_> = m
        .fixtures
        .iter()
        .filter(|f| args.only.as_deref().is_none_or(|o| f.name.contains(o)))
        .collect();
    if fixtures.is_empty() {
        bail!(
            "no fixture in {} matches --only {:?}; `zcsafe fixtures` lists them",
            path.display(),
            args.only.as_deref().unwrap_or("")
        );
    }
    if !args.check {
        if args.json {
            let list: Vec<_> = fixtures
                .iter()
                .map(|f| {
                    serde_json::json!({"name": f.name, "title": f.title, "source": f.source,
                        "policy": f.policy, "fixed": f.fixed, "transport": f.transport,
                        "kernel_transport": f.kernel_transport, "trace": f.trace,
                        "expected": f.expected, "reproduce": f.reproduce})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!("{} fixtures in {}\n", fixtures.len(), path.display());
        // Name and title, then the details under the title.
        let mut layout = Table::new(["", ""]);
        for f in &fixtures {
            layout.row([f.name.as_str()]);
        }
        let widths = layout.widths();
        for f in &fixtures {
            let exp: Vec<String> = f.expected.iter().map(|(b, v)| format!("{b}={v}")).collect();
            let fixed = f
                .fixed
                .as_ref()
                .map(|x| format!(" (fixed: {x})"))
                .unwrap_or_default();
            for cells in [
                [f.name.clone(), f.title.clone()],
                [
                    String::new(),
                    format!(
                        "policy {} on {}{fixed}; expected {}",
                        f.policy,
                        f.transport,
                        exp.join(", ")
                    ),
                ],
                [String::new(), format!("source: {}", f.source)],
                [String::new(), format!("trace: fixtures/{}", f.trace)],
            ] {
                println!("{}", layout.line(&widths, &cells));
            }
            println!();
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Lines are printed as each fixture finishes (kernel checks take a while), so the
    // widths come from the widest cell each column can hold, not from the results.
    let header = ["", "fixture", "backend", "expected", "got", "why"];
    let mut sizing = Table::new(header);
    for f in &fixtures {
        sizing.row(["PASS", f.name.as_str(), "", "unsupported", "unsupported"]);
    }
    for b in Backend::ALL {
        sizing.row(["", "", b.name()]);
    }
    let widths = sizing.widths();
    if !args.json {
        println!("{}", sizing.line(&widths, &header));
    }
    let mut all = Vec::new();
    for f in &fixtures {
        let results = check(&path, &m, f, &backends);
        if !args.json {
            for r in &results {
                let got = r.got.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
                let (word, why) = match &r.status {
                    Status::Pass => ("PASS", String::new()),
                    Status::Fail(w) => ("FAIL", w.clone()),
                    Status::Skip(w) => ("SKIP", w.clone()),
                };
                let cells = [
                    word.to_string(),
                    r.fixture.clone(),
                    r.backend.to_string(),
                    r.expected.to_string(),
                    got,
                    why,
                ];
                println!("{}", sizing.line(&widths, &cells));
            }
        }
        all.extend(results);
    }
    let count = |p: fn(&Status) -> bool| all.iter().filter(|r| p(&r.status)).count();
    let (pass, fail, skip) = (
        count(|s| *s == Status::Pass),
        count(|s| matches!(s, Status::Fail(_))),
        count(|s| matches!(s, Status::Skip(_))),
    );
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "passed": pass, "failed": fail, "skipped": skip, "results": all}))?
        );
    } else {
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for r in &all {
            if let Status::Skip(w) = &r.status {
                *reasons.entry(format!("{}: {w}", r.backend)).or_default() += 1;
            }
        }
        println!(
            "\n{} fixture checks: {pass} passed, {fail} failed, {skip} skipped",
            all.len()
        );
        for (why, n) in reasons {
            println!("  skipped {n} × {why}");
        }
    }
    if all.is_empty() {
        bail!(
            "the selected fixtures expect nothing of backend {}: there is nothing to check; \
             every fixture has a model expectation (--backend model)",
            backends
                .iter()
                .map(|b| b.name())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    if pass + fail == 0 {
        // Every check was skipped: nothing was shown, so no "all passed".
        bail!(
            "none of the {} fixture checks ran (all skipped, reasons above); install what \
             they need (root, QEMU) or narrow --backend to one available here, e.g. --backend model",
            all.len()
        );
    }
    Ok(ExitCode::from(u8::from(fail > 0)))
}
