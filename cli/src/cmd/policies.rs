//! `zcsafe policies`: the catalogue.

use anyhow::Result;
use serde::Serialize;
use std::process::ExitCode;
use zcsafe_policy::{Profile, TransportClass, Verdict};

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    name: &'static str,
    summary: &'static str,
    origin: &'static str,
    /// Expected verdicts on a classic kernel, per transport class.
    expected_local: Verdict,
    expected_remote: Verdict,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let profile = Profile::classic();
    let rows: Vec<Row> = zcsafe_policies::catalogue()
        .into_iter()
        .map(|e| Row {
            name: e.name,
            summary: e.summary,
            origin: e.origin,
            expected_local: e.expect(TransportClass::Local, &profile).verdict,
            expected_remote: e.expect(TransportClass::Remote, &profile).verdict,
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
        println!(
            "{:w$}  {:<8} {:<8} what it does",
            "policy", "local", "remote"
        );
        for r in &rows {
            println!(
                "{:w$}  {:<8} {:<8} {}",
                r.name, r.expected_local, r.expected_remote, r.summary
            );
        }
        println!(
            "\n(local/remote: the expected verdict on a classic kernel; `zcsafe check` judges it)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
