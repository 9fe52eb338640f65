//! Measures the running kernel's [`Profile`] with small experiments — never from the
//! version number, because the semantics are moving (a 2026 vfs series makes `vmsplice`
//! copy and refuses `SPLICE_F_GIFT`; `sendfile` may follow).
//!
//! Each experiment hands a page holding `A` bytes to the kernel, overwrites it with `B`,
//! and looks at what comes out: `B` means the kernel kept a reference to our page.
//!
//! The calls themselves are [`crate::sys`]'s wrappers, the same the executor makes for
//! a policy's operations, so the probe measures exactly what a run exercises.

use crate::netns::find_tool;
use crate::sys::{self, errno_text, Mapping};
use crate::transport::Transport;
use crate::uring::{self, IORING_NOTIF_USAGE_ZC_COPIED, IORING_SEND_ZC_REPORT_USAGE};
use crate::veth::Network;
use serde::Serialize;
use serde_json::{json, Value};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};
use zcsafe_policy::{GiftSupport, Profile, WindowRule};

const PAGE: usize = 4096;
const WAIT: Duration = Duration::from_secs(3);

/// The measured profile and what each experiment saw.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeReport {
    pub kernel: String,
    pub profile: Profile,
    /// Per experiment: the observation, errno text where a call failed.
    pub details: Value,
}

/// What came out of the kernel after we overwrote the page: our new bytes (alias), the
/// old ones (copy), or neither.
fn seen(data: &[u8]) -> &'static str {
    if data.iter().all(|&b| b == b'B') {
        "aliased"
    } else if data.iter().all(|&b| b == b'A') {
        "copied"
    } else {
        "mixed"
    }
}

fn read_exact_timeout(fd: RawFd, buf: &mut [u8]) -> std::io::Result<()> {
    let deadline = Instant::now() + WAIT;
    let mut got = 0;
    while got < buf.len() {
        if sys::poll_until(fd, libc::POLLIN, deadline)?.is_none() {
            return Err(std::io::Error::from(std::io::ErrorKind::TimedOut));
        }
        match sys::read(fd, &mut buf[got..])? {
            0 => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
            n => got += n,
        }
    }
    Ok(())
}

/// vmsplice one page, overwrite it, read the pipe (`iter_to_pipe` takes page references).
fn vmsplice_experiment(gift: bool) -> Result<&'static str, String> {
    let mut m = Mapping::new(PAGE).map_err(|e| e.to_string())?;
    m.slice_mut(0, PAGE).fill(b'A');
    let (r, w) = sys::pipe().map_err(|e| e.to_string())?;
    let flags = if gift { libc::SPLICE_F_GIFT } else { 0 } | libc::SPLICE_F_NONBLOCK;
    let n = sys::vmsplice(w.as_raw_fd(), m.slice(0, PAGE), flags).map_err(|e| errno_text(&e))?;
    m.slice_mut(0, PAGE).fill(b'B');
    let mut out = vec![0u8; n];
    read_exact_timeout(r.as_raw_fd(), &mut out).map_err(|e| errno_text(&e))?;
    Ok(seen(&out))
}

fn tmpfs_file() -> Result<std::fs::File, String> {
    let f = tempfile::tempfile_in("/dev/shm")
        .or_else(|_| tempfile::tempfile())
        .map_err(|e| format!("temp file: {e}"))?;
    f.write_all_at(&[b'A'; PAGE], 0)
        .map_err(|e| format!("pwrite: {e}"))?;
    Ok(f)
}

/// splice a tmpfs page into a pipe, rewrite the file, read the pipe
/// (`shmem_file_splice_read` hands out page-cache pages).
fn file_splice_experiment() -> Result<&'static str, String> {
    let f = tmpfs_file()?;
    let (r, w) = sys::pipe().map_err(|e| e.to_string())?;
    let mut off: libc::loff_t = 0;
    let n = sys::splice(
        f.as_raw_fd(),
        Some(&mut off),
        w.as_raw_fd(),
        PAGE,
        libc::SPLICE_F_NONBLOCK,
    )
    .map_err(|e| errno_text(&e))?;
    f.write_all_at(&[b'B'; PAGE], 0)
        .map_err(|e| format!("pwrite: {e}"))?;
    let mut out = vec![0u8; n];
    read_exact_timeout(r.as_raw_fd(), &mut out).map_err(|e| errno_text(&e))?;
    Ok(seen(&out))
}

/// A connected TCP pair over loopback (or whatever namespace the caller is in).
fn tcp_pair(addr: SocketAddr) -> std::io::Result<(TcpStream, TcpStream)> {
    let l = TcpListener::bind(addr)?;
    let a = TcpStream::connect_timeout(&l.local_addr()?, WAIT)?;
    let (b, _) = l.accept()?;
    Ok((a, b))
}

/// Waits until `n` bytes are queued at the receiving socket.
fn wait_queued(sock: &TcpStream, n: u64) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    while sys::fionread(sock).map_err(|e| errno_text(&e))? < n {
        if Instant::now() > deadline {
            return Err("data did not arrive".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// sendfile a tmpfs page over loopback, rewrite it while it sits in the receiver's
/// queue, then read it.
fn sendfile_experiment() -> Result<&'static str, String> {
    let f = tmpfs_file()?;
    let (tx, mut rx) =
        tcp_pair("127.0.0.1:0".parse().expect("addr")).map_err(|e| errno_text(&e))?;
    let mut off: libc::off_t = 0;
    match sys::sendfile(tx.as_raw_fd(), f.as_raw_fd(), &mut off, PAGE) {
        Ok(PAGE) => {}
        Ok(n) => {
            return Err(format!(
                "sendfile returned {n}: {}",
                errno_text(&std::io::Error::last_os_error())
            ))
        }
        Err(e) => return Err(format!("sendfile returned -1: {}", errno_text(&e))),
    }
    wait_queued(&rx, PAGE as u64)?;
    f.write_all_at(&[b'B'; PAGE], 0)
        .map_err(|e| format!("pwrite: {e}"))?;
    let mut out = vec![0u8; PAGE];
    rx.read_exact(&mut out).map_err(|e| errno_text(&e))?;
    Ok(seen(&out))
}

/// The first half of both MSG_ZEROCOPY experiments: `SO_ZEROCOPY` on `tx`, then one
/// page of `A` sent with `MSG_ZEROCOPY`. Returns the page and the bytes sent.
fn send_zerocopy_page(tx: &TcpStream) -> Result<(Mapping, usize), String> {
    sys::set_int_opt(tx.as_raw_fd(), libc::SOL_SOCKET, libc::SO_ZEROCOPY, 1)
        .map_err(|e| format!("setsockopt(SO_ZEROCOPY): {}", errno_text(&e)))?;
    let mut m = Mapping::new(PAGE).map_err(|e| e.to_string())?;
    m.slice_mut(0, PAGE).fill(b'A');
    let n = sys::send(tx.as_raw_fd(), m.slice(0, PAGE), libc::MSG_ZEROCOPY)
        .map_err(|e| format!("send(MSG_ZEROCOPY): {}", errno_text(&e)))?;
    Ok((m, n))
}

/// The second half: overwrite the sent page with `B`, then read what the receiver got.
fn reuse_and_read(mut m: Mapping, n: usize, rx: &mut TcpStream) -> Result<&'static str, String> {
    m.slice_mut(0, PAGE).fill(b'B');
    let mut out = vec![0u8; n];
    rx.read_exact(&mut out).map_err(|e| errno_text(&e))?;
    Ok(seen(&out))
}

/// MSG_ZEROCOPY of one page on a connection made in the current namespace: is it
/// supported, does the notification say COPIED, and what does the receiver read after
/// the page is overwritten post-notification.
fn zerocopy_experiment(addr: SocketAddr) -> Result<Value, String> {
    let (tx, mut rx) = tcp_pair(addr).map_err(|e| errno_text(&e))?;
    let (m, n) = send_zerocopy_page(&tx)?;
    let deadline = Instant::now() + WAIT;
    let note = loop {
        match crate::errqueue::read_one(tx.as_raw_fd()) {
            Ok(crate::errqueue::ErrqueueRead::Notification(z)) => break z,
            Ok(_) => {}
            Err(e) => return Err(format!("recvmsg(MSG_ERRQUEUE): {}", errno_text(&e))),
        }
        if sys::poll_until(tx.as_raw_fd(), 0, deadline)
            .map_err(|e| errno_text(&e))?
            .is_none()
        {
            return Err("no notification while the receiver had not read".into());
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let saw = reuse_and_read(m, n, &mut rx)?;
    Ok(json!({
        "notification": { "lo": note.lo, "hi": note.hi, "copied": note.copied },
        "notified_before_the_receiver_read": true,
        "receiver_saw_after_reuse": saw,
    }))
}

/// io_uring: which zero-copy opcodes exist, and one SEND_ZC with REPORT_USAGE.
fn uring_experiment() -> Value {
    let ring = match io_uring::IoUring::new(8) {
        Ok(r) => r,
        Err(e) => return json!({ "setup": errno_text(&e) }),
    };
    let send_zc = uring::opcode_supported(&ring, io_uring::opcode::SendZc::CODE);
    let sendmsg_zc = uring::opcode_supported(&ring, io_uring::opcode::SendMsgZc::CODE);
    drop(ring);
    let mut v = json!({ "send_zc": send_zc, "sendmsg_zc": sendmsg_zc });
    if send_zc {
        v["send"] = match uring_send_once() {
            Ok(x) => x,
            Err(e) => json!({ "error": e }),
        };
    }
    v
}

fn uring_send_once() -> Result<Value, String> {
    use io_uring::{opcode, types, IoUring};
    let (tx, mut rx) =
        tcp_pair("127.0.0.1:0".parse().expect("addr")).map_err(|e| errno_text(&e))?;
    let mut ring = IoUring::new(8).map_err(|e| errno_text(&e))?;
    let m = Mapping::new(PAGE).map_err(|e| e.to_string())?;
    let mut report_usage = true;
    let mut cqes = Vec::new();
    for _attempt in 0..2 {
        let e = opcode::SendZc::new(types::Fd(tx.as_raw_fd()), m.ptr, PAGE as u32)
            .zc_flags(if report_usage {
                IORING_SEND_ZC_REPORT_USAGE
            } else {
                0
            })
            .build()
            .user_data(1);
        // SAFETY: the page stays mapped until this function returns, after the NOTIF.
        unsafe { ring.submission().push(&e) }.map_err(|_| "SQ full".to_string())?;
        let deadline = Instant::now() + WAIT;
        cqes.clear();
        loop {
            ring.submit_and_wait(1).map_err(|e| errno_text(&e))?;
            let got: Vec<_> = ring.completion().map(|c| (c.result(), c.flags())).collect();
            cqes.extend(got);
            let done = cqes.iter().any(|&(_, f)| io_uring::cqueue::notif(f))
                || cqes
                    .iter()
                    .any(|&(r, f)| r < 0 || !io_uring::cqueue::more(f));
            if done || Instant::now() > deadline {
                break;
            }
        }
        if report_usage && cqes.first().is_some_and(|&(r, _)| r == -libc::EINVAL) {
            report_usage = false;
            continue;
        }
        break;
    }
    let mut out = vec![0u8; PAGE];
    let _ = rx.read_exact(&mut out);
    let notif = cqes.iter().find(|&&(_, f)| io_uring::cqueue::notif(f));
    Ok(json!({
        "send_res": cqes.first().map(|c| c.0),
        "report_usage": report_usage,
        "notif": notif.is_some(),
        "copied": notif.map(|&(r, _)| (r as u32) & IORING_NOTIF_USAGE_ZC_COPIED != 0),
    }))
}

/// Runs every experiment on the running kernel.
pub fn probe() -> ProbeReport {
    let kernel = sys::kernel_release();
    let plain = vmsplice_experiment(false);
    let gift = vmsplice_experiment(true);
    let splice_file = file_splice_experiment();
    let sendfile = sendfile_experiment();
    let zc_lo = zerocopy_experiment("127.0.0.1:0".parse().expect("addr"));
    let zc_veth: Value =
        if crate::veth::unavailable(&Transport::Veth).is_none() && find_tool("ip").is_some() {
            match Network::setup(Transport::Veth) {
                Ok(net) => {
                    let addr = SocketAddr::new(net.host.into(), 0);
                    // Both ends in the receiver namespace would be loopback again: build the
                    // listener there and connect from the sender's side.
                    match veth_zerocopy(&net, addr) {
                        Ok(v) => v,
                        Err(e) => json!({ "error": e }),
                    }
                }
                Err(e) => json!({ "error": e.to_string() }),
            }
        } else {
            json!({ "skipped": "needs root and ip" })
        };
    let uring = uring_experiment();
    let window = crate::rcvwindow::measure();
    let res = |r: &Result<&'static str, String>| match r {
        Ok(s) => json!(s),
        Err(e) => json!({ "error": e }),
    };
    let gift_support = match &gift {
        Err(e) if e.starts_with("EOPNOTSUPP") || e.starts_with("EINVAL") => GiftSupport::Rejected,
        _ => GiftSupport::Accepted,
    };
    let zc_ok = zc_lo.is_ok();
    let zc_copies = zc_lo
        .as_ref()
        .ok()
        .and_then(|v| v["notification"]["copied"].as_bool())
        .unwrap_or(true);
    let profile = Profile {
        name: format!("probed:{kernel}"),
        vmsplice_maps: plain.as_deref() == Ok("aliased"),
        gift: gift_support,
        file_splice_maps: splice_file.as_deref() == Ok("aliased")
            || sendfile.as_deref() == Ok("aliased"),
        msg_zerocopy: zc_ok,
        zerocopy_local_copies: zc_copies,
        uring_send_zc: uring["send"]["send_res"].as_i64().is_some_and(|r| r >= 0),
        // Unmeasurable: the ≤ 6.5 halving with the sysctl in effect, as a kernel that
        // cannot say otherwise is read (WindowRule::default).
        window: window.as_ref().map_or_else(
            |_| WindowRule::AdvWinScale {
                scale: crate::rcvwindow::adv_win_scale()
                    .unwrap_or(WindowRule::DEFAULT_ADV_WIN_SCALE),
            },
            |w| w.rule,
        ),
    };
    let details = json!({
        "kernel": kernel,
        "vmsplice": res(&plain),
        "vmsplice_gift": res(&gift),
        "splice_from_tmpfs": res(&splice_file),
        "sendfile_from_tmpfs_over_loopback": res(&sendfile),
        "msg_zerocopy_loopback": match zc_lo { Ok(v) => v, Err(e) => json!({ "error": e }) },
        "msg_zerocopy_veth": zc_veth,
        "io_uring": uring,
        "receive_window_loopback": match &window {
            Ok(w) => serde_json::to_value(w).unwrap_or_default(),
            Err(e) => json!({ "error": e }),
        },
    });
    ProbeReport {
        kernel,
        profile,
        details,
    }
}

fn veth_zerocopy(net: &Network, addr: SocketAddr) -> Result<Value, String> {
    let l = net
        .in_receiver(|| TcpListener::bind(addr))
        .map_err(|e| e.to_string())?
        .map_err(|e| errno_text(&e))?;
    let to = l.local_addr().map_err(|e| errno_text(&e))?;
    let (tx, rx) = std::thread::scope(|s| {
        let acc = s.spawn(|| l.accept());
        let tx = net.in_sender(|| TcpStream::connect_timeout(&to, WAIT));
        (tx, acc.join())
    });
    let tx = tx.map_err(|e| e.to_string())?.map_err(|e| errno_text(&e))?;
    let (mut rx, _) = rx
        .map_err(|_| "accept panicked".to_string())?
        .map_err(|e| errno_text(&e))?;
    let (m, n) = send_zerocopy_page(&tx)?;
    let deadline = Instant::now() + WAIT;
    let note = loop {
        if let Ok(crate::errqueue::ErrqueueRead::Notification(z)) =
            crate::errqueue::read_one(tx.as_raw_fd())
        {
            break Some(z);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let saw = reuse_and_read(m, n, &mut rx)?;
    Ok(json!({
        "notification": note.map(|z| json!({ "lo": z.lo, "hi": z.hi, "copied": z.copied })),
        "receiver_saw_after_reuse": saw,
    }))
}
