//! liburing#643 on the host kernel: `SEND_ZC` with a real `IORING_OP_LINK_TIMEOUT`
//! linked after each request. A small `SO_SNDBUF` and a receiver that pauses before it
//! reads (the default slow reader: 300 ms of quiet first) behind a 64 KiB `SO_RCVBUF`
//! close the window, so a send finds room for only part of its chunk and its 20 ms timer
//! cancels it with that part queued — the moment the reproducer and its twin differ in (`cancel-after-queued`).
//! Over `tun` (the remote class) the peer's held ACKs close the window instead.
//! The freed-and-reallocated buffer must come out corrupt, the kept one safe, and a
//! run in which no timeout cancelled a part-queued send is `inconclusive`, never `safe`.

mod common;

use zcsafe_kernel::{try_run_policy, RunOptions, RunReport, Transport};
use zcsafe_policy::{Geometry, Hazard, Profile, Verdict};

/// `SO_SNDBUF` of the sender (the kernel doubles it to 16 KiB): a 256 KiB chunk queues
/// in pieces, each once the one before left the write queue, so a send stalls part-way
/// as soon as the receiver's window closes.
const SNDBUF: u32 = 8 << 10;

fn run(policy: &str, transport: Transport, seed: u64) -> (RunReport, Verdict, String) {
    let (bug, e) = zcsafe_policies::bugs::find(policy).unwrap_or_else(|| panic!("no {policy}"));
    assert_eq!(bug.id, "liburing#643");
    let opts = RunOptions {
        transport,
        seed,
        repeat: 1,
        sndbuf: Some(SNDBUF),
        rcvbuf: Some(64 << 10),
        geometry: Geometry::kernel(256 << 10, 512 << 10, 256 << 10, 2 << 20),
        ..RunOptions::default()
    };
    let r = try_run_policy(|g| e.build(g), e.name, &opts)
        .unwrap_or_else(|err| panic!("{policy} over {} (seed {seed}): {err}", transport.label()));
    let (verdict, why) = r.judged(&e.expect(transport.class(), &Profile::classic()), None);
    println!(
        "{policy} over {} (seed {seed}): {verdict} ({} ms): {why}; cancel-after-queued {}",
        transport.label(),
        r.evidence.elapsed_ms,
        r.evidence.hazards.count(Hazard::CancelAfterQueued)
    );
    (r, verdict, why)
}

/// The reproducer corrupts and its twin is safe, each with a timeout that cancelled a
/// part-queued send behind the verdict.
fn reproduces(transport: Transport, seed: u64) {
    let _g = common::serial();
    let label = transport.label();
    if common::skip(&format!("liburing-643 over {label}"), &transport) {
        return;
    }
    let mut wrong = Vec::new();
    for (policy, want) in [
        ("liburing-zc-timeout-realloc", Verdict::Corrupt),
        ("liburing-zc-timeout-wait-notif", Verdict::Safe),
    ] {
        let (r, verdict, why) = run(policy, transport, seed);
        if r.evidence.hazards.count(Hazard::CancelAfterQueued) == 0 {
            wrong.push(format!(
                "{policy} over {label} (seed {seed}): no timeout cancelled a part-queued send: {why}"
            ));
        } else if verdict != want {
            wrong.push(format!(
                "{policy} over {label} (seed {seed}): {verdict}, expected {want}: {why}"
            ));
        }
    }
    common::assert_no_namespaces_of_this_process();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_timeout_cancelling_a_part_queued_send_zc_over_loopback() {
    reproduces(Transport::Loopback, 643);
}

#[test]
fn a_timeout_cancelling_a_part_queued_send_zc_over_veth() {
    reproduces(Transport::Veth, 644);
}

/// The kernel fact under the reproducers, on loopback in this namespace: a `SEND_ZC`
/// larger than the send buffer to a receiver that does not read queues part of itself
/// and waits; its linked timeout fires (`-ETIME`) and the send's CQE counts the bytes
/// it had queued, with `F_MORE`; the NOTIF comes only once the receiver read them.
#[test]
fn a_linked_timeout_cancels_a_stalled_send_zc_with_part_of_it_queued() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};
    let _g = common::serial();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = listener.as_raw_fd();
    set_buf(fd, libc::SO_RCVBUF, 16 << 10);
    let sock = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    set_buf(sock.as_raw_fd(), libc::SO_SNDBUF, 8 << 10);
    let mut ring = match zcsafe_kernel::uring::ZcRing::new(sock.as_raw_fd()) {
        Ok(r) => r,
        Err(e) => return common::skipped("link timeout", &e.to_string()),
    };
    let buf = vec![7u8; 4 << 20];
    ring.link_timeout(1, 2);
    ring.send_zc(1, &buf).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut cqes = Vec::new();
    while cqes.len() < 2 {
        match ring.wait_cqe(deadline).unwrap() {
            Some(c) => cqes.push(c),
            None => panic!("two CQEs within 5 s, got {cqes:?}"),
        }
    }
    let timeout = cqes.iter().find(|c| c.user_data == 2).unwrap();
    let send = cqes.iter().find(|c| c.user_data == 1).unwrap();
    assert_eq!(timeout.res, -(libc::ETIME as i64), "{cqes:?}");
    assert!(
        send.more && send.res > 0 && (send.res as usize) < buf.len(),
        "{cqes:?}"
    );
    let mut sink = vec![0u8; 1 << 20];
    let mut read = 0;
    while read < send.res as usize {
        read += peer.read(&mut sink).unwrap();
    }
    let n = ring.wait_cqe(deadline).unwrap().expect("the NOTIF");
    assert!(n.notif && n.user_data == 1, "{n:?}");
}

/// `setsockopt(SOL_SOCKET, opt, bytes)`, which must succeed.
fn set_buf(fd: std::os::fd::RawFd, opt: libc::c_int, bytes: libc::c_int) {
    // SAFETY: a valid socket and a pointer to an int of the length given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

/// The remote class: zcsafe's TCP peer behind a TUN device holds its ACKs 50 ms behind
/// a 64 KiB window, so the window closes with a send part-queued; the pages it queued are
/// read by the device (the TUN fd) when the window opens again.
#[test]
fn a_timeout_cancelling_a_part_queued_send_zc_over_tun() {
    let script = zcsafe_policy::PeerScript::parse("window=65536,hold-acks=50").unwrap();
    reproduces(Transport::Tun(script), 645);
}
