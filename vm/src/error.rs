//! The one error type of the VM backend: every variant says what to do about it.

use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum VmError {
    #[error("kernel catalogue {path}: {message}")]
    Catalogue { path: String, message: String },
    /// A kernel selection token that names nothing in the catalogue (the binary adds which
    /// option took it).
    #[error("unknown kernel `{0}` (the catalogue has {1})")]
    UnknownKernel(String, String),
    #[error("cannot fetch {package} ({suite}): {message}\n  fix: check the network and the mirror ({mirror}); set ZCSAFE_DEBIAN_MIRROR for another mirror, or pre-fill the cache (ZCSAFE_CACHE_DIR) by fetching kernel {kernel} on a connected machine")]
    Fetch {
        kernel: String,
        package: String,
        suite: String,
        mirror: String,
        message: String,
    },
    #[error("the Debian package `{package}` does not exist in {suite}: {message}\n  fix: edit vm/kernels.toml (see `apt-cache search linux-image` for the suite)")]
    NoSuchPackage {
        package: String,
        suite: String,
        message: String,
    },
    #[error("`{tool}` is required: {message}\n  fix: apt-get install {package}")]
    MissingTool {
        tool: String,
        package: String,
        message: String,
    },
    #[error("gave up after {waited_secs} s waiting for {what}: {path} is held by {holder}\n  fix: let that process finish (it is doing the same work, e.g. fetching the same kernel), or stop it if it is stuck; ZCSAFE_LOCK_TIMEOUT_SECS sets how long to wait")]
    LockTimeout {
        what: String,
        path: PathBuf,
        /// `pid N (command), for S s so far`, from what the holder wrote into the lock file.
        holder: String,
        waited_secs: u64,
    },
    #[error("{what} timed out after {seconds} s")]
    Timeout { what: String, seconds: u64 },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("unpacked kernel in {dir} has no {what}")]
    BadKernel { dir: PathBuf, what: String },
    /// The user's own kernel (`--kernel-image`, `--modules`) is not what it must be.
    #[error("kernel image {}: {problem}", path.display())]
    KernelImage { path: PathBuf, problem: String },
    #[error("malformed initramfs: {0}")]
    Cpio(String),
    #[error("interrupted")]
    Interrupted,
    #[error("invalid option: {0}")]
    Usage(String),
    /// A [`matrix::Options`](crate::matrix::Options) field out of range. It names the
    /// field, not a command-line flag: the binary names its own flag for it.
    #[error("invalid option: {field} {message}")]
    BadOption {
        /// The `Options` field (`jobs`, `loss_pct`).
        field: &'static str,
        /// What is wrong with its value.
        message: String,
    },
    /// A file to carry into the guests (`--carry`, the `--external` program, a host tool)
    /// whose path names no file (`dir/..`): it would have no name in `/opt/zcsafe/bin`.
    #[error("invalid option: {}: not a file to carry", path.display())]
    NotCarriable { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Json { path: PathBuf, message: String },
}

pub type Result<T, E = VmError> = std::result::Result<T, E>;

/// Attaches the path to an I/O error, so messages say which file failed.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| VmError::Io {
            path: path.into(),
            source,
        })
    }
}
