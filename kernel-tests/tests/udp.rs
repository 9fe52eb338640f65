//! UDP policies on the host kernel: the executor has no UDP socket yet, so a run says
//! `unsupported` with the reason — before it sets up any namespace, so no root needed.

use zcsafe_kernel::{try_run_policy, RunOptions, Transport, UDP_UNSUPPORTED};
use zcsafe_policy::{SocketKind, Verdict};

#[test]
fn udp_policies_are_unsupported_with_the_reason_on_every_transport() {
    for name in ["udp-zc-naive", "udp-zc-completion"] {
        let e = zcsafe_policies::find(name).expect(name);
        assert_eq!(e.pipeline.socket, SocketKind::Udp, "{name} declares UDP");
        for transport in [Transport::Loopback, Transport::Veth] {
            let opts = RunOptions {
                transport,
                repeat: 1,
                socket: e.pipeline.socket,
                ..RunOptions::default()
            };
            let r = try_run_policy(|g| e.build(g), e.name, &opts).expect("a report");
            assert_eq!(r.verdict, Verdict::Unsupported, "{name} over {transport}");
            assert_eq!(r.evidence.detail, UDP_UNSUPPORTED);
            assert_eq!(r.evidence.ops, 0, "nothing ran on a TCP socket instead");
        }
    }
}

/// The model's UDP rules on this host, with real calls over loopback (no namespace, no
/// root): a page sent with `MSG_ZEROCOPY` from a connected `SO_ZEROCOPY` UDP socket and
/// rewritten right after `send` returns. Asserted: every datagram arrives, whole, as one
/// of the two contents, and every send's notification comes, one counter each
/// (`msg_zerocopy_alloc` per uncorked `udp_sendmsg`), marked COPIED (loopback delivery
/// copies the frags, `skb_orphan_frags_rx`). Measured, not asserted: how many datagrams
/// carried the rewrite — whether this host opens the backlog window the model explores.
#[test]
fn udp_msg_zerocopy_over_loopback_notifies_copied_and_measures_the_window() {
    use std::os::fd::AsRawFd;
    use zcsafe_kernel::errqueue::{read_one, ErrqueueRead};
    const PAGE: usize = 4096;
    const TRIALS: u32 = 200;
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    let one: libc::c_int = 1;
    // SAFETY: a valid fd and a c_int option value of its true size.
    let r = unsafe {
        libc::setsockopt(
            tx.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ZEROCOPY,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        let why = format!("SO_ZEROCOPY on UDP: {}", std::io::Error::last_os_error());
        zcsafe_kernel::skip::skipped("udp_msg_zerocopy_over_loopback", &why);
        return;
    }
    // One page-aligned page: a datagram's frags reference whole user pages.
    let mut backing = vec![0u8; 2 * PAGE];
    let off = backing.as_ptr().align_offset(PAGE);
    let page = &mut backing[off..off + PAGE];
    let mut got = vec![0u8; PAGE + 1];
    let (mut rewritten, mut copied, mut in_call) = (0u32, 0u32, 0u32);
    for i in 0..TRIALS {
        page.fill(0xAA);
        let p = page.as_ptr() as *const libc::c_void;
        // SAFETY: `p` is the mapping's first page, alive for the call (and after: the
        // kernel pins it until the notification).
        let n = unsafe { libc::send(tx.as_raw_fd(), p, PAGE, libc::MSG_ZEROCOPY) };
        assert_eq!(n, PAGE as isize, "{}", std::io::Error::last_os_error());
        // Already notified when send returned: the backlog was processed (and the frags
        // copied) inside the call, before the rewrite below.
        let early = read_one(tx.as_raw_fd()).unwrap();
        page.fill(0xBB);
        let len = rx.recv(&mut got).expect("the datagram arrives");
        assert_eq!(len, PAGE, "one whole datagram");
        let first = got[0];
        assert!(
            got[..PAGE].iter().all(|&b| b == first) && (first == 0xAA || first == 0xBB),
            "trial {i}: the datagram holds one of the two contents"
        );
        rewritten += (first == 0xBB) as u32;
        let notification = match early {
            ErrqueueRead::Notification(z) => {
                in_call += 1;
                z
            }
            ErrqueueRead::Empty => wait_notification(tx.as_raw_fd(), i),
            other => panic!("trial {i}: {other:?}"),
        };
        assert_eq!(
            (notification.lo, notification.hi),
            (i, i),
            "one counter per sendmsg"
        );
        copied += notification.copied as u32;
    }
    // `udp-zc-naive`'s pattern in a burst: two one-page slots, datagram k from slot
    // k % 2 filled with byte k, the slot rewritten two sends later; read after the burst
    // (32 pages fit the default receive buffer).
    const BURST: usize = 32;
    let mut slots = vec![0u8; 3 * PAGE];
    let off = slots.as_ptr().align_offset(PAGE);
    let slots = &mut slots[off..off + 2 * PAGE];
    for k in 0..BURST {
        let slot = &mut slots[(k % 2) * PAGE..(k % 2 + 1) * PAGE];
        slot.fill(k as u8);
        // SAFETY: the slot is alive and PAGE bytes long.
        let n = unsafe {
            libc::send(
                tx.as_raw_fd(),
                slot.as_ptr() as *const libc::c_void,
                PAGE,
                libc::MSG_ZEROCOPY,
            )
        };
        assert_eq!(n, PAGE as isize, "{}", std::io::Error::last_os_error());
    }
    let mut burst_wrong = 0;
    for k in 0..BURST {
        let len = rx.recv(&mut got).expect("the burst's datagram arrives");
        assert_eq!(len, PAGE);
        burst_wrong += (got[0] != k as u8) as u32;
    }
    eprintln!(
        "udp loopback MSG_ZEROCOPY: {rewritten}/{TRIALS} datagrams carried the rewrite, \
         {copied}/{TRIALS} notifications COPIED, {in_call}/{TRIALS} queued before send returned; burst of {BURST} over 2 slots: \
         {burst_wrong} wrong"
    );
    assert_eq!(copied, TRIALS, "loopback delivery copies every datagram");
}

/// Waits for POLLERR on `fd` (at most 5 s) and reads the notification of trial `i`.
fn wait_notification(fd: std::os::fd::RawFd, i: u32) -> zcsafe_policy::ZcNotification {
    let mut pfd = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, 5000) };
    assert_eq!(ready, 1, "trial {i}: the notification comes");
    match zcsafe_kernel::errqueue::read_one(fd).unwrap() {
        zcsafe_kernel::errqueue::ErrqueueRead::Notification(z) => z,
        other => panic!("trial {i}: {other:?}"),
    }
}
