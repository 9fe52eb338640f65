//! The kernel × policy × transport matrix: plan the VMs, run them in parallel, turn what
//! each guest printed (or failed to print) into cells.
//!
//! One module per noun: [`Options`] (what to run, checked once), [`GuestTransport`] (the
//! transports a guest offers), the cells and the [`Matrix`] they make up, the findings
//! and expectations a cell shows, preparing kernels and images, the unit runner (one VM,
//! its guest's events collected into cells), the host runner (`--kernels host`), and the
//! `--external` program. This file is the plan that ties them together: [`run`].

mod cell;
mod external;
mod findings;
mod host;
mod options;
mod prepare;
mod transport;
mod unit;

#[cfg(test)]
pub(crate) use cell::testing;
pub use cell::{Cell, KernelRun, Matrix, Progress, MATRIX_FORMAT};
pub use external::{external_command, external_program, guest_commands, EXTERNAL, GUEST_BIN_DIR};
pub use findings::parse_findings;
pub use options::{default_jobs, AccelChoice, Options, UserKernel, DEFAULT_COMMAND};
pub use prepare::probe_kvm;
pub use transport::{GuestTransport, GUEST_TRANSPORTS};

use crate::error::{Result, VmError};
use cell::error_cell;
use findings::align_error_expectations;
use host::{host_kernel_run, run_host_cell};
use prepare::{choose_accel, prepare};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;
use unit::{run_unit, Unit};

/// Runs the matrix. `progress` is called on the calling thread as cells finish.
pub fn run(opts: &Options, mut progress: impl FnMut(&Progress)) -> Result<Matrix> {
    opts.validate()?;
    let transports = opts.transports.clone();
    crate::process::install_interrupt_handler();
    let started = Instant::now();
    let include_host = opts.kernels.split(',').any(|t| t.trim() == "host");
    let (mut kernels, images) = prepare(opts, &mut progress)?;

    let mut machine = opts.machine.clone();
    machine.accel = choose_accel(opts, &images);

    let total =
        (kernels.len() + usize::from(include_host)) * opts.policies.len() * transports.len();
    let mut finished = Finished {
        cells: Vec::new(),
        total,
        progress: &mut progress,
    };
    let mut units = Vec::new();
    for (i, img) in images.iter().enumerate() {
        for &t in &transports {
            if img.is_some() {
                units.push(Unit {
                    kernel: i,
                    transport: t,
                });
            } else {
                for p in &opts.policies {
                    let detail = format!(
                        "kernel not available: {}",
                        kernels[i].error.clone().unwrap_or_default()
                    );
                    finished.record(error_cell(opts, &kernels[i], p, t, detail, None));
                }
            }
        }
    }

    // Workers boot VMs; this thread reports progress.
    let queue = Arc::new(Mutex::new(
        units.into_iter().collect::<std::collections::VecDeque<_>>(),
    ));
    let (tx, rx) = mpsc::channel::<Msg>();
    let snapshot = kernels.clone();
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.min(queue.lock().unwrap().len().max(1)) {
            let queue = Arc::clone(&queue);
            let tx = tx.clone();
            let images = &images;
            let kernels = &snapshot;
            let machine = &machine;
            s.spawn(move || loop {
                let Some(u) = queue.lock().unwrap().pop_front() else {
                    break;
                };
                if crate::process::interrupted() {
                    break;
                }
                let (k, img) = images[u.kernel]
                    .as_ref()
                    .expect("units only for prepared kernels");
                run_unit(opts, machine, &kernels[u.kernel], k, img, &u, &tx);
            });
        }
        drop(tx);
        for msg in rx {
            match msg {
                Msg::Cell(c) => finished.record(*c),
                Msg::Boot(name, secs) => {
                    if let Some(k) = kernels.iter_mut().find(|k| k.name == name) {
                        k.boot_seconds.push(secs);
                    }
                }
            }
        }
    });
    if crate::process::interrupted() {
        return Err(VmError::Interrupted);
    }

    if include_host {
        let k = host_kernel_run();
        for &t in &transports {
            for p in &opts.policies {
                finished.record(run_host_cell(opts, &k, p, t));
            }
        }
        kernels.push(k);
    }

    let mut cells = finished.cells;
    align_error_expectations(&mut cells);
    sort_cells(&mut cells, &kernels, &transports, &opts.policies);
    Ok(Matrix {
        format: MATRIX_FORMAT,
        results: cells,
        kernels,
        accel: machine.accel.name().into(),
        wall_seconds: started.elapsed().as_secs_f64(),
        known: Default::default(),
    })
}

/// The cells that ended so far; each is reported to `progress` as it is recorded, so the
/// count in the progress line is the number of cells kept.
struct Finished<'p, P: FnMut(&Progress)> {
    cells: Vec<Cell>,
    total: usize,
    progress: &'p mut P,
}

impl<P: FnMut(&Progress)> Finished<'_, P> {
    fn record(&mut self, cell: Cell) {
        (self.progress)(&Progress::Cell {
            done: self.cells.len() + 1,
            total: self.total,
            cell: Box::new(cell.clone()),
        });
        self.cells.push(cell);
    }
}

/// What the VM workers tell the reporting thread.
enum Msg {
    Cell(Box<Cell>),
    Boot(String, f64),
}

/// Catalogue order of kernels, then the order of the options' transports and policies.
fn sort_cells(
    cells: &mut [Cell],
    kernels: &[KernelRun],
    transports: &[GuestTransport],
    policies: &[String],
) {
    cells.sort_by_key(|c| {
        (
            position(kernels.iter().map(|k| k.name.as_str()), &c.kernel_name),
            position(transports.iter().map(|t| t.name()), &c.finding.transport),
            position(policies.iter().map(String::as_str), &c.finding.policy),
        )
    });
}

/// Where `x` is in `order`; after everything when absent.
fn position<'a>(mut order: impl Iterator<Item = &'a str>, x: &str) -> usize {
    order.position(|y| y == x).unwrap_or(usize::MAX)
}
