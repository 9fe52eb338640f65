//! Debian kernels in QEMU: fetch, build an initramfs, boot, collect results.
