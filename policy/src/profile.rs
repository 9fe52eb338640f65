//! Kernel profiles: the semantic switches in which kernels differ.
//!
//! Predictions are computed for a profile, not a version number: a 2026 vfs series turns
//! `vmsplice` into a copying wrapper of `pwritev2` and makes `SPLICE_F_GIFT` a no-op or an
//! error, and `sendfile` may follow. A kernel that changed gets a different prediction
//! instead of a false alarm. `zcsafe probe` measures a profile on a running kernel.

use serde::{Deserialize, Serialize};

/// How a kernel treats `SPLICE_F_GIFT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GiftSupport {
    /// Accepted (the flag is a hint; for sockets the pages are used as if not gifted).
    Accepted,
    /// Refused with `EOPNOTSUPP`.
    Rejected,
}

/// The semantic switches of one kernel.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Profile {
    /// Where the profile comes from: a built-in name or `probed:<uname -r>`.
    pub name: String,
    /// `vmsplice` puts references to the user's pages in the pipe (`iter_to_pipe`), rather
    /// than copying them.
    pub vmsplice_maps: bool,
    /// What `vmsplice(SPLICE_F_GIFT)` does: gifting hands the pages over for good, so
    /// a policy that gifts must never write them again.
    pub gift: GiftSupport,
    /// `splice`/`sendfile` from a file put references to page-cache pages into the socket
    /// (`filemap_splice_read` / `shmem_file_splice_read`), rather than copies.
    pub file_splice_maps: bool,
    /// `SO_ZEROCOPY` / `MSG_ZEROCOPY` exist for TCP.
    pub msg_zerocopy: bool,
    /// `MSG_ZEROCOPY` frags are copied when delivered to a local socket
    /// (`skb_orphan_frags_rx`), and the notification then says `COPIED`.
    pub zerocopy_local_copies: bool,
    /// io_uring `IORING_OP_SEND_ZC` exists.
    pub uring_send_zc: bool,
}

impl Profile {
    /// Every Linux from 4.14 (MSG_ZEROCOPY) and 6.0 (SEND_ZC) to 7.2, as the kernel source
    /// reads: splice, vmsplice and sendfile alias pages.
    pub fn classic() -> Profile {
        Profile {
            name: "classic".into(),
            vmsplice_maps: true,
            gift: GiftSupport::Accepted,
            file_splice_maps: true,
            msg_zerocopy: true,
            zerocopy_local_copies: true,
            uring_send_zc: true,
        }
    }

    /// The 2026 vfs series: `vmsplice` copies (a `pwritev2` wrapper), `SPLICE_F_GIFT` is
    /// refused, `sendfile` copies too.
    pub fn copying_splice() -> Profile {
        Profile {
            name: "copying-splice".into(),
            vmsplice_maps: false,
            gift: GiftSupport::Rejected,
            file_splice_maps: false,
            ..Profile::classic()
        }
    }

    /// The built-in profiles, by name.
    pub fn builtin() -> Vec<Profile> {
        vec![Profile::classic(), Profile::copying_splice()]
    }

    /// The built-in profile named `name` (`--profile` takes a name or a probed file).
    pub fn by_name(name: &str) -> Option<Profile> {
        Self::builtin().into_iter().find(|p| p.name == name)
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile::classic()
    }
}
