//! The peer's advertised window in the model's pages, from the kernel profile and the
//! receiver's setup (docs/design.md §9).
//!
//! Whether bytes can sit unread at a local peer while the sender reuses the pages behind
//! them is decided by the window the peer advertises, and that is computed from its
//! receive buffer by a rule that changed in 6.6 ([`WindowRule`]). The model counts pages,
//! one page per chunk of the kernel run, so the window becomes a page count: a window that
//! holds any part of a further chunk counts as that chunk (one unread byte of a slot is
//! enough to corrupt it). It is capped at the standard scenario's window, which already
//! holds every page of the buffer: more changes nothing the model can see and only grows
//! its state space.

use crate::checker::{check, CheckError, CheckOptions};
use crate::config::Scenario;
use serde::{Deserialize, Serialize};
use zcsafe_policy::{Policy, Profile, TransportClass, Verdict, WindowRule};

/// `tcp_rmem[1]`: a TCP socket's `sk_rcvbuf` when nobody set `SO_RCVBUF`.
pub const TCP_RMEM_DEFAULT: u64 = 131_072;
/// `tcp_rmem[2]`: how far receive autotuning may grow it.
pub const TCP_RMEM_MAX: u64 = 6 << 20;
/// `net.core.rmem_max`: `SO_RCVBUF` is clamped to it, then doubled (`__sock_set_rcvbuf`).
pub const RMEM_MAX: u64 = 212_992;
/// `msg_zerocopy_realloc`'s `byte_limit`: one `ubuf_info` covers at most 512 KiB.
pub const ZC_UARG_BYTES: u64 = 1 << 19;
/// [`ZC_UARG_BYTES`] in the model's pages (one page per 64 KiB chunk of a kernel run).
pub const ZC_UARG_PAGES: u8 = 8;

/// Serde's default for [`crate::ModelConfig::zc_uarg_pages`].
pub fn zc_uarg_pages() -> u8 {
    ZC_UARG_PAGES
}

/// The receiving socket of a kernel run, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Receiver {
    /// `SO_RCVBUF` set before the connection (locks the buffer, no autotuning), or `None`
    /// for the kernel's default buffer, which autotuning may grow.
    pub rcvbuf: Option<u32>,
    /// Bytes per send of the run: what one model page stands for.
    pub chunk: u64,
}

/// The window a receiver advertises, in bytes and in the model's pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    /// `sk_rcvbuf` at the start.
    pub rcvbuf_bytes: u64,
    /// `tcp_full_space`: the window that buffer advertises.
    pub bytes: u64,
    /// What autotuning may grow it to, if it may.
    pub grown_bytes: Option<u64>,
    /// [`Window::bytes`] in pages, capped.
    pub pages: u64,
    /// [`Window::grown_bytes`] in pages, when that is more than [`Window::pages`].
    pub grown_pages: Option<u64>,
}

impl Window {
    /// The window of `receiver` on a kernel of `profile`, in pages of at most `cap`.
    pub fn of(profile: &Profile, receiver: &Receiver, cap: u64) -> Window {
        let rule = profile.window;
        let (rcvbuf_bytes, grows) = match receiver.rcvbuf {
            // __sock_set_rcvbuf: clamped to rmem_max, doubled for the skb overhead;
            // SOCK_RCVBUF_LOCK stops tcp_rcv_space_adjust.
            Some(b) => ((b as u64).min(RMEM_MAX) * 2, false),
            None => (TCP_RMEM_DEFAULT, true),
        };
        let pages = |bytes: u64| bytes.div_ceil(receiver.chunk.max(1)).clamp(1, cap);
        let bytes = rule.window(rcvbuf_bytes);
        let grown_bytes = grows.then(|| rule.window(TCP_RMEM_MAX));
        let grown_pages = grown_bytes.map(pages).filter(|&g| g > pages(bytes));
        Window {
            rcvbuf_bytes,
            bytes,
            grown_bytes,
            pages: pages(bytes),
            grown_pages,
        }
    }

    /// One sentence: the rule, the buffer, the window.
    pub fn describe(&self, rule: WindowRule) -> String {
        let how = match rule {
            WindowRule::AdvWinScale { scale } => {
                format!("tcp_win_from_space with tcp_adv_win_scale {scale}")
            }
            WindowRule::ScalingRatio { ratio } => {
                format!("tcp_win_from_space with scaling_ratio {ratio}/256")
            }
        };
        let grow = match self.grown_bytes {
            Some(g) => format!(", autotuning may grow it to {g} bytes"),
            None => ", fixed (SO_RCVBUF)".into(),
        };
        format!(
            "{} bytes of sk_rcvbuf advertise {} bytes ({how}){grow}",
            self.rcvbuf_bytes, self.bytes
        )
    }
}

impl Scenario {
    /// The standard scenario with the window a kernel run's receiver advertises.
    pub fn for_receiver(
        transport: TransportClass,
        profile: Profile,
        receiver: &Receiver,
    ) -> Scenario {
        Scenario::standard(transport, profile).with_receiver(receiver)
    }

    /// This scenario with `receiver`'s window (at most the window it has now).
    pub fn with_receiver(mut self, receiver: &Receiver) -> Scenario {
        let w = self.window_of(receiver);
        self.config.rcvbuf = w.pages;
        self.config.autotune = w.grown_pages;
        self
    }

    /// `receiver`'s window on this scenario's kernel, capped at this scenario's window.
    pub fn window_of(&self, receiver: &Receiver) -> Window {
        Window::of(&self.config.profile, receiver, self.config.rcvbuf)
    }
}

/// What the model says a receiver setup exposes on a kernel profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowPrediction {
    /// The receiver's window.
    pub window: Window,
    /// The verdict when the window keeps its size.
    pub fixed: Verdict,
    /// The verdict when autotuning may grow it (`None`: it cannot grow).
    pub autotuned: Option<Verdict>,
}

impl WindowPrediction {
    /// The verdict over every path, autotuning or not.
    pub fn verdict(&self) -> Verdict {
        match self.autotuned {
            Some(Verdict::Corrupt) => Verdict::Corrupt,
            _ => self.fixed,
        }
    }

    /// Whether the policy's failure shows only when autotuning happens to grow the
    /// window: a kernel run without that growth proves nothing either way.
    pub fn needs_autotuning(&self) -> bool {
        self.fixed != Verdict::Corrupt && self.autotuned == Some(Verdict::Corrupt)
    }

    /// One sentence on what the window lets happen.
    pub fn reason(&self, rule: WindowRule) -> String {
        let w = self.window.describe(rule);
        if self.needs_autotuning() {
            format!("{w}: that window holds {} chunk(s), so the hazard opens only if autotuning grows it to {} — a run whose buffer did not grow cannot show it", self.window.pages, self.window.grown_pages.unwrap_or_default())
        } else if self.fixed == Verdict::Corrupt {
            format!(
                "{w}: {} chunk(s) may sit unread at the peer, enough to expose it",
                self.window.pages
            )
        } else {
            format!("{w}: the model finds no corruption with this window")
        }
    }
}

/// Checks `build()`'s policy on `base` with `receiver`'s window: once with the window
/// fixed, once more with autotuning if the window can grow. `None` from `build`: the
/// policy cannot be built for the geometry.
pub fn predict<P: Policy>(
    build: impl Fn(&Scenario) -> Option<P>,
    base: &Scenario,
    receiver: &Receiver,
    opts: &CheckOptions,
) -> Result<Option<WindowPrediction>, CheckError> {
    let window = base.window_of(receiver);
    let grown = base.clone().with_receiver(receiver);
    let mut fixed = grown.clone();
    fixed.config.autotune = None;
    let Some(policy) = build(&fixed) else {
        return Ok(None);
    };
    let fixed_verdict = check(policy, &fixed, opts)?.verdict;
    let autotuned = match (grown.config.autotune, build(&grown)) {
        (Some(_), Some(p)) => Some(check(p, &grown, opts)?.verdict),
        _ => None,
    };
    Ok(Some(WindowPrediction {
        window,
        fixed: fixed_verdict,
        autotuned,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zcsafe_policies::siocoutq_drain::SiocoutqDrain;
    use zcsafe_policies::Catalogued;
    use zcsafe_policy::{ReceiveWindow, Verdict};

    const CHUNK: u64 = 64 << 10;

    fn receiver(w: ReceiveWindow) -> Receiver {
        Receiver {
            rcvbuf: w.rcvbuf(),
            chunk: CHUNK,
        }
    }

    fn siocoutq_drain(profile: &Profile, w: ReceiveWindow) -> WindowPrediction {
        let base = Scenario::standard(TransportClass::Local, profile.clone());
        predict(
            |s| SiocoutqDrain::new(&s.geometry).ok(),
            &base,
            &receiver(w),
            &CheckOptions::default(),
        )
        .unwrap()
        .expect("builds")
    }

    #[test]
    fn the_default_buffer_holds_one_chunk_on_a_halving_kernel_and_more_after_6_6() {
        let cap = 2;
        let k = receiver(ReceiveWindow::Kernel);
        let halving = Window::of(&Profile::classic(), &k, cap);
        assert_eq!((halving.bytes, halving.pages), (65536, 1));
        assert_eq!(halving.grown_pages, Some(2), "autotuning may open it");
        let ratio = Window::of(&Profile::scaling_ratio(), &k, cap);
        assert_eq!(ratio.pages, 2, "{} bytes is more than a chunk", ratio.bytes);
        assert_eq!(ratio.grown_pages, None, "already at the cap");
        let wide = Window::of(&Profile::classic(), &receiver(ReceiveWindow::Wide), cap);
        assert_eq!(
            (wide.rcvbuf_bytes, wide.pages, wide.grown_bytes),
            (425_984, 2, None)
        );
    }

    #[test]
    fn siocoutq_drain_on_a_halving_kernel_needs_a_wide_window_or_autotuning() {
        let classic = Profile::classic();
        let k = siocoutq_drain(&classic, ReceiveWindow::Kernel);
        assert_eq!(
            k.fixed,
            Verdict::Safe,
            "one chunk unread at most: SIOCOUTQ 0 means read"
        );
        assert!(k.needs_autotuning(), "{k:?}");
        assert!(k
            .reason(classic.window)
            .contains("only if autotuning grows it"));
        let w = siocoutq_drain(&classic, ReceiveWindow::Wide);
        assert_eq!((w.fixed, w.autotuned), (Verdict::Corrupt, None));
        let ratio = siocoutq_drain(&Profile::scaling_ratio(), ReceiveWindow::Kernel);
        assert_eq!(
            ratio.fixed,
            Verdict::Corrupt,
            "6.6+: the default buffer exposes it"
        );
    }

    #[test]
    fn adv_win_scale_zero_opens_the_default_window_on_a_halving_kernel() {
        // The causal test on Debian 6.1 (docs/design.md §5): tcp_adv_win_scale=0 → corrupt.
        let p = Profile {
            window: WindowRule::AdvWinScale { scale: 0 },
            ..Profile::classic()
        };
        assert_eq!(
            siocoutq_drain(&p, ReceiveWindow::Kernel).fixed,
            Verdict::Corrupt
        );
    }
}
