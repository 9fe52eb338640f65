//! Debian kernels in QEMU: fetch, build an initramfs, boot, collect results.
//!
//! The pipeline, one module each: [`catalogue`] (which kernels) → [`apt`] + [`kernel`]
//! (fetch with a private apt root; [`kernel_image`]: the user's own kernel) → [`initramfs`] (busybox, the guest binary, modules)
//! → [`qemu`] + [`watchdog`] (boot, results as JSON lines on a serial port, never hang)
//! → [`matrix`] (kernels × policies × transports in parallel) → [`report`] (JSON,
//! Markdown, HTML, merge).

pub mod apt;
pub mod catalogue;
pub mod error;
pub mod guest;
pub mod initramfs;
pub mod kernel;
pub mod kernel_image;
pub mod lock;
pub mod matrix;
pub mod process;
pub mod qemu;
pub mod report;
pub mod skip;
pub mod vm;
pub mod watchdog;

pub use catalogue::{Catalogue, KernelEntry};
pub use error::{Result, VmError};
pub use kernel::{cache_dir, Fetcher, Kernel};
