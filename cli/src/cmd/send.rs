//! `zcsafe send -p POLICY --to HOST:PORT`: one catalogue policy's stream, sender side only,
//! to a receiver anywhere — `zcsafe receive` on another host (a real NIC between two
//! machines), or the verifying receiver of `run --external`, which is how a catalogue policy
//! runs under the sanitizer as a program of its own (`run --external 'zcsafe send -p P --to
//! {host}:{port}' --sanitize`). Whether the bytes arrived intact only the receiver knows.

use anyhow::{bail, Context, Result};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;
use zcsafe_kernel::default_geometry;
use zcsafe_kernel::send::{send_to, SendOptions};

/// Where `run --external` puts the receiver's seed.
const SEED_ENV: &str = "ZCSAFE_SEED";

#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 the policy sent its whole stream (whether it arrived \
intact, the receiver says), 2 a usage error or no connection, 3 the policy could not finish \
(stuck, failed, or unsupported on this kernel)."
)]
pub struct Args {
    /// The policy (`zcsafe policies` lists them).
    #[arg(long, short = 'p', value_name = "NAME")]
    policy: String,
    /// The receiver, HOST:PORT (`zcsafe receive --listen`, or `{host}:{port}` under
    /// `run --external`).
    #[arg(long, value_name = "HOST:PORT")]
    to: String,
    /// The stream pattern's seed (the receiver's); default $ZCSAFE_SEED, else 0.
    #[arg(long)]
    seed: Option<u64>,
    /// Stream length in bytes, a multiple of the 64 KiB chunk (default 1 MiB).
    #[arg(long, value_name = "N")]
    bytes: Option<u64>,
    /// Seconds any blocking operation may wait (the whole stream: six times that).
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
    /// Print one JSON object instead of the line on stderr.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let entry = super::select_policies(std::slice::from_ref(&args.policy))?
        .into_iter()
        .next()
        .context("no policy named")?;
    if entry.pipeline.socket != zcsafe_policy::SocketKind::Tcp {
        // `zcsafe send` connects a TCP stream to `zcsafe receive`; a UDP policy needs
        // the datagram receiver `zcsafe run` sets up.
        anyhow::bail!(
            "{} sends UDP datagrams: zcsafe send and receive speak TCP; use zcsafe run -p {}",
            entry.name,
            entry.name
        );
    }
    let to = resolve(&args.to)?;
    let seed = match args.seed {
        Some(s) => s,
        None => match std::env::var(SEED_ENV) {
            Ok(v) => v
                .parse()
                .with_context(|| format!("{SEED_ENV}={v:?} is not a number"))?,
            Err(_) => 0,
        },
    };
    let mut geometry = default_geometry();
    if let Some(b) = args.bytes {
        geometry.stream = b;
    }
    geometry.validate().with_context(|| {
        format!(
            "--bytes {} must be a positive multiple of {}",
            geometry.stream, geometry.chunk
        )
    })?;
    let policy = entry
        .build(&geometry)
        .map_err(|e| anyhow::anyhow!("{} cannot use this geometry: {e}", entry.name))?;
    if entry.needs_app_ack && !args.json {
        eprintln!(
            "zcsafe send: {} waits for the receiver's application acknowledgements: give the \
             receiver --app-ack (zcsafe receive --app-ack, run --external … --app-ack)",
            entry.name
        );
    }
    let timeout = Duration::from_secs(args.timeout.max(1));
    let opts = SendOptions {
        geometry,
        seed,
        op_timeout: timeout,
        run_timeout: timeout * 6,
    };
    let r = send_to(policy, to, &opts)?;
    if args.json {
        let v = serde_json::json!({
            "policy": entry.name,
            "to": to.to_string(),
            "seed": seed,
            "stream": r.stream,
            "ops": r.ops,
            "finished": r.ending.is_none(),
            "verdict": r.ending.as_ref().map(|(v, _)| v.to_string()),
            "detail": r.ending.as_ref().map(|(_, d)| d.clone()),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        match &r.ending {
            None => eprintln!(
                "zcsafe send: {} sent its {} byte stream to {to} in {} calls (seed {seed})",
                entry.name, r.stream, r.ops
            ),
            Some((v, why)) => eprintln!("zcsafe send: {} ended {v}: {why}", entry.name),
        }
    }
    Ok(ExitCode::from(match r.ending {
        None => 0,
        Some(_) => 3,
    }))
}

/// `HOST:PORT` → the first address it names.
fn resolve(to: &str) -> Result<SocketAddr> {
    let mut addrs = to
        .to_socket_addrs()
        .with_context(|| format!("--to {to:?}: give HOST:PORT, e.g. 192.0.2.7:7000"))?;
    match addrs.next() {
        Some(a) => Ok(a),
        None => bail!("--to {to:?} names no address"),
    }
}
