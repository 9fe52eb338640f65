//! What a matrix run produces: cells (a finding plus where and how it was obtained), the
//! per-kernel records, the whole [`Matrix`] as written to `matrix.json`, the progress
//! reports sent while it runs, and the `error` cell every failure path builds.

use super::findings::expectation;
use super::options::Options;
use super::transport::GuestTransport;
use serde::{Deserialize, Serialize};
use zcsafe_policy::{
    exit_status, Evidence, Finding, Known, KnownDifference, KnownFile, Outcomes, Results, Verdict,
};

/// Bumped when `matrix.json` changes incompatibly.
pub const MATRIX_FORMAT: u32 = 1;

/// One cell of the matrix: a [`Finding`] plus where and how it was obtained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    #[serde(flatten)]
    pub finding: Finding,
    /// Catalogue name of the kernel (`5.10`, `sid-rt`, `host`).
    pub kernel_name: String,
    /// Debian package version, when known.
    #[serde(default)]
    pub kernel_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netem: Option<String>,
    /// Time the cell's command ran (guest clock as seen from the host).
    pub seconds: f64,
    /// The command that reruns this cell.
    pub rerun: String,
    /// Console tail, for cells that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_tail: Option<String>,
    /// The command's stdout lines, with [`Options::keep_output`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<String>,
}

/// One kernel's part of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KernelRun {
    pub name: String,
    pub suite: String,
    /// `uname -r`.
    pub release: String,
    pub version: String,
    /// Host seconds from QEMU start to the guest's init, one per VM.
    pub boot_seconds: Vec<f64>,
    /// Why the kernel could not run at all (fetch, initramfs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A whole matrix, as written to `matrix.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    pub format: u32,
    /// The cells; the field is named as in every command's `--json`.
    pub results: Vec<Cell>,
    pub kernels: Vec<KernelRun>,
    pub accel: String,
    pub wall_seconds: f64,
    /// What a `--known` file excused (matched on the cells' catalogue kernel names) and
    /// which of its entries are stale.
    #[serde(default, skip_serializing_if = "Known::is_empty")]
    pub known: Known,
}

impl Matrix {
    /// 2 when no cell was judged at all (no verdict without evidence, see
    /// [`Matrix::judged`]); otherwise [`Results::exit_code`]: 1 a verdict contradicts its
    /// expectation, 3 some cell could not be judged (`error`), 0 all as expected.
    pub fn exit_code(&self) -> u8 {
        if self.judged() == 0 {
            return 2;
        }
        exit_status(Outcomes {
            contradicted: self.results.iter().any(|c| self.contradicts(c)),
            ..self.findings().outcomes()
        })
    }

    /// The `--known` entry that accepts cell `c`, if any.
    pub fn excuse(&self, c: &Cell) -> Option<&KnownDifference> {
        self.known.excuse(Some(&c.kernel_name), &c.finding)
    }

    /// A contradiction no `--known` entry accepts.
    pub fn contradicts(&self, c: &Cell) -> bool {
        c.finding.contradicts() && self.excuse(c).is_none()
    }

    /// Applies a known-differences file to the cells, by their catalogue kernel names.
    pub fn apply_known(&mut self, file: &KnownFile) {
        self.known = file.review(
            self.results
                .iter()
                .map(|c| (Some(c.kernel_name.as_str()), &c.finding)),
        );
    }

    /// Cells with a verdict: every cell that is not an `error`.
    pub fn judged(&self) -> usize {
        self.results
            .iter()
            .filter(|c| c.finding.verdict != Verdict::Error)
            .count()
    }

    pub fn findings(&self) -> Results {
        Results::new(self.results.iter().map(|c| c.finding.clone()).collect())
    }
}

/// A progress report, sent as cells finish.
#[derive(Clone, Debug)]
pub enum Progress {
    Kernel {
        name: String,
        message: String,
    },
    Cell {
        done: usize,
        total: usize,
        cell: Box<Cell>,
    },
}

/// An `error` cell: the run itself failed.
pub(super) fn error_cell(
    opts: &Options,
    k: &KernelRun,
    policy: &str,
    transport: GuestTransport,
    detail: String,
    tail: Option<String>,
) -> Cell {
    let (expected, expected_why) = expectation(policy, transport);
    Cell {
        finding: Finding {
            policy: policy.into(),
            transport: transport.name().into(),
            backend: "vm".into(),
            kernel: (!k.release.is_empty()).then(|| k.release.clone()),
            verdict: Verdict::Error,
            expected,
            expected_why,
            predicted: None,
            evidence: Evidence {
                detail,
                trace: None,
                counts: Default::default(),
                attempts: Vec::new(),
                ..Default::default()
            },
        },
        kernel_name: k.name.clone(),
        kernel_version: k.version.clone(),
        nic: opts.nic_for(transport),
        netem: opts.netem_for(transport),
        seconds: 0.0,
        rerun: opts.rerun(&k.name, policy, transport),
        console_tail: tail,
        output: Vec::new(),
    }
}

/// A cell's output lines, if the options keep them ([`Options::keep_output`]).
pub(super) fn kept(opts: &Options, lines: &[String]) -> Vec<String> {
    if opts.keep_output {
        lines.to_vec()
    } else {
        Vec::new()
    }
}

/// Cells and matrices for tests of what is made of them (reports, known differences,
/// retries), without a VM.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::matrix::host::host_kernel_run;

    /// A cell of `kernel_name` that saw `verdict` where `expected` was expected.
    pub(crate) fn cell(
        kernel_name: &str,
        policy: &str,
        transport: GuestTransport,
        verdict: Verdict,
        expected: Verdict,
    ) -> Cell {
        let o = Options::new("/x".into());
        let mut k = host_kernel_run();
        k.name = kernel_name.into();
        let mut c = error_cell(&o, &k, policy, transport, "ran".into(), None);
        c.finding.verdict = verdict;
        c.finding.expected = expected;
        c
    }

    /// A matrix of `results`.
    pub(crate) fn matrix(results: Vec<Cell>) -> Matrix {
        Matrix {
            format: MATRIX_FORMAT,
            results,
            kernels: vec![],
            accel: "tcg".into(),
            wall_seconds: 0.0,
            known: Known::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::host::host_kernel_run;

    #[test]
    fn exit_status_separates_contradictions_from_cells_that_could_not_judge() {
        let o = Options::new("/x".into());
        let k = host_kernel_run();
        let judged = |v: Verdict| {
            let mut c = error_cell(&o, &k, "copy", GuestTransport::Veth, "ran".into(), None);
            c.finding.verdict = v;
            c.finding.expected = Verdict::Safe;
            c
        };
        let matrix = testing::matrix;
        let error = || judged(Verdict::Error);
        assert_eq!(matrix(vec![judged(Verdict::Safe)]).exit_code(), 0);
        // An error cell is no contradiction: 3, beside verdicts as expected.
        assert_eq!(matrix(vec![judged(Verdict::Safe), error()]).exit_code(), 3);
        // A contradiction wins over errors.
        assert_eq!(
            matrix(vec![judged(Verdict::Corrupt), error()]).exit_code(),
            1
        );
        // Nothing judged at all: no verdict without evidence.
        assert_eq!(matrix(vec![error(), error()]).exit_code(), 2);
        assert_eq!(matrix(vec![]).exit_code(), 2);
        // The same rule for any command's results.
        assert_eq!(matrix(vec![error()]).findings().exit_code(), 3);
        assert_eq!(matrix(vec![]).findings().exit_code(), 0);
    }
}
