//! UDP policies on the host kernel: a connected `SO_ZEROCOPY` UDP socket, a datagram per
//! chunk, reuses timed against the error queue, a verifying datagram receiver. What the
//! kernel does decides whether the window opens (loopback and veth copy on delivery inside
//! `sendmsg`; a tbf qdisc holds datagrams with their zero-copy frags), so these tests
//! assert that every verdict rests on what was measured, and where the window is forced
//! open (veth-slow), the verdicts themselves.

mod common;

use zcsafe_kernel::{default_geometry_for, try_run_policy, RunOptions, RunReport, Transport};
use zcsafe_policy::{SocketKind, TransportClass, Verdict};

/// Runs catalogue entry `name` over `transport` on its UDP geometry, with its
/// expectation and the model's local prediction weighed in: (raw report, judged verdict,
/// judged detail).
fn run_udp(name: &str, transport: Transport, seed: u64) -> (RunReport, Verdict, String) {
    let e = zcsafe_policies::find(name).expect(name);
    assert_eq!(e.pipeline.socket, SocketKind::Udp, "{name} declares UDP");
    let opts = RunOptions {
        transport,
        seed,
        repeat: 2,
        socket: e.pipeline.socket,
        geometry: default_geometry_for(SocketKind::Udp),
        ..RunOptions::default()
    };
    let r = try_run_policy(|g| e.build(g), e.name, &opts)
        .unwrap_or_else(|err| panic!("{name} over {transport} (seed {seed}): {err}"));
    let profile = zcsafe_policy::Profile::classic();
    let expected = e.expect_for(transport.class(), &profile, &opts.geometry);
    let predicted = match e.name {
        "udp-zc-naive" => Some(Verdict::Corrupt),
        _ => Some(Verdict::Safe),
    };
    let (v, detail) = r.judged(&expected, predicted);
    let s = r.sends().expect("a UDP run counts its sends");
    eprintln!(
        "{name:18} {:22} raw {:8} judged {:12} sends {} zerocopy {} notified {} copied {} fills-while-held {} reuses {} before-notification {} ({} ms)",
        transport.label(),
        r.verdict.name(),
        v.name(),
        s.datagrams,
        s.zerocopy,
        s.notified,
        s.copied,
        s.fills_while_held,
        r.exposure().reuses,
        r.exposure().reuses_while_unread,
        r.runs.iter().map(|x| x.elapsed_ms).sum::<u64>()
    );
    (r, v, detail)
}

/// What every UDP run must show whatever the window did: each datagram arrived once, in
/// order (no gap made the run inconclusive), every zero-copy send was notified once, and
/// the verdict follows the measured exposure — `inconclusive` exactly when the window
/// never opened, `corrupt` only with a reuse before its notification.
fn assert_follows_the_evidence(name: &str, transport: Transport, seed: u64) -> Verdict {
    let (r, v, detail) = run_udp(name, transport, seed);
    let s = r.sends().unwrap();
    for ev in &r.runs {
        let d = ev.datagrams.expect("the datagram receiver counted");
        let sent = ev.sends.unwrap().datagrams;
        assert_eq!(d.gap(sent), None, "{name} over {transport}: {}", ev.detail);
        assert_eq!(ev.bytes_received, ev.bytes_expected, "{}", ev.detail);
    }
    assert_eq!(s.zerocopy, s.datagrams, "every send went MSG_ZEROCOPY");
    assert_eq!(s.notified, s.zerocopy, "one notification per datagram");
    let x = r.exposure();
    match v {
        Verdict::Corrupt => assert!(
            x.reuses_while_unread > 0 && s.fills_while_held > 0,
            "{name} over {transport}: corrupt without a reuse before its notification: {detail}"
        ),
        Verdict::Safe => assert!(
            s.fills_while_held > 0 && x.reuses_while_unread == 0,
            "{name} over {transport}: safe needs the window open and no early reuse: {detail}"
        ),
        Verdict::Inconclusive => assert!(
            (s.fills_while_held == 0 || x.reuses_while_unread == 0) && detail.contains("never"),
            "{name} over {transport}: inconclusive must say what never happened: {detail}"
        ),
        other => panic!("{name} over {transport}: {other}: {detail}"),
    }
    if name == "udp-zc-completion" {
        assert_ne!(v, Verdict::Corrupt, "{detail}");
    }
    v
}

#[test]
fn udp_verdicts_follow_the_window_over_loopback_and_veth() {
    let _g = common::serial();
    for (i, transport) in [Transport::Loopback, Transport::Veth]
        .into_iter()
        .enumerate()
    {
        if common::skip(&format!("udp over {transport}"), &transport) {
            continue;
        }
        for name in ["udp-zc-naive", "udp-zc-completion"] {
            assert_follows_the_evidence(name, transport, 40 + i as u64);
        }
    }
    common::assert_no_namespaces_of_this_process();
}

/// A tbf qdisc on the sender's veth holds each datagram, its frags still the user's
/// pages (`tbf_enqueue`; `veth_xmit` forwards them uncopied, `SKBFL_DONT_ORPHAN`), until
/// the token bucket lets it through and the receiving namespace's
/// `__netif_receive_skb_core` copies them: the window forced open. The naive reuse is
/// then corrupt, and the notification-waiting one safe with the window seen open.
#[test]
fn behind_a_tbf_qdisc_udp_naive_corrupts_and_completion_is_safe() {
    let _g = common::serial();
    let slow = Transport::VethSlow { rate_kbit: 50_000 };
    if common::skip("udp over veth-slow", &slow) {
        return;
    }
    assert_eq!(
        assert_follows_the_evidence("udp-zc-naive", slow, 60),
        Verdict::Corrupt
    );
    assert_eq!(
        assert_follows_the_evidence("udp-zc-completion", slow, 61),
        Verdict::Safe
    );
    common::assert_no_namespaces_of_this_process();
}

/// Over `tun` the device copies the frags in `tun_net_xmit` (`skb_orphan_frags_rx`) and
/// zcsafe's peer reads the datagrams from the device: the remote class, and yet the
/// window shuts inside `sendmsg` — the verdict must say so, not contradict the model.
#[test]
fn udp_verdicts_follow_the_window_over_tun() {
    let _g = common::serial();
    let tun = Transport::Tun(Default::default());
    assert_eq!(tun.class(), TransportClass::Remote);
    if common::skip("udp over tun", &tun) {
        return;
    }
    for name in ["udp-zc-naive", "udp-zc-completion"] {
        assert_follows_the_evidence(name, tun, 70);
    }
    common::assert_no_namespaces_of_this_process();
}

#[test]
fn a_chunk_larger_than_a_datagram_is_refused_with_the_reason() {
    let e = zcsafe_policies::find("udp-zc-naive").unwrap();
    // The TCP default's 64 KiB chunk is no datagram.
    let opts = RunOptions {
        repeat: 1,
        socket: SocketKind::Udp,
        geometry: zcsafe_kernel::default_geometry(),
        ..RunOptions::default()
    };
    let err = try_run_policy(|g| e.build(g), e.name, &opts).unwrap_err();
    assert!(err.to_string().contains("65507"), "{err}");
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
