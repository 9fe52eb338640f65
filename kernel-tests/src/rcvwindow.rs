//! Which window rule a kernel has ([`WindowRule`]), measured the way it matters: how many
//! bytes a loopback receiver with the default buffer admits unread.
//!
//! The sender writes until the receiver's window closes while the receiver reads nothing
//! (so autotuning, which runs from `tcp_recvmsg`, cannot grow the buffer); then
//! `tcpi_rcv_ssthresh` and `SO_RCVBUF` of the receiver say what `tcp_win_from_space` gave.
//! Up to 6.5 that is `space - (space >> tcp_adv_win_scale)`; from 6.6 (commit
//! dfa2f0483360) `space * scaling_ratio >> 8`, the ratio measured from the first full
//! skb by `tcp_measure_rcv_mss`. Measured 2026-12: 65483 of 131072 on Debian 6.1, 94770
//! on 6.12, 94833 on 6.18.

use crate::sys::{self, errno_text};
use serde::Serialize;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use zcsafe_policy::WindowRule;

const WAIT: Duration = Duration::from_secs(3);
/// Far more than any default window: the sender stops on the window, not on this.
const OFFERED: usize = 4 << 20;

/// What the experiment saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct WindowProbe {
    /// `net.ipv4.tcp_adv_win_scale` in this namespace.
    pub adv_win_scale: Option<i8>,
    /// The receiver's `sk_rcvbuf` (`SO_RCVBUF`).
    pub rcvbuf: u32,
    /// `tcpi_rcv_ssthresh` of the receiver once its window closed.
    pub rcv_ssthresh: u32,
    /// Bytes queued unread at the receiver then (`FIONREAD`).
    pub unread: u64,
    /// The rule these numbers fit.
    pub rule: WindowRule,
}

/// `tcp_adv_win_scale` of the current network namespace.
pub fn adv_win_scale() -> Option<i8> {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_adv_win_scale")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The rule that explains `rcv_ssthresh` for a buffer of `rcvbuf` bytes: the halving
/// with the sysctl in effect if it comes within one MSS-sized rounding (`tcp_grow_window`
/// stops short of the clamp by less than 1 %), else the scaling ratio it implies.
pub fn classify(rcvbuf: u32, rcv_ssthresh: u32, adv_win_scale: Option<i8>) -> WindowRule {
    let scale = adv_win_scale.unwrap_or(WindowRule::DEFAULT_ADV_WIN_SCALE);
    let halving = WindowRule::AdvWinScale { scale };
    let want = halving.window(rcvbuf as u64);
    let got = rcv_ssthresh as u64;
    if got <= want && want - got <= want / 100 + 1 {
        return halving;
    }
    let ratio = (got * 256).div_ceil(rcvbuf.max(1) as u64).clamp(1, 255) as u8;
    WindowRule::ScalingRatio { ratio }
}

/// Runs the experiment over loopback in the current namespace.
pub fn measure() -> Result<WindowProbe, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| errno_text(&e))?;
    let tx = TcpStream::connect_timeout(&l.local_addr().map_err(|e| errno_text(&e))?, WAIT)
        .map_err(|e| errno_text(&e))?;
    let (rx, _) = l.accept().map_err(|e| errno_text(&e))?;
    tx.set_nonblocking(true).map_err(|e| errno_text(&e))?;
    let fd = tx.as_raw_fd();
    let chunk = vec![0x5a_u8; 64 << 10];
    let deadline = Instant::now() + WAIT;
    let mut offered = 0;
    // Write until the socket is full, then wait until everything TCP may send has been
    // sent and acknowledged: what is left unsent is held back by the closed window.
    loop {
        while offered < OFFERED {
            match sys::send(fd, &chunk, libc::MSG_DONTWAIT) {
                Ok(n) => offered += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("send: {}", errno_text(&e))),
            }
        }
        let outq = sys::siocoutq(fd).map_err(|e| errno_text(&e))?;
        let unsent = sys::siocoutqnsd(fd).map_err(|e| errno_text(&e))?;
        if unsent > 0 && outq == unsent {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the window never closed: {outq} bytes unacknowledged, {unsent} unsent after {offered} written"
            ));
        }
        sys::poll_until(
            fd,
            libc::POLLOUT,
            Instant::now() + Duration::from_millis(10),
        )
        .map_err(|e| errno_text(&e))?;
    }
    let rfd = rx.as_raw_fd();
    let rcvbuf = sys::get_int_opt(rfd, libc::SOL_SOCKET, libc::SO_RCVBUF)
        .map_err(|e| format!("getsockopt(SO_RCVBUF): {}", errno_text(&e)))? as u32;
    let rcv_ssthresh = sys::tcp_rcv_ssthresh(rfd)
        .map_err(|e| format!("getsockopt(TCP_INFO): {}", errno_text(&e)))?;
    let unread = sys::fionread(&rx).map_err(|e| errno_text(&e))?;
    let adv_win_scale = adv_win_scale();
    Ok(WindowProbe {
        adv_win_scale,
        rcvbuf,
        rcv_ssthresh,
        unread,
        rule: classify(rcvbuf, rcv_ssthresh, adv_win_scale),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_measured_kernels_classify_as_they_are() {
        // Debian 6.1, 6.12 and the 6.18 host (2026-12): rcv_ssthresh at 131072.
        assert_eq!(
            classify(131072, 65483, Some(1)),
            WindowRule::AdvWinScale { scale: 1 }
        );
        assert_eq!(
            classify(131072, 94770, Some(1)),
            WindowRule::ScalingRatio { ratio: 186 }
        );
        assert_eq!(
            classify(131072, 131000, Some(0)),
            WindowRule::AdvWinScale { scale: 0 }
        );
    }

    #[test]
    fn the_host_kernel_admits_what_its_rule_advertises() {
        let p = measure().expect("loopback works");
        let w = p.rule.window(p.rcvbuf as u64);
        assert!(
            p.rcv_ssthresh as u64 <= w + w / 100,
            "rcv_ssthresh {} is over the window {w} its rule gives: {p:?}",
            p.rcv_ssthresh
        );
        assert!(
            p.unread > 0 && p.unread <= w + (64 << 10),
            "{p:?}: the peer admits about a window"
        );
    }
}
