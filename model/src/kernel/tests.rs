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
    assert!(k.enabled(&s).contains(&Event::UringNotifFlush));
    k.fire(&s, Event::UringNotifFlush);
    let n = cqe(&mut k, &s);
    // io_notif_tw_complete: zc_copied || !zc_used — nothing was sent with zero copy.
    assert_eq!((n.user_data, n.notif, n.copied), (3, true, true), "{n:?}");
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
