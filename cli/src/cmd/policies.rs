//! `zcsafe policies`: the catalogue.

use anyhow::Result;
use serde::Serialize;
use std::process::ExitCode;
use zcsafe_policy::{Profile, Table, TransportClass, Verdict};

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
        let mut table = Table::new(["policy", "local", "remote", "what it does"]);
        for r in &rows {
            table.row([
                r.name.to_string(),
                r.expected_local.to_string(),
                r.expected_remote.to_string(),
                r.summary.to_string(),
            ]);
        }
        print!("{table}");
        println!(
            "\n(local/remote: the expected verdict on a classic kernel; `zcsafe check` judges it)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
