//! Asynchronous kernel events: transmit, device completion, the network, ACKs, timers,
//! the receiving reader and io_uring's own work. Each rule cites the kernel function
//! it encodes.

use super::{Corruption, Event, Kernel};
use crate::config::Scenario;
use crate::memory::{Content, DataRef};
use crate::socket::{Notif, Segment};
use crate::zerocopy::{Sqe, SqeKind};
use zcsafe_policy::{Cqe, Hazard, Region};

impl Kernel {
    /// Executes an enabled event. Returns the corruption the receiver saw, if any.
    pub fn fire(&mut self, s: &Scenario, ev: Event) -> Option<Corruption> {
        let r = self.fire_inner(s, ev);
        self.sweep(s);
        r
    }

    fn fire_inner(&mut self, s: &Scenario, ev: Event) -> Option<Corruption> {
        let cfg = &s.config;
        let local = Self::local(s);
        match ev {
            Event::Transmit => {
                // tcp_write_xmit → tcp_transmit_skb: the original moves to the rtx queue,
                // a clone (sharing the frags) goes down the stack.
                let seg = self.sock.write_queue.pop_front().expect("enabled");
                self.sock.rtx.push_back(seg);
                self.sock.snd_nxt += 1;
                self.send_clone(s, seg);
            }
            Event::DeviceComplete => {
                // The NIC DMAs the pages; TX completion frees the clone (napi_consume_skb).
                let seg = self.net.ring.pop_front().expect("enabled");
                // UDP: the ring held the datagram itself, so freeing it runs sock_wfree
                // (sk_wmem_alloc, SIOCOUTQ) and skb_release_data → skb_zcopy_clear →
                // msg_zerocopy_callback: the notification (the sweep queues it).
                if Self::udp(s) {
                    self.sock.snd_una += 1;
                }
                let data = DataRef::Copied(self.mem.read(seg.data));
                self.net.wire.push_back(Segment {
                    data,
                    notif: None,
                    ..seg
                });
            }
            Event::Deliver => {
                let mut seg = self.net.wire.pop_front().expect("enabled");
                // __netif_receive_skb_core → skb_orphan_frags_rx: zero-copy frags are
                // copied (skb_copy_ubufs, the notif's COPIED) before the IP handler, so
                // before a local socket may keep them. Not earlier: veth's
                // ____dev_forward_skb calls skb_orphan_frags, a no-op because
                // msg_zerocopy_alloc and io_alloc_notif set SKBFL_DONT_ORPHAN — until
                // this point (the wire, loopback's and veth's backlog) the clone still
                // references the user's pages. 6.1 and 6.12 alike.
                if let (true, Some(n)) = (local && cfg.profile.zerocopy_local_copies, seg.notif) {
                    self.zc.mark_copied(n);
                    seg.data = DataRef::Copied(self.mem.read(seg.data));
                    seg.notif = None;
                }
                // udp_rcv → __udp_enqueue_schedule_skb: the datagram joins the receive
                // queue, no ACK. It drops a datagram past sk_rcvbuf; the model's UDP
                // scenarios assume a receive buffer that holds every datagram in flight
                // (no loss, Scenario::validate), so the stream check sees no gaps.
                if Self::udp(s) {
                    // ip_rcv_core's skb_orphan gives sk_wmem_alloc back (local only: a
                    // remote datagram was given back at TX completion).
                    if local {
                        self.sock.snd_una += 1;
                    }
                    self.peer.queue.push_back((seg.seq, seg.data, seg.notif));
                    self.peer.rcv_nxt += 1;
                    return None;
                }
                // tcp_rcv_established / tcp_data_queue: in-order data is queued (page
                // references and all); duplicates and out-of-order data are dropped here
                // (the model has no out-of-order queue) and re-ACKed.
                if seg.seq == self.peer.rcv_nxt && self.peer.queue.len() < self.peer.rcvbuf as usize
                {
                    self.peer.queue.push_back((seg.seq, seg.data, seg.notif));
                    self.peer.rcv_nxt += 1;
                }
                let wnd = self.peer.window();
                self.peer.last_wnd = wnd;
                self.net.ack = Some((self.peer.rcv_nxt, wnd));
            }
            Event::Lose => {
                self.net.wire.pop_front();
                self.net.losses += 1;
            }
            Event::Ack => {
                let (ack, wnd) = self.net.ack.take().expect("enabled");
                self.sock.ack(ack, wnd);
            }
            Event::Retransmit => {
                // tcp_retransmit_timer → tcp_retransmit_skb: a new clone of the same
                // frags — the pages are read again.
                let seg = *self.sock.rtx.front().expect("enabled");
                self.reach(Hazard::Retransmission);
                if self.mem.read(seg.data) != Content::unit(seg.seq as u64) {
                    self.reach(Hazard::RetransmitAfterReuse);
                }
                if !self.retransmit_needed(seg.seq) {
                    self.sock.retransmits += 1;
                }
                self.send_clone(s, seg);
            }
            Event::Read => {
                let (seq, data, _) = self.peer.queue.pop_front().expect("enabled");
                let got = self.mem.read(data);
                self.peer.consumed += 1;
                // tcp_cleanup_rbuf: a read that reopens a closed window sends an update.
                let wnd = self.peer.window();
                if self.peer.last_wnd == 0 && !Self::udp(s) {
                    self.peer.last_wnd = wnd;
                    self.net.ack = Some((self.peer.rcv_nxt, wnd));
                }
                if got != Content::unit(seq as u64) {
                    return Some(Corruption {
                        offset: seq as u64,
                        meant_for: got.stream_unit(),
                    });
                }
            }
            Event::PipeRead => {
                // pipe_read → copy_page_to_iter: the reader copies the page as it is now.
                let data = self.pipe.bufs.pop_front().expect("enabled");
                let seq = self.peer.consumed as u64;
                self.peer.consumed += 1;
                let got = self.mem.read(data);
                if got != Content::unit(seq) {
                    return Some(Corruption {
                        offset: seq,
                        meant_for: got.stream_unit(),
                    });
                }
            }
            Event::Autotune => {
                // tcp_rcv_space_adjust: sk_rcvbuf and window_clamp grow
                // (tcp_win_from_space of the new buffer); tcp_cleanup_rbuf sends a window
                // update once the window could double.
                let grown = cfg.autotune.expect("enabled");
                self.peer.rcvbuf = grown as u16;
                let wnd = self.peer.window();
                self.peer.last_wnd = wnd;
                self.net.ack = Some((self.peer.rcv_nxt, wnd));
            }
            Event::UringFail(i) => {
                // io_sendrecv_fail: a SEND_ZC that owns a notif (REQ_F_NEED_CLEANUP, set
                // by io_send_zc_prep) completes with IORING_CQE_F_MORE even on error;
                // io_send_zc_cleanup then flushes the notif, which posts its own CQE
                // later (6.1 and 6.12 alike).
                let sqe = self.zc.sq.remove(i as usize);
                self.zc.failures += 1;
                self.zc.cq.push_back(Cqe {
                    user_data: sqe.user_data,
                    res: -125, // ECANCELED
                    more: true,
                    notif: false,
                    copied: false,
                });
                self.zc.failed_notifs.push_back(sqe.user_data);
                // io_disarm_next: a failed request's linked timeout completes -ECANCELED.
                self.zc.disarmed.extend(sqe.link_timeout);
            }
            Event::UringNotifFlush => {
                // The notif of a request that queued no page: io_notif_tw_complete
                // (6.1: __io_notif_complete_tw) reports COPIED under REPORT_USAGE,
                // `zc_copied || !zc_used`, because no skb completed with zero copy.
                let user_data = self.zc.failed_notifs.pop_front().expect("enabled");
                self.reach(Hazard::Copied);
                self.zc.cq.push_back(Cqe {
                    user_data,
                    res: 0,
                    more: false,
                    notif: true,
                    copied: true,
                });
            }
            Event::UringLinkTimeout(i) => self.uring_link_timeout(i),
            Event::UringTimeoutDisarmed => {
                // io_req_queue_tw_complete(link, -ECANCELED), run as task work.
                let timeout = self.zc.disarmed.pop_front().expect("enabled");
                self.zc.cq.push_back(Cqe {
                    user_data: timeout,
                    res: -125, // ECANCELED
                    more: false,
                    notif: false,
                    copied: false,
                });
            }
            Event::UringExec(i) => self.uring_exec(s, i),
        }
        None
    }

    /// The linked timeout of a pending `SEND_ZC` fires: `io_link_timeout_fn` detaches
    /// the request and queues `io_req_task_link_timeout`, whose `io_try_cancel` finds it
    /// poll-armed (`io_poll_cancel` → `io_poll_cancel_req`, the request's cancellation
    /// queued as task work) and completes the timeout with `-ETIME` (`ret ?: -ETIME`,
    /// the cancel having found it). The request then fails in that task work
    /// (`io_apoll_task_func` → `io_req_complete_failed`): `io_sendrecv_fail` sets `res`
    /// to `done_io` when it had queued part (`REQ_F_PARTIAL_IO`), else it stays
    /// `-ECANCELED`, and `F_MORE` (the notif is still owned, `REQ_F_NEED_CLEANUP`);
    /// `io_send_zc_cleanup` flushes the notif, which completes once the skbs holding
    /// the queued pages are freed — or at once if none was queued. 6.1 io_uring/timeout.c,
    /// net.c, poll.c.
    fn uring_link_timeout(&mut self, i: u8) {
        let sqe = self.zc.sq.remove(i as usize);
        self.zc.link_timeouts += 1;
        if sqe.done > 0 {
            self.reach(Hazard::CancelAfterQueued);
        }
        self.zc.cq.push_back(Cqe {
            user_data: sqe.link_timeout.expect("enabled only for linked requests"),
            res: -62, // ETIME
            more: false,
            notif: false,
            copied: false,
        });
        self.zc.cq.push_back(Cqe {
            user_data: sqe.user_data,
            res: if sqe.done > 0 {
                sqe.done as i64
            } else {
                -125 // ECANCELED
            },
            more: true,
            notif: false,
            copied: false,
        });
        self.zc.uring_flush(sqe.user_data);
    }

    /// io_send_zc: `sock_sendmsg` → `tcp_sendmsg_locked` puts the pages into skbs
    /// accounted to the request's notif, up to the first page it cannot pin
    /// (`-EFAULT` if that is the first). Without `MSG_WAITALL` `min_ret` is 0, so a send
    /// that filled the socket under `MSG_DONTWAIT` (`IO_URING_F_NONBLOCK`) completes
    /// short; with it `io_net_retry` resubmits the rest and the CQE counts it all. The
    /// CQE carries `IORING_CQE_F_MORE` whatever the result, and a NOTIF follows: at once
    /// via `io_notif_flush` when no page was queued, else when the last skb lets go.
    ///
    /// A request with a linked timeout queues what the socket has room for; with room
    /// for less than the rest it stays pending with `done` counting what it queued
    /// (`ret > 0 && io_net_retry`: `zc->buf += ret`, `done_io += ret`,
    /// `REQ_F_PARTIAL_IO`, back to poll) and posts nothing yet. When it completes, the
    /// CQE counts `done_io` too, and the completion disarms the timeout
    /// (`io_disarm_next` → `io_req_queue_tw_complete(link, -ECANCELED)`): its CQE comes
    /// from task work, a later move ([`Event::UringTimeoutDisarmed`]) — after the send's,
    /// and possibly after the send's NOTIF (seen on the 6.18 host).
    fn uring_exec(&mut self, s: &Scenario, i: u8) {
        let mut sqe = self.zc.sq.remove(i as usize);
        if let SqeKind::Send { msg_zerocopy } = sqe.kind {
            return self.uring_exec_send(s, sqe, msg_zerocopy);
        }
        let fits = match sqe.part_queues() {
            true => sqe.buf.len.min(self.sock.room(s.config.sndbuf)),
            false => sqe.buf.len,
        };
        let refs = self.sqe_pages(s, &sqe);
        let notif = Notif::Uring(sqe.user_data);
        for r in &refs {
            self.sock.queue(*r, Some(notif));
        }
        if !refs.is_empty() {
            self.zc.uring_hold(sqe.user_data);
        }
        let queued = refs.len() as u64;
        sqe.done += queued;
        if queued == fits && queued < sqe.buf.len {
            sqe.buf = Region::new(sqe.buf.offset + queued, sqe.buf.len - queued);
            self.zc.sq.insert(i as usize, sqe);
            return;
        }
        self.zc.uring_flush(sqe.user_data);
        self.zc.cq.push_back(Cqe {
            user_data: sqe.user_data,
            res: if sqe.done == 0 {
                -14 // EFAULT
            } else {
                sqe.done as i64
            },
            more: true,
            notif: false,
            copied: false,
        });
        self.zc.disarmed.extend(sqe.link_timeout);
    }

    /// io_send (6.1 io_uring/net.c): `sock_sendmsg` with the SQE's
    /// `msg_flags` (only `MSG_INTERNAL_SENDMSG_FLAGS` stripped) and no `msg_ubuf`, so
    /// `tcp_sendmsg_locked` with `MSG_ZEROCOPY` on an `SO_ZEROCOPY` socket allocates or
    /// extends a `MSG_ZEROCOPY` completion (`msg_zerocopy_realloc`, `ENOBUFS` when optmem
    /// is used up) and puts the user's pages into skbs (`skb_zerocopy_iter_stream`); the
    /// release comes on the socket's error queue as for `send(MSG_ZEROCOPY)`. Otherwise
    /// it copies. Short under `MSG_DONTWAIT` unless `MSG_WAITALL` (as `uring_exec`). One
    /// CQE, `io_req_set_res(req, ret, 0)`: no `F_MORE`, and nothing on the ring when the
    /// pages are let go.
    fn uring_exec_send(&mut self, s: &Scenario, sqe: Sqe, msg_zerocopy: bool) {
        let refs = self.sqe_pages(s, &sqe);
        let res = if refs.is_empty() {
            -14 // EFAULT
        } else if msg_zerocopy && self.sock.zerocopy_enabled {
            let pages = refs.len() as u64;
            match self.msg_zerocopy_notif(s, pages) {
                Ok(notif) => {
                    for r in &refs {
                        self.sock.queue(*r, Some(notif));
                    }
                    pages as i64
                }
                Err(_) => -105, // ENOBUFS
            }
        } else {
            for r in &refs {
                self.sock.queue(DataRef::Copied(self.mem.read(*r)), None);
            }
            refs.len() as i64
        };
        self.zc.cq.push_back(Cqe {
            user_data: sqe.user_data,
            res,
            more: false,
            notif: false,
            copied: false,
        });
    }

    /// The pages an io_uring send of `sqe` queues: all of them with `MSG_WAITALL`
    /// (`io_net_retry` resubmits the rest), else — or for a request that part-queues —
    /// what the socket has room for now (a short send under `MSG_DONTWAIT`); either way only up to the first page that is not
    /// mapped (`tcp_sendmsg_locked` stops at the first it cannot pin).
    fn sqe_pages(&self, s: &Scenario, sqe: &Sqe) -> Vec<DataRef> {
        let cfg = &s.config;
        let len = match cfg.uring_waitall && !sqe.part_queues() {
            true => sqe.buf.len,
            false => sqe.buf.len.min(self.sock.room(cfg.sndbuf)),
        };
        (sqe.buf.offset..sqe.buf.offset + len)
            .map_while(|p| self.mem.user_refs(Region::new(p, 1)).ok())
            .flatten()
            .collect()
    }

    /// The device copies `seg`'s frags as the clone is queued on it: zero-copy frags
    /// behind a TUN device (`tun_net_xmit`).
    pub(crate) fn device_copies(s: &Scenario, seg: &Segment) -> bool {
        seg.notif.is_some() && s.device().is_some_and(|d| d.copies_zerocopy_at_transmit())
    }

    /// `tcp_transmit_skb` hands a clone of `seg` down the stack: locally to the peer's
    /// backlog, remotely to the device's ring.
    pub(super) fn send_clone(&mut self, s: &Scenario, seg: Segment) {
        if Self::local(s) {
            self.net.wire.push_back(seg);
            return;
        }
        match seg.notif {
            // tun_net_xmit → skb_orphan_frags_rx → skb_copy_ubufs: the zero-copy frags are
            // copied out of the user's pages before the clone waits on the device's ring,
            // and skb_zcopy_clear(skb, false) tells the completion it was copied
            // (msg_zerocopy_callback clears `zerocopy`: SO_EE_CODE_ZEROCOPY_COPIED;
            // io_uring_tx_zerocopy_callback sets `zc_copied`). The original in the
            // retransmit queue keeps its frags, and its notif, until the ACK. Other frags
            // are left for tun_put_user, when the peer reads the fd (DeviceComplete).
            Some(n) if Self::device_copies(s, &seg) => {
                self.zc.mark_copied(n);
                self.net.ring.push_back(Segment {
                    data: DataRef::Copied(self.mem.read(seg.data)),
                    notif: None,
                    ..seg
                });
            }
            _ => self.net.ring.push_back(seg),
        }
    }
}
