//! Unit tests of the kernel state machine: single paths through operations and events
//! that pin down who holds a page and what the receiver reads.

use super::*;
use crate::config::Scenario;
use zcsafe_policy::{Cqe, Errno, Op, Profile, Region, ZcNotification};

fn scenario(t: TransportClass) -> Scenario {
    Scenario::standard(t, Profile::classic())
}

fn done(p: Perform) -> Outcome {
    match p {
        Perform::Done(o) => o,
        other => panic!("expected Done, got {other:?}"),
    }
}

/// Fill page 0 with stream page 0, vmsplice it and splice it to the socket.
fn spliced(s: &Scenario) -> Kernel {
    let mut k = Kernel::new(s);
    done(k.perform(
        s,
        &Op::Fill {
            buf: Region::new(0, 1),
            stream: 0,
        },
    ));
    assert_eq!(
        done(k.perform(
            s,
            &Op::Vmsplice {
                buf: Region::new(0, 1),
                gift: false
            }
        )),
        Outcome::Done(1)
    );
    assert_eq!(
        k.perform(
            s,
            &Op::Vmsplice {
                buf: Region::new(1, 1),
                gift: false
            }
        ),
        Perform::Blocked,
        "1-page pipe is full"
    );
    assert_eq!(done(k.perform(s, &Op::Splice { len: 1 })), Outcome::Done(1));
    k
}

#[test]
fn local_delivery_keeps_spliced_pages_until_the_reader_reads() {
    let s = scenario(TransportClass::Local);
    let mut k = spliced(&s);
    for ev in [Event::Transmit, Event::Deliver, Event::Ack] {
        assert!(k.enabled(&s).contains(&ev), "{ev:?} enabled");
        assert_eq!(k.fire(&s, ev), None);
    }
    assert_eq!(k.sock.outq(), 0, "acknowledged");
    assert_eq!(k.holders(DataRef::User(0)), vec![Holder::PeerQueue]);
    done(k.perform(
        &s,
        &Op::Fill {
            buf: Region::new(0, 1),
            stream: 7,
        },
    ));
    assert_eq!(
        k.fire(&s, Event::Read),
        Some(Corruption {
            offset: 0,
            meant_for: Some(7)
        })
    );
}

#[test]
fn a_remote_nic_reads_the_page_at_dma_time() {
    let s = scenario(TransportClass::Remote);
    let mut k = spliced(&s);
    k.fire(&s, Event::Transmit);
    assert_eq!(
        k.holders(DataRef::User(0)),
        vec![Holder::Retransmit, Holder::DeviceRing]
    );
    k.fire(&s, Event::DeviceComplete);
    k.fire(&s, Event::Deliver);
    k.fire(&s, Event::Ack);
    assert!(
        k.holders(DataRef::User(0)).is_empty(),
        "ACKed and DMAed: nobody holds it"
    );
    done(k.perform(
        &s,
        &Op::Fill {
            buf: Region::new(0, 1),
            stream: 7,
        },
    ));
    assert_eq!(k.fire(&s, Event::Read), None);
}

#[test]
fn a_retransmission_reads_the_page_again() {
    let s = scenario(TransportClass::Remote);
    let mut k = spliced(&s);
    k.fire(&s, Event::Transmit);
    k.fire(&s, Event::DeviceComplete);
    k.fire(&s, Event::Lose);
    done(k.perform(
        &s,
        &Op::Fill {
            buf: Region::new(0, 1),
            stream: 9,
        },
    ));
    assert!(k.enabled(&s).contains(&Event::Retransmit));
    k.fire(&s, Event::Retransmit);
    delivered_and_read_as(&mut k, &s, 9);
}

/// The device's next clone reaches the peer, whose read of stream page 0 finds the bytes
/// of stream page `meant_for`.
fn delivered_and_read_as(k: &mut Kernel, s: &Scenario, meant_for: u64) {
    k.fire(s, Event::DeviceComplete);
    k.fire(s, Event::Deliver);
    assert_eq!(
        k.fire(s, Event::Read),
        Some(Corruption {
            offset: 0,
            meant_for: Some(meant_for)
        })
    );
}

#[test]
fn zerocopy_frags_are_copied_on_local_delivery_and_notified_as_copied() {
    let s = scenario(TransportClass::Local);
    let mut k = Kernel::new(&s);
    done(k.perform(&s, &Op::EnableZerocopy));
    done(k.perform(
        &s,
        &Op::Fill {
            buf: Region::new(0, 1),
            stream: 0,
        },
    ));
    done(k.perform(
        &s,
        &Op::Send {
            buf: Region::new(0, 1),
            zerocopy: true,
        },
    ));
    k.fire(&s, Event::Transmit);
    k.fire(&s, Event::Deliver);
    assert_eq!(
        k.holders(DataRef::User(0)),
        vec![Holder::Retransmit],
        "the peer holds a copy"
    );
    assert_eq!(
        k.perform(&s, &Op::ReadErrqueue { block: true }),
        Perform::Blocked,
        "not ACKed yet"
    );
    k.fire(&s, Event::Ack);
    let n = done(k.perform(&s, &Op::ReadErrqueue { block: true }));
    assert_eq!(
        n,
        Outcome::Zc(Some(zcsafe_policy::ZcNotification {
            lo: 0,
            hi: 0,
            copied: true
        }))
    );
}

/// `s` behind a TUN device, with a `MSG_ZEROCOPY` send of stream page 0 from `buf[0]`
/// queued.
fn zerocopy_queued_behind_tun() -> (Scenario, Kernel) {
    let s = scenario(TransportClass::Remote).with_device(zcsafe_policy::RemoteDevice::Tun);
    let mut k = Kernel::new(&s);
    done(k.perform(&s, &Op::EnableZerocopy));
    let fill = Op::Fill {
        buf: Region::new(0, 1),
        stream: 0,
    };
    done(k.perform(&s, &fill));
    let send = Op::Send {
        buf: Region::new(0, 1),
        zerocopy: true,
    };
    assert_eq!(done(k.perform(&s, &send)), Outcome::Done(1));
    (s, k)
}

/// tun_net_xmit → skb_orphan_frags_rx: a TUN device copies the clone's zero-copy frags
/// when the segment is queued on it, so a rewrite after transmission reaches neither
/// the device's read nor the peer; only the retransmit queue still holds the page, and
/// the notification says COPIED. A NIC reads the rewritten page at TX completion.
#[test]
fn a_tun_device_copies_zerocopy_frags_at_transmission() {
    let (s, mut k) = zerocopy_queued_behind_tun();
    k.fire(&s, Event::Transmit);
    assert_eq!(k.holders(DataRef::User(0)), vec![Holder::Retransmit]);
    assert_eq!(
        k.net.ring[0].notif, None,
        "the ring's clone lets go of the notif"
    );
    let rewrite = Op::Fill {
        buf: Region::new(0, 1),
        stream: 2,
    };
    done(k.perform(&s, &rewrite));
    for ev in [Event::DeviceComplete, Event::Deliver, Event::Ack] {
        assert_eq!(k.fire(&s, ev), None, "{ev:?}");
    }
    assert_eq!(
        k.fire(&s, Event::Read),
        None,
        "the peer has page 0's own bytes"
    );
    let n = done(k.perform(&s, &Op::ReadErrqueue { block: true }));
    assert_eq!(
        n,
        Outcome::Zc(Some(ZcNotification {
            lo: 0,
            hi: 0,
            copied: true
        }))
    );

    // The same steps behind a NIC: the DMA reads the rewritten page.
    let nic = scenario(TransportClass::Remote);
    let mut k = Kernel::new(&nic);
    done(k.perform(&nic, &Op::EnableZerocopy));
    for op in [
        Op::Fill {
            buf: Region::new(0, 1),
            stream: 0,
        },
        Op::Send {
            buf: Region::new(0, 1),
            zerocopy: true,
        },
    ] {
        done(k.perform(&nic, &op));
    }
    k.fire(&nic, Event::Transmit);
    done(k.perform(&nic, &rewrite));
    delivered_and_read_as(&mut k, &nic, 2);
}

/// Behind a TUN device a rewrite is still seen twice over: before transmission (the
/// write queue holds the user's page) and by a retransmission, which copies the page
/// again as tun_net_xmit queues the new clone. And tun_net_xmit orphans the clone
/// (`skb_orphan`), so the retransmission need not wait for the peer to read the first.
#[test]
fn behind_tun_a_queued_or_retransmitted_page_is_read_as_it_is_then() {
    let (s, mut k) = zerocopy_queued_behind_tun();
    k.fire(&s, Event::Transmit);
    let rewrite = Op::Fill {
        buf: Region::new(0, 1),
        stream: 4,
    };
    done(k.perform(&s, &rewrite));
    assert!(
        k.enabled(&s).contains(&Event::Retransmit),
        "a spurious RTO while the first clone still waits on the device's ring"
    );
    k.fire(&s, Event::Retransmit);
    assert_eq!(k.net.ring.len(), 2, "both clones wait to be read");
    k.fire(&s, Event::DeviceComplete);
    k.fire(&s, Event::Lose);
    // The retransmission's copy was taken after the rewrite.
    delivered_and_read_as(&mut k, &s, 4);

    let (s, mut k) = zerocopy_queued_behind_tun();
    done(k.perform(&s, &rewrite));
    k.fire(&s, Event::Transmit);
    assert_eq!(
        k.net.ring[0].data,
        DataRef::Copied(crate::memory::Content::unit(4)),
        "a page rewritten in the write queue is copied as it is"
    );
}

/// vmsplice'd pages are no zero-copy frags (`skb_zcopy` is false): a TUN device leaves
/// them to `tun_put_user`, when the peer reads the fd — the NIC's TX completion.
#[test]
fn behind_tun_spliced_pages_are_read_when_the_peer_reads_the_device() {
    let s = scenario(TransportClass::Remote).with_device(zcsafe_policy::RemoteDevice::Tun);
    let mut k = spliced(&s);
    k.fire(&s, Event::Transmit);
    assert_eq!(
        k.holders(DataRef::User(0)),
        vec![Holder::Retransmit, Holder::DeviceRing]
    );
}

#[test]
fn siocoutq_polls_answer_only_on_change() {
    let s = scenario(TransportClass::Remote);
    let mut k = spliced(&s);
    assert_eq!(done(k.perform(&s, &Op::Siocoutq)), Outcome::Done(1));
    assert_eq!(k.perform(&s, &Op::Siocoutq), Perform::Blocked);
    for ev in [
        Event::Transmit,
        Event::DeviceComplete,
        Event::Deliver,
        Event::Ack,
    ] {
        k.fire(&s, ev);
    }
    assert_eq!(done(k.perform(&s, &Op::Siocoutq)), Outcome::Done(0));
}

#[test]
fn munmap_freezes_what_the_kernel_holds() {
    let s = scenario(TransportClass::Local);
    let mut k = spliced(&s);
    done(k.perform(
        &s,
        &Op::Munmap {
            buf: Region::new(0, 1),
        },
    ));
    assert!(
        k.holders(DataRef::User(0)).is_empty(),
        "the kernel now holds an unreachable page"
    );
    done(k.perform(
        &s,
        &Op::Mmap {
            buf: Region::new(0, 1),
        },
    ));
    done(k.perform(
        &s,
        &Op::Fill {
            buf: Region::new(0, 1),
            stream: 4,
        },
    ));
    for ev in [Event::Transmit, Event::Deliver] {
        k.fire(&s, ev);
    }
    assert_eq!(
        k.fire(&s, Event::Read),
        None,
        "fresh pages do not alias the old ones"
    );
}

#[test]
fn copying_profiles_do_not_alias() {
    let s = Scenario::standard(TransportClass::Local, Profile::copying_splice());
    let mut k = spliced(&s);
    k.fire(&s, Event::Transmit);
    k.fire(&s, Event::Deliver);
    done(k.perform(
        &s,
        &Op::Fill {
            buf: Region::new(0, 1),
            stream: 3,
        },
    ));
    assert_eq!(k.fire(&s, Event::Read), None);
    assert_eq!(
        done(k.perform(
            &s,
            &Op::Vmsplice {
                buf: Region::new(0, 1),
                gift: true
            }
        )),
        Outcome::Err(Errno::OpNotSupp)
    );
}

#[test]
fn send_blocks_when_the_send_buffer_is_full() {
    let s = scenario(TransportClass::Remote);
    let mut k = Kernel::new(&s);
    done(k.perform(
        &s,
        &Op::Send {
            buf: Region::new(0, 2),
            zerocopy: false,
        },
    ));
    assert_eq!(
        k.perform(
            &s,
            &Op::Send {
                buf: Region::new(0, 1),
                zerocopy: false
            }
        ),
        Perform::Blocked
    );
}

fn cqe(k: &mut Kernel, s: &Scenario) -> Cqe {
    match done(k.perform(s, &Op::UringWaitCqe)) {
        Outcome::Cqe(c) => c,
        o => panic!("expected a CQE, got {o}"),
    }
}

fn send_zc(k: &mut Kernel, s: &Scenario, buf: Region, user_data: u32) {
    done(k.perform(
        s,
        &Op::UringSendZc {
            buf,
            user_data,
            opcode: Default::default(),
            link_timeout: None,
        },
    ));
}

/// io_send_zc → io_req_set_res(req, ret, IORING_CQE_F_MORE) for every result, and the
/// notif flushed right there (`io_notif_flush`): a SEND_ZC past prep always promises
/// a NOTIF, even when it failed with -EFAULT and queued nothing.
#[test]
fn a_send_zc_that_faults_still_has_f_more_and_a_later_copied_notif() {
    let s = scenario(TransportClass::Remote);
    let mut k = Kernel::new(&s);
    let page = Region::new(0, 1);
    done(k.perform(&s, &Op::Munmap { buf: page }));
    send_zc(&mut k, &s, page, 3);
    k.fire(&s, Event::UringExec(0));
    let c = cqe(&mut k, &s);
    assert_eq!((c.res, c.more, c.notif), (-14, true, false), "{c:?}");
    assert_eq!(
        k.perform(&s, &Op::UringWaitCqe),
        Perform::Blocked,
        "NOTIF later"
    );
    flushed_notif_is_copied(&mut k, &s, 3);
}

/// The notif of a request that queued nothing, flushed from task work: COPIED, since
/// `io_notif_tw_complete` reports `zc_copied || !zc_used` and nothing went out with zero
/// copy.
fn flushed_notif_is_copied(k: &mut Kernel, s: &Scenario, user_data: u32) {
    assert!(k.enabled(s).contains(&Event::UringNotifFlush));
    k.fire(s, Event::UringNotifFlush);
    let n = cqe(k, s);
    assert_eq!(
        (n.user_data, n.notif, n.copied),
        (user_data, true, true),
        "{n:?}"
    );
}

/// A request that faults on its second page sent the first: res < len, F_MORE, and
/// the NOTIF waits for that page.
#[test]
fn a_send_zc_that_faults_midway_completes_short_and_holds_what_it_queued() {
    let mut s = scenario(TransportClass::Remote);
    s.geometry.chunk = 2;
    let mut k = Kernel::new(&s);
    done(k.perform(
        &s,
        &Op::Munmap {
            buf: Region::new(1, 1),
        },
    ));
    send_zc(&mut k, &s, Region::new(0, 2), 4);
    k.fire(&s, Event::UringExec(0));
    let c = cqe(&mut k, &s);
    assert_eq!((c.res, c.more), (1, true), "{c:?}");
    assert_eq!(k.holders(DataRef::User(0)), vec![Holder::WriteQueue]);
    assert_eq!(k.perform(&s, &Op::UringWaitCqe), Perform::Blocked);
}

/// Without MSG_WAITALL, `min_ret` is 0: a SEND_ZC that finds room for part of its
/// buffer (MSG_DONTWAIT on the first, non-blocking issue) completes short.
#[test]
fn a_send_zc_without_waitall_completes_short_when_the_socket_fills() {
    let mut s = scenario(TransportClass::Remote);
    s.geometry.chunk = 2;
    s.config.uring_waitall = false;
    let mut k = Kernel::new(&s);
    send_zc(&mut k, &s, Region::new(0, 1), 1);
    k.fire(&s, Event::UringExec(0));
    assert_eq!(cqe(&mut k, &s).res, 1);
    send_zc(&mut k, &s, Region::new(0, 2), 2);
    assert!(
        k.enabled(&s).contains(&Event::UringExec(0)),
        "one page of room is enough to run"
    );
    k.fire(&s, Event::UringExec(0));
    let c = cqe(&mut k, &s);
    assert_eq!((c.res, c.more), (1, true), "short: 1 of 2 pages");
    // With MSG_WAITALL (the kernel executor's flags) it waits for the whole buffer.
    let mut w = s.clone();
    w.config.uring_waitall = true;
    let mut k = Kernel::new(&w);
    send_zc(&mut k, &w, Region::new(0, 1), 1);
    k.fire(&w, Event::UringExec(0));
    send_zc(&mut k, &w, Region::new(0, 2), 2);
    assert!(!k
        .enabled(&w)
        .iter()
        .any(|e| matches!(e, Event::UringExec(_))));
}

/// tcp_rcv_space_adjust runs after a read and only when SO_RCVBUF did not lock the
/// buffer; the wider window is advertised at once.
#[test]
fn autotuning_grows_the_window_after_a_read() {
    let mut s = scenario(TransportClass::Local);
    s.config.rcvbuf = 1;
    s.config.autotune = Some(2);
    let mut k = spliced(&s);
    assert!(
        !k.enabled(&s).contains(&Event::Autotune),
        "nothing read yet"
    );
    for ev in [Event::Transmit, Event::Deliver, Event::Ack] {
        k.fire(&s, ev);
    }
    assert_eq!(k.sock.snd_wnd, 0, "a one-page window, full");
    k.fire(&s, Event::Read);
    assert!(k.enabled(&s).contains(&Event::Autotune));
    k.fire(&s, Event::Autotune);
    assert_eq!(k.net.ack, Some((1, 2)), "the grown window, advertised");
    assert!(!k.enabled(&s).contains(&Event::Autotune), "grown once");
    let mut locked = s.clone();
    locked.config.autotune = None;
    let mut k = spliced(&locked);
    for ev in [Event::Transmit, Event::Deliver, Event::Ack, Event::Read] {
        k.fire(&locked, ev);
    }
    assert!(
        !k.enabled(&locked).contains(&Event::Autotune),
        "SO_RCVBUF locks it"
    );
}

/// io_send → `tcp_sendmsg_locked`: a plain io_uring SEND with `MSG_ZEROCOPY` on an
/// `SO_ZEROCOPY` socket queues the user's pages and posts one CQE without `F_MORE`;
/// the release is a notification on the error queue, never a CQE (glommio#46). Without
/// `SO_ZEROCOPY` the flag is ignored and the bytes are copied.
#[test]
fn a_plain_uring_send_with_msg_zerocopy_releases_through_the_errqueue() {
    let s = scenario(TransportClass::Remote);
    let page = Region::new(0, 1);
    for so_zerocopy in [true, false] {
        let mut k = Kernel::new(&s);
        done(k.perform(
            &s,
            &Op::Fill {
                buf: page,
                stream: 0,
            },
        ));
        if so_zerocopy {
            done(k.perform(&s, &Op::EnableZerocopy));
        }
        let send = Op::UringSend {
            buf: page,
            user_data: 5,
            msg_zerocopy: true,
        };
        done(k.perform(&s, &send));
        assert_eq!(k.holders(DataRef::User(0)), vec![Holder::UringSubmission]);
        k.fire(&s, Event::UringExec(0));
        let c = cqe(&mut k, &s);
        assert_eq!((c.user_data, c.res, c.more, c.notif), (5, 1, false, false));
        assert_eq!(
            k.perform(&s, &Op::UringWaitCqe),
            Perform::Blocked,
            "one CQE"
        );
        let held = if so_zerocopy {
            vec![Holder::WriteQueue]
        } else {
            vec![]
        };
        assert_eq!(
            k.holders(DataRef::User(0)),
            held,
            "SO_ZEROCOPY {so_zerocopy}"
        );
        // Let the kernel run until nothing holds the page: the release shows up on the
        // error queue exactly when the pages were the user's.
        for _ in 0..64 {
            if k.holders(DataRef::User(0)).is_empty() {
                break;
            }
            let Some(&e) = k.enabled(&s).first() else {
                break;
            };
            k.fire(&s, e);
        }
        assert!(k.holders(DataRef::User(0)).is_empty());
        let errqueue = done(k.perform(&s, &Op::ReadErrqueue { block: false }));
        let want = so_zerocopy.then_some(ZcNotification {
            lo: 0,
            hi: 0,
            copied: false,
        });
        assert_eq!(errqueue, Outcome::Zc(want), "SO_ZEROCOPY {so_zerocopy}");
        assert_eq!(k.perform(&s, &Op::UringWaitCqe), Perform::Blocked);
    }
}

/// The standard scenario on a UDP socket.
fn udp(t: TransportClass) -> Scenario {
    let mut s = scenario(t);
    s.on_socket(zcsafe_policy::SocketKind::Udp);
    s
}

/// The error queue's next notification is send `id` alone, COPIED or not.
fn assert_next_notification(s: &Scenario, k: &mut Kernel, id: u32, copied: bool) {
    assert_eq!(
        done(k.perform(s, &Op::ReadErrqueue { block: false })),
        Outcome::Zc(Some(ZcNotification {
            lo: id,
            hi: id,
            copied
        }))
    );
}

/// SO_ZEROCOPY, then fill page `p` with stream page `p` and send it with MSG_ZEROCOPY.
fn udp_sent(s: &Scenario, pages: u16) -> Kernel {
    let mut k = Kernel::new(s);
    assert_eq!(done(k.perform(s, &Op::EnableZerocopy)), Outcome::Ok);
    for p in 0..pages {
        let buf = Region::new(p as u64, 1);
        done(k.perform(
            s,
            &Op::Fill {
                buf,
                stream: p as u64,
            },
        ));
        let sent = k.perform(
            s,
            &Op::Send {
                buf,
                zerocopy: true,
            },
        );
        assert_eq!(done(sent), Outcome::Done(1));
    }
    k
}

#[test]
fn udp_datagram_leaves_at_once_and_is_released_at_tx_completion() {
    let s = udp(TransportClass::Remote);
    let mut k = udp_sent(&s, 2);
    // udp_send_skb: no write or retransmit queue; the skb is in the device ring.
    assert!(k.sock.write_queue.is_empty() && k.sock.rtx.is_empty());
    assert_eq!(k.holders(DataRef::User(0)), vec![Holder::DeviceRing]);
    // sk_wmem_alloc holds both; a third datagram waits for room (sock_alloc_send_pskb).
    assert_eq!(k.sock.outq(), 2);
    let third = Op::Send {
        buf: Region::new(0, 1),
        zerocopy: true,
    };
    assert_eq!(k.perform(&s, &third), Perform::Blocked);
    // One ubuf_info per sendmsg: two outstanding, nothing on the error queue yet.
    assert_eq!(k.zc.uargs.len(), 2);
    assert_eq!(
        k.enabled(&s),
        vec![Event::DeviceComplete],
        "no transmit, ACK or timer"
    );
    assert_eq!(k.fire(&s, Event::DeviceComplete), None);
    assert_eq!(
        k.sock.outq(),
        1,
        "TX completion gave the first datagram back"
    );
    assert!(k.holders(DataRef::User(0)).is_empty());
    assert_next_notification(&s, &mut k, 0, false);
    // Delivered and read: no ACK comes back.
    assert_eq!(k.fire(&s, Event::Deliver), None);
    assert_eq!(k.net.ack, None);
    assert_eq!(k.fire(&s, Event::Read), None);
}

#[test]
fn udp_local_delivery_copies_and_a_reuse_before_it_corrupts() {
    let s = udp(TransportClass::Local);
    let mut k = udp_sent(&s, 1);
    // The datagram waits in the backlog with the user's page in its frags.
    assert_eq!(k.holders(DataRef::User(0)), vec![Holder::Wire]);
    assert_eq!(k.sock.outq(), 1);
    done(k.perform(
        &s,
        &Op::Fill {
            buf: Region::new(0, 1),
            stream: 2,
        },
    ));
    // __netif_receive_skb_core → skb_orphan_frags_rx copies what the page holds now.
    assert_eq!(k.fire(&s, Event::Deliver), None);
    assert_eq!(k.sock.outq(), 0, "ip_rcv_core's skb_orphan");
    assert!(k.holders(DataRef::User(0)).is_empty());
    assert_next_notification(&s, &mut k, 0, true);
    assert_eq!(
        k.fire(&s, Event::Read),
        Some(Corruption {
            offset: 0,
            meant_for: Some(2)
        })
    );
}

#[test]
fn udp_scenarios_lose_nothing_and_open_no_retransmission() {
    let mut s = udp(TransportClass::Remote);
    assert_eq!((s.config.losses, s.config.spurious_rto), (0, 0));
    assert!(s.config.zc_optmem as u64 > s.config.sndbuf);
    assert_eq!(s.validate(), Ok(()));
    let mut k = udp_sent(&s, 1);
    let marks = k.take_marks();
    // The model's NIC never copies: only local delivery opens COPIED.
    assert!(!marks.opened.contains(Hazard::Copied));
    let local = udp(TransportClass::Local);
    assert!(udp_sent(&local, 1)
        .take_marks()
        .opened
        .contains(Hazard::Copied));
    assert!(!marks.opened.contains(Hazard::Retransmission));
    assert!(!marks.opened.contains(Hazard::OutOfOrderCompletion));
    s.config.losses = 1;
    assert_eq!(s.validate(), Err(crate::config::ScenarioError::UdpLoss));
}

/// Transmits, delivers, reads and acknowledges everything queued (the remote class).
fn drain(k: &mut Kernel, s: &Scenario) {
    let moves = [
        Event::Transmit,
        Event::DeviceComplete,
        Event::Deliver,
        Event::Read,
        Event::Ack,
    ];
    while let Some(ev) = moves.into_iter().find(|e| k.enabled(s).contains(e)) {
        k.fire(s, ev);
    }
}

/// Nothing on the completion queue: a wait for a CQE blocks.
fn no_cqe_yet(k: &mut Kernel, s: &Scenario, why: &str) {
    assert_eq!(k.perform(s, &Op::UringWaitCqe), Perform::Blocked, "{why}");
}

/// Two slots of two-page sends and a send buffer of three pages, as the liburing-643
/// fixture has them.
fn two_page_sends(s: &mut Scenario) {
    (s.geometry.chunk, s.geometry.buffer) = (2, 4);
    s.config.sndbuf = 3;
}

/// A 2-page `SEND_ZC` with a linked timeout (tag 9) on a socket with room for one page.
fn linked_send_with_room_for_one(s: &mut Scenario) -> Kernel {
    two_page_sends(s);
    s.config.uring_link_timeouts = 1;
    let mut k = Kernel::new(s);
    for p in 0..4 {
        done(k.perform(
            s,
            &Op::Fill {
                buf: Region::new(p, 1),
                stream: p,
            },
        ));
    }
    // Two pages of an earlier plain send take two of the three pages of sndbuf.
    done(k.perform(
        s,
        &Op::Send {
            buf: Region::new(0, 2),
            zerocopy: false,
        },
    ));
    done(k.perform(
        s,
        &Op::UringSendZc {
            buf: Region::new(2, 2),
            user_data: 8,
            opcode: Default::default(),
            link_timeout: Some(9),
        },
    ));
    k
}

/// io_send_zc with MSG_WAITALL: `ret > 0 && io_net_retry` queues what fits (`done_io`,
/// `REQ_F_PARTIAL_IO`) and waits for the rest; no CQE yet, and the notif — not yet
/// flushed — does not complete when the queued page is freed.
#[test]
fn a_linked_send_zc_part_queues_and_posts_nothing_until_done() {
    let mut s = scenario(TransportClass::Remote);
    let mut k = linked_send_with_room_for_one(&mut s);
    assert!(
        k.enabled(&s).contains(&Event::UringExec(0)),
        "room for 1 page is enough"
    );
    k.fire(&s, Event::UringExec(0));
    assert_eq!(k.zc.sq.len(), 1, "still pending");
    assert_eq!((k.zc.sq[0].done, k.zc.sq[0].buf), (1, Region::new(3, 1)));
    assert!(k.holders(DataRef::User(2)).contains(&Holder::WriteQueue));
    no_cqe_yet(&mut k, &s, "a part-queued send posts nothing");
    // Everything queued so far leaves the host and is acknowledged.
    drain(&mut k, &s);
    assert!(
        k.holders(DataRef::User(2)).is_empty(),
        "page 2 acknowledged"
    );
    no_cqe_yet(&mut k, &s, "no NOTIF before the request completes");
    // The rest fits now: one send CQE for both parts, then the disarmed timeout's.
    k.fire(&s, Event::UringExec(0));
    let c = cqe(&mut k, &s);
    assert_eq!((c.user_data, c.res, c.more), (8, 2, true), "{c:?}");
    // The disarmed timeout's CQE comes from task work: a later move, which the NOTIF
    // may precede.
    assert_eq!(k.perform(&s, &Op::UringWaitCqe), Perform::Blocked);
    assert!(k.enabled(&s).contains(&Event::UringTimeoutDisarmed));
    k.fire(&s, Event::UringTimeoutDisarmed);
    let t = cqe(&mut k, &s);
    assert_eq!((t.user_data, t.res, t.more), (9, -125, false), "{t:?}");
}

/// io_link_timeout_fn → io_req_task_link_timeout → io_try_cancel: the timeout's CQE is
/// -ETIME, the send's `done_io` with F_MORE (io_sendrecv_fail), and the NOTIF
/// (io_send_zc_cleanup → io_notif_flush) only once the queued page is let go.
#[test]
fn a_linked_timeout_cancels_a_part_queued_send_and_its_notif_waits_for_the_page() {
    let mut s = scenario(TransportClass::Remote);
    let mut k = linked_send_with_room_for_one(&mut s);
    k.fire(&s, Event::UringExec(0));
    assert!(k.enabled(&s).contains(&Event::UringLinkTimeout(0)));
    k.fire(&s, Event::UringLinkTimeout(0));
    assert!(k.zc.sq.is_empty());
    assert!(
        !k.enabled(&s).contains(&Event::UringLinkTimeout(0)),
        "one timer budgeted"
    );
    let t = cqe(&mut k, &s);
    assert_eq!((t.user_data, t.res, t.more), (9, -62, false), "{t:?}");
    let c = cqe(&mut k, &s);
    assert_eq!(
        (c.user_data, c.res, c.more, c.notif),
        (8, 1, true, false),
        "{c:?}"
    );
    assert!(
        k.holders(DataRef::User(2)).contains(&Holder::WriteQueue),
        "the cancelled send's page is still queued"
    );
    assert!(
        k.holders(DataRef::User(3)).is_empty(),
        "the unsent page is free"
    );
    no_cqe_yet(&mut k, &s, "no NOTIF yet");
    drain(&mut k, &s);
    let n = cqe(&mut k, &s);
    assert_eq!((n.user_data, n.notif, n.copied), (8, true, false), "{n:?}");
}

/// A timeout that fires before the send queued anything: -ECANCELED with F_MORE, and
/// a NOTIF flushed at once, COPIED (nothing went out with zero copy).
#[test]
fn a_linked_timeout_before_the_send_ran_gives_ecanceled_and_a_copied_notif() {
    let mut s = scenario(TransportClass::Remote);
    let mut k = linked_send_with_room_for_one(&mut s);
    k.fire(&s, Event::UringLinkTimeout(0));
    assert_eq!(cqe(&mut k, &s).res, -62);
    let c = cqe(&mut k, &s);
    assert_eq!((c.res, c.more), (-125, true), "{c:?}");
    flushed_notif_is_copied(&mut k, &s, 8);
}

/// Without a linked timeout nothing changes: the request waits for room for all of it.
#[test]
fn an_unlinked_send_zc_still_waits_for_room_for_the_whole_request() {
    let mut s = scenario(TransportClass::Remote);
    two_page_sends(&mut s);
    let mut k = Kernel::new(&s);
    done(k.perform(
        &s,
        &Op::Send {
            buf: Region::new(0, 2),
            zerocopy: false,
        },
    ));
    send_zc(&mut k, &s, Region::new(2, 2), 8);
    assert!(!k.enabled(&s).contains(&Event::UringExec(0)));
}
