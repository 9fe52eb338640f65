//! Running the bench: for each transport and chunk size, rounds in which every policy
//! sends one stream, `copy` first; the warm-up rounds size the measured ones.
//!
//! Why a module: this is the only part that touches the kernel (network namespaces,
//! [`measure_stream`]); options, statistics and the report are plain data around it.

use crate::measure::{measure_stream, Failure, Sample, StreamOptions};
use crate::report::summarise;
use crate::{BenchError, BenchOptions, BenchReport, BASELINE};
use zcsafe_kernel::transport::Transport;
use zcsafe_kernel::veth::Network;
use zcsafe_policies::{Entry, Layout};
use zcsafe_policy::Geometry;

/// The geometry a policy runs with at `chunk` bytes, as its [`Layout`] asks: `slots`
/// slots (its declared pipeline's, for [`Layout::Declared`]) and a pipe that holds a chunk (at least the kernel's default 64 KiB, a power of
/// two as `F_SETPIPE_SZ` rounds), or two halves of a one-chunk pipe.
pub fn geometry(entry: &Entry, chunk: u64, slots: u64, stream: u64) -> Geometry {
    let slots = match entry.layout {
        Layout::Slots => slots.max(1),
        Layout::Declared => entry.pipeline.slots,
        Layout::PipeHalves => {
            return Geometry::kernel(chunk, 2 * chunk, chunk.next_power_of_two(), stream)
        }
    };
    Geometry::kernel(
        chunk,
        slots * chunk,
        chunk.max(64 << 10).next_power_of_two(),
        stream,
    )
}

fn round_to_chunk(bytes: u64, chunk: u64) -> u64 {
    (bytes / chunk).max(1) * chunk
}

/// Per policy: its samples in the measured rounds (index = round).
pub(crate) struct Cell {
    pub(crate) entry: Entry,
    pub(crate) samples: Vec<Option<Sample>>,
    pub(crate) errors: Vec<Failure>,
    pub(crate) stream: u64,
    pub(crate) buffer: u64,
}

/// Runs the bench; `on_result` sees each finished transport × chunk group.
pub fn run(opts: &BenchOptions) -> Result<BenchReport, BenchError> {
    let mut entries = opts.policies.clone();
    if !entries.iter().any(|e| e.name == BASELINE) {
        entries.insert(
            0,
            zcsafe_policies::find(BASELINE).expect("copy is catalogued"),
        );
    } else {
        // copy first: every round starts with the baseline.
        entries.sort_by_key(|e| e.name != BASELINE);
    }
    if opts.repeat == 0 {
        return Err(BenchError(
            "repeat must be at least 1: zero rounds would measure nothing".into(),
        ));
    }
    for &c in &opts.chunks {
        if c == 0 || c % 4096 != 0 {
            return Err(BenchError(format!(
                "chunk {c} is not a positive multiple of 4096"
            )));
        }
    }
    let mut report = BenchReport::default();
    for &t in &opts.transports {
        if let Some(why) = zcsafe_kernel::veth::unavailable(&t) {
            return Err(BenchError(why));
        }
        let net = Network::setup(t).map_err(|e| BenchError(e.to_string()))?;
        for &chunk in &opts.chunks {
            let cells = run_group(opts, &entries, &net, t, chunk);
            report.results.extend(summarise(opts, t, chunk, &cells));
        }
    }
    Ok(report)
}

fn log(opts: &BenchOptions, line: impl FnOnce() -> String) {
    if opts.verbose {
        eprintln!("{}", line());
    }
}

fn run_group(
    opts: &BenchOptions,
    entries: &[Entry],
    net: &Network,
    t: Transport,
    chunk: u64,
) -> Vec<Cell> {
    let warm_bytes = round_to_chunk(
        opts.bytes
            .unwrap_or(opts.min_bytes)
            .max(8 * chunk)
            .min(opts.max_bytes.max(8 * chunk)),
        chunk,
    );
    let mut cells: Vec<Cell> = entries
        .iter()
        .map(|e| Cell {
            entry: *e,
            samples: Vec::new(),
            errors: Vec::new(),
            stream: opts.bytes.map_or(warm_bytes, |b| round_to_chunk(b, chunk)),
            buffer: geometry(e, chunk, opts.slots_for(chunk), chunk).buffer,
        })
        .collect();
    let rounds = opts.warmup + opts.repeat;
    for round in 0..rounds {
        let measured = round >= opts.warmup;
        for cell in cells.iter_mut() {
            let g = geometry(&cell.entry, chunk, opts.slots_for(chunk), cell.stream);
            let sample = match cell.entry.build(&g) {
                Err(e) => Err(format!("{} cannot use this geometry: {e}", cell.entry.name)),
                Ok(policy) => {
                    let so = StreamOptions {
                        geometry: g,
                        seed: opts.seed.wrapping_add(round as u64),
                        app_ack: cell.entry.needs_app_ack,
                        op_timeout: opts.op_timeout,
                        run_timeout: opts.op_timeout * 6,
                    };
                    measure_stream(policy, net, &so)
                }
            };
            let sample = match sample {
                Ok(s) => match &s.failure {
                    Some(f) => {
                        cell.errors.push(f.clone());
                        None
                    }
                    None => Some(s),
                },
                Err(e) => {
                    cell.errors.push(Failure::Failed(e));
                    None
                }
            };
            log(opts, || match &sample {
                Some(s) => format!(
                    "{:<10} {:>5} KiB  {:<22} {}{} {:>7.3} GiB/s  cpu {:>6.3} s/GiB  {} MiB",
                    t.label(),
                    chunk >> 10,
                    cell.entry.name,
                    if measured { "" } else { "(warm-up) " },
                    round,
                    s.throughput() / (1u64 << 30) as f64,
                    s.cpu_s_per_gib(),
                    s.bytes >> 20
                ),
                None => format!(
                    "{:<10} {:>5} KiB  {:<22} round {round}: {}",
                    t.label(),
                    chunk >> 10,
                    cell.entry.name,
                    cell.errors.last().map_or("?".into(), Failure::to_string)
                ),
            });
            if !measured {
                // Size the measured streams from the warm-up's speed.
                if let (None, Some(s)) = (opts.bytes, &sample) {
                    let want = s.throughput() * opts.target_run.as_secs_f64();
                    let want = (want as u64).clamp(opts.min_bytes, opts.max_bytes);
                    cell.stream = round_to_chunk(want.max(8 * chunk), chunk);
                }
            } else {
                cell.samples.push(sample);
            }
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_CHUNKS;
    use crate::DEFAULT_POLICIES;

    #[test]
    fn geometries_validate_for_every_default_policy() {
        for name in DEFAULT_POLICIES {
            for &c in DEFAULT_CHUNKS {
                let e = zcsafe_policies::find(name).unwrap();
                let g = geometry(&e, c, 32, 64 * c);
                assert!(e.build(&g).is_ok(), "{name} at {c}");
            }
        }
    }
}
