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

/// How a kernel turns receive-buffer space into the window it advertises
/// (`tcp_win_from_space`, include/net/tcp.h): what decides whether bytes can sit unread at
/// a local peer while the sender reuses the pages behind them (docs/design.md §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum WindowRule {
    /// Up to 6.5: `space - (space >> tcp_adv_win_scale)` for a positive scale,
    /// `space >> -scale` otherwise (6.1 `tcp_win_from_space`). The default scale 1 halves
    /// the buffer: the default 128 KiB `sk_rcvbuf` advertises 64 KiB.
    AdvWinScale {
        /// `net.ipv4.tcp_adv_win_scale` in effect (per network namespace).
        scale: i8,
    },
    /// From 6.6 (commit dfa2f0483360 "tcp: get rid of sysctl_tcp_adv_win_scale"):
    /// `space * scaling_ratio >> TCP_RMEM_TO_WIN_SCALE` (8), the ratio measured as
    /// `skb->len / skb->truesize` by `tcp_measure_rcv_mss` (6.12), starting at
    /// `TCP_DEFAULT_SCALING_RATIO` (128, half).
    ScalingRatio {
        /// The ratio, out of 256, a loopback connection settles on.
        ratio: u8,
    },
}

impl WindowRule {
    /// `tcp_adv_win_scale`'s default (`tcp_sk_init`).
    pub const DEFAULT_ADV_WIN_SCALE: i8 = 1;
    /// `scaling_ratio` over loopback on 6.12 and 6.18: the least ratio whose window
    /// covers the measured `tcpi_rcv_ssthresh` of 94770 at the default 131072-byte buffer
    /// (2026-12), 64 KiB GSO skbs against their truesize.
    pub const LOOPBACK_SCALING_RATIO: u8 = 186;

    /// The window a receive buffer of `space` bytes advertises (`tcp_win_from_space`).
    pub fn window(self, space: u64) -> u64 {
        match self {
            WindowRule::AdvWinScale { scale } if scale > 0 => {
                space - (space >> scale.unsigned_abs().min(63))
            }
            WindowRule::AdvWinScale { scale } => space >> scale.unsigned_abs().min(63),
            WindowRule::ScalingRatio { ratio } => (space * ratio as u64) >> 8,
        }
    }
}

impl Default for WindowRule {
    /// A profile written before the rule was a switch: the ≤ 6.5 halving.
    fn default() -> Self {
        WindowRule::AdvWinScale {
            scale: WindowRule::DEFAULT_ADV_WIN_SCALE,
        }
    }
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
    /// How the peer's receive buffer becomes its advertised window.
    #[serde(default)]
    pub window: WindowRule,
}

impl Profile {
    /// Every Linux from 4.14 (MSG_ZEROCOPY) and 6.0 (SEND_ZC) to 6.5, as the kernel source
    /// reads: splice, vmsplice and sendfile alias pages; the window is half the buffer
    /// (Debian 5.10, 6.1).
    pub fn classic() -> Profile {
        Profile {
            name: "classic".into(),
            vmsplice_maps: true,
            gift: GiftSupport::Accepted,
            file_splice_maps: true,
            msg_zerocopy: true,
            zerocopy_local_copies: true,
            uring_send_zc: true,
            window: WindowRule::default(),
        }
    }

    /// 6.6 to 7.2 (Debian 6.12, sid): `classic`'s page semantics, the window from the
    /// measured scaling ratio (commit dfa2f0483360).
    pub fn scaling_ratio() -> Profile {
        Profile {
            name: "scaling-ratio".into(),
            window: WindowRule::ScalingRatio {
                ratio: WindowRule::LOOPBACK_SCALING_RATIO,
            },
            ..Profile::classic()
        }
    }

    /// The 2026 vfs series: `vmsplice` copies (a `pwritev2` wrapper), `SPLICE_F_GIFT` is
    /// refused, `sendfile` copies too; a kernel after 6.6, so the scaling-ratio window.
    pub fn copying_splice() -> Profile {
        Profile {
            name: "copying-splice".into(),
            vmsplice_maps: false,
            gift: GiftSupport::Rejected,
            file_splice_maps: false,
            ..Profile::scaling_ratio()
        }
    }

    /// The built-in profiles, by name.
    pub fn builtin() -> Vec<Profile> {
        vec![
            Profile::classic(),
            Profile::scaling_ratio(),
            Profile::copying_splice(),
        ]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_halving_and_the_ratio_give_the_measured_windows() {
        // tcpi_rcv_ssthresh at the default 131072-byte buffer over loopback: 65483 on
        // Debian 6.1 (one MSS short of the clamp), 94770 on 6.12 (docs/design.md §5).
        assert_eq!(WindowRule::default().window(131072), 65536);
        assert_eq!(WindowRule::AdvWinScale { scale: 0 }.window(131072), 131072);
        assert_eq!(WindowRule::AdvWinScale { scale: 2 }.window(131072), 98304);
        assert_eq!(WindowRule::AdvWinScale { scale: -1 }.window(131072), 65536);
        let ratio = WindowRule::ScalingRatio {
            ratio: WindowRule::LOOPBACK_SCALING_RATIO,
        };
        assert!((94_770..96_000).contains(&ratio.window(131072)));
    }

    #[test]
    fn a_profile_file_without_a_window_rule_reads_as_the_halving() {
        let mut v = serde_json::to_value(Profile::classic()).unwrap();
        v.as_object_mut().unwrap().remove("window");
        let p: Profile = serde_json::from_value(v).unwrap();
        assert_eq!(p.window, WindowRule::default());
    }
}
