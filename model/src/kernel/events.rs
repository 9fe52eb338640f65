//! Asynchronous kernel events: transmit, device completion, the network, ACKs, timers,
//! the receiving reader and io_uring's own work. Each rule cites the kernel function
//! it encodes.

use super::{Corruption, Event, Kernel};
use crate::config::Scenario;
use crate::memory::{Content, DataRef};
use crate::socket::{Notif, Segment};
use zcsafe_policy::Cqe;

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
                self.send_clone(seg, local);
            }
            Event::DeviceComplete => {
                // The NIC DMAs the pages; TX completion frees the clone (napi_consume_skb).
                let seg = self.net.ring.pop_front().expect("enabled");
                let data = DataRef::Copied(self.mem.read(seg.data));
                self.net.wire.push_back(Segment {
                    data,
                    notif: None,
                    ..seg
                });
            }
            Event::Deliver => {
                let mut seg = self.net.wire.pop_front().expect("enabled");
                // skb_orphan_frags_rx (via __netif_receive_skb_core / dev_forward_skb):
                // zero-copy frags are copied before a local socket may keep them.
                if let (true, Some(n)) = (local && cfg.profile.zerocopy_local_copies, seg.notif) {
                    self.zc.mark_copied(n);
                    seg.data = DataRef::Copied(self.mem.read(seg.data));
                    seg.notif = None;
                }
                // tcp_rcv_established / tcp_data_queue: in-order data is queued (page
                // references and all); duplicates and out-of-order data are dropped here
                // (the model has no out-of-order queue) and re-ACKed.
                if seg.seq == self.peer.rcv_nxt && (self.peer.queue.len() as u64) < cfg.rcvbuf {
                    self.peer.queue.push_back((seg.seq, seg.data, seg.notif));
                    self.peer.rcv_nxt += 1;
                }
                let wnd = self.peer.window(cfg.rcvbuf);
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
                let needed =
                    seg.seq >= self.peer.rcv_nxt && !self.net.wire.iter().any(|p| p.seq == seg.seq);
                if !needed {
                    self.sock.retransmits += 1;
                }
                self.send_clone(seg, local);
            }
            Event::Read => {
                let (seq, data, _) = self.peer.queue.pop_front().expect("enabled");
                let got = self.mem.read(data);
                self.peer.consumed += 1;
                // tcp_cleanup_rbuf: a read that reopens a closed window sends an update.
                let wnd = self.peer.window(cfg.rcvbuf);
                if self.peer.last_wnd == 0 {
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
            Event::UringFail(i) => {
                // io_sendrecv_fail: a SEND_ZC that owns a notif (REQ_F_NEED_CLEANUP)
                // completes with IORING_CQE_F_MORE even on error; io_send_zc_cleanup
                // then flushes the notif, which posts its own CQE later.
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
            }
            Event::UringNotifFlush => {
                // io_notif_tw_complete for the failed request: no page was queued.
                let user_data = self.zc.failed_notifs.pop_front().expect("enabled");
                self.zc.cq.push_back(Cqe {
                    user_data,
                    res: 0,
                    more: false,
                    notif: true,
                    copied: false,
                });
            }
            Event::UringExec(i) => {
                // io_send_zc: the pages go into skbs accounted to the request's notif;
                // the send CQE carries IORING_CQE_F_MORE because a notif will follow.
                let sqe = self.zc.sq.remove(i as usize);
                match self.mem.user_refs(sqe.buf) {
                    Ok(refs) => {
                        let notif = Notif::Uring(sqe.user_data);
                        for r in refs {
                            self.sock.queue(r, Some(notif));
                        }
                        self.zc.uring_notifs.push(crate::zerocopy::UringNotif {
                            user_data: sqe.user_data,
                            copied: false,
                        });
                        self.zc.cq.push_back(Cqe {
                            user_data: sqe.user_data,
                            res: sqe.buf.len as i64,
                            more: true,
                            notif: false,
                            copied: false,
                        });
                    }
                    Err(_) => self.zc.cq.push_back(Cqe {
                        user_data: sqe.user_data,
                        res: -14, // EFAULT
                        more: false,
                        notif: false,
                        copied: false,
                    }),
                }
            }
        }
        None
    }

    fn send_clone(&mut self, seg: Segment, local: bool) {
        if local {
            self.net.wire.push_back(seg);
        } else {
            self.net.ring.push_back(seg);
        }
    }
}
