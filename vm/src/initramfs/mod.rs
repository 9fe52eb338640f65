//! The guest's root file system: a gzip'd newc cpio written here, cached by content hash.
//!
//! It holds busybox (static), the guest binary (`/bin/zcsafe`), the `/init` script of
//! [`crate::guest`], the kernel modules the transports need (decompressed on the host,
//! loaded in dependency order from `/lib/modules/load-order`), host tools busybox lacks
//! (`ip`, `tc` for netem, `nft`) and the user's carried programs.
//!
//! Every executable goes in through one door, [`carry_executable`]: a dynamically linked
//! one brings its shared-library closure — the loader its `PT_INTERP` names and every
//! object the loader resolves (`ldd`) — as dracut does. So the guest runs the very binary
//! the user built (`make`, `cargo install`), no second static build. Without
//! `/etc/ld.so.cache` the guest's loader searches its built-in system path
//! ([`LOADER_SEARCH_PATH`]): libraries from there keep their host paths; any other
//! (`/usr/local/lib`, a build tree, `LD_LIBRARY_PATH`, `/tmp`, which the guest mounts over)
//! goes to [`GUEST_LIB_DIR`] under its SONAME, which `/init` puts in `LD_LIBRARY_PATH`
//! when [`LIBRARY_PATH_FILE`] says so.
//!
//! One module each: the cpio archive (`cpio.rs`), what a file is (`program.rs`), the
//! closure an executable carries (`closure.rs`), the kernel modules and their
//! dependencies (`modules.rs`), and the image built from all of them (`image.rs`); the
//! paths of their public items are those of this module.

mod closure;
mod cpio;
mod image;
mod modules;
mod program;

pub use closure::{
    carry_executable, closure, Closure, GUEST_LIB_DIR, LIBRARY_PATH_FILE, LOADER_SEARCH_PATH,
};
pub use cpio::{gz_cpio, list, write_cpio, Entry};
pub use image::{build, Image, Inputs};
pub use modules::{modinfo_depends, modules, read_module, WANTED_MODULES};
pub use program::{classify, is_static_elf, Program};
