//! `zcsafe receive`: the verifying receiver alone, for a sender on another host.
//! Exit 0 when the stream arrived intact, 1 when corrupted, 2 when the run failed.

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use zcsafe_kernel::{receiver, ReaderSpeed, ReceiverOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on, e.g. 0.0.0.0:7000.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// Exact stream length expected (a short or longer stream is a failure).
    #[arg(long, value_name = "N")]
    bytes: Option<u64>,
    /// Stream pattern seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// fast, slow, crawl, or PAUSE_MS,SLICE_BYTES,INTERVAL_MS.
    #[arg(long, default_value = "slow")]
    reader: String,
    /// Write 8-byte little-endian consumed counts back on the connection.
    #[arg(long)]
    app_ack: bool,
    /// Seconds to wait for the connection, and for data once connected.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let opts = ReceiverOptions {
        seed: args.seed,
        expect: args.bytes,
        reader: args.reader.parse::<ReaderSpeed>()?,
        app_ack: args.app_ack,
        idle_timeout: Duration::from_secs(args.timeout),
        accept_timeout: Duration::from_secs(args.timeout),
        // The sender is on another host: only the receiver's side of `held` is sampled.
        ..Default::default()
    };
    let l = receiver::listen(args.listen).context("the receiver cannot listen")?;
    eprintln!(
        "zcsafe receive: listening on {} (reader {})",
        l.local_addr()?,
        opts.reader.label()
    );
    let r = receiver::serve_one(&l, &opts);
    let code = if r.is_corrupt() {
        1
    } else if r.is_intact() && r.bytes > 0 {
        0
    } else {
        2
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else if r.bytes == 0 && !r.is_corrupt() {
        // "0 bytes, all words intact" would read as a pass: nothing was verified.
        eprintln!(
            "zcsafe: error: no byte of the stream arrived on {}, so nothing was verified; \
             check that the sender sends the stream pattern (seed {}) to this address",
            args.listen, args.seed
        );
    } else {
        println!("{}", r.summary());
    }
    Ok(ExitCode::from(code))
}
