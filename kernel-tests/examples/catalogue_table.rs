//! Prints every catalogue policy's verdict over the given transports (development aid).
//! `cargo run -p zcsafe-kernel --example catalogue_table -- loopback veth`
use zcsafe_kernel::{try_run_policy, RunOptions, Transport};

fn main() {
    let names: Vec<String> = std::env::args().skip(1).collect();
    let transports: Vec<Transport> = if names.is_empty() {
        vec![Transport::Loopback]
    } else {
        names
            .iter()
            .map(|n| Transport::parse(n, 5, 50_000).expect("transport"))
            .collect()
    };
    let repeat = std::env::var("REPEAT")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let only = std::env::var("ONLY").unwrap_or_default();
    for e in zcsafe_policies::catalogue()
        .into_iter()
        .filter(|e| only.is_empty() || e.name.contains(only.as_str()))
    {
        for &t in &transports {
            let opts = RunOptions {
                transport: t,
                repeat,
                ..RunOptions::default()
            };
            let t0 = std::time::Instant::now();
            match try_run_policy(|g| e.build(g), e.name, &opts) {
                Ok(r) => println!(
                    "{:24} {:22} {:11} expected {:9} {:5} ms  {}",
                    e.name,
                    t.label(),
                    r.verdict.name(),
                    e.expect(t.class(), &zcsafe_policy::Profile::classic())
                        .verdict
                        .name(),
                    t0.elapsed().as_millis(),
                    r.evidence.detail
                ),
                Err(err) => println!("{:24} {:22} ERROR {err}", e.name, t.label()),
            }
        }
    }
}
