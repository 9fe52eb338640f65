//! The kernel side of a zero-copy send, as one explicit state machine.
//!
//! [`Kernel::perform`] executes an application operation (or says it would block);
//! [`Kernel::fire`] executes one asynchronous kernel event. The checker decides which
//! enabled move happens next, so every interleaving of the application, TCP's transmit
//! path, the device, the network, ACKs, timers and the receiving application is a path.
//! Each rule names the kernel function whose behaviour it encodes.

use crate::config::Scenario;
use crate::memory::{Content, DataRef, Fault, Memory};
use crate::network::Network;
use crate::peer::Peer;
use crate::pipe::Pipe;
use crate::socket::{Notif, Segment, Socket};
use crate::zerocopy::{Sqe, Zerocopy};
use zcsafe_policy::{Cqe, Errno, GiftSupport, Holder, Op, Outcome, TransportClass};

/// An asynchronous kernel event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// `tcp_write_xmit` sends the head of the write queue.
    Transmit,
    /// The device reads the head of its TX ring and completes it (remote only).
    DeviceComplete,
    /// The head of the wire reaches the peer's TCP.
    Deliver,
    /// The network drops the head of the wire.
    Lose,
    /// The peer's ACK reaches the sender.
    Ack,
    /// The retransmission timer fires for the head of the retransmit queue.
    Retransmit,
    /// The receiving application reads one page and checks it.
    Read,
    /// io_uring executes the `n`th pending `SEND_ZC`.
    UringExec(u8),
    /// The reading process reads one page from the pipe (`pipe_reader` only).
    PipeRead,
    /// The `n`th pending `SEND_ZC` fails (is cancelled) before it runs.
    UringFail(u8),
    /// io_uring posts the notification CQE of the oldest failed `SEND_ZC`.
    UringNotifFlush,
}

/// What an application operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Perform {
    /// The call would block now.
    Blocked,
    /// The call returned this.
    Done(Outcome),
    /// The application touched memory it does not own.
    Fault(Fault),
}

/// The receiver read bytes that are not the stream's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// Stream page the receiver read.
    pub offset: u64,
    /// Stream page the bytes were written for (`None`: zeroes).
    pub meant_for: Option<u64>,
}

/// The whole kernel state. Small and canonical: the checker hashes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    pub mem: Memory,
    pub pipe: Pipe,
    pub sock: Socket,
    pub net: Network,
    pub peer: Peer,
    pub zc: Zerocopy,
    /// The application called `Finish`.
    pub finished: bool,
}

impl Kernel {
    pub fn new(s: &Scenario) -> Kernel {
        Kernel {
            mem: Memory::new(s.geometry.buffer),
            pipe: Pipe::new(s.geometry.pipe),
            sock: Socket::new(s.config.rcvbuf),
            net: Network::default(),
            peer: Peer::new(s.config.rcvbuf),
            zc: Zerocopy::default(),
            finished: false,
        }
    }

    fn local(s: &Scenario) -> bool {
        s.config.transport == TransportClass::Local
    }

    /// The application finished and the receiver read the whole stream.
    pub fn complete(&self, s: &Scenario) -> bool {
        self.finished && self.peer.consumed as u64 == s.geometry.stream
    }

    /// Executes an application operation, or reports that it blocks.
    pub fn perform(&mut self, s: &Scenario, op: &Op) -> Perform {
        let r = self.perform_inner(s, op);
        self.sweep(s);
        r
    }

    fn perform_inner(&mut self, s: &Scenario, op: &Op) -> Perform {
        use Perform::{Blocked, Done};
        let (g, cfg) = (&s.geometry, &s.config);
        let ok = Done(Outcome::Ok);
        let err = |e| Done(Outcome::Err(e));
        match *op {
            Op::Fill { buf, stream } => match self.mem.fill(buf, stream) {
                Ok(()) => ok,
                Err(f) => Perform::Fault(f),
            },
            Op::Send { buf, zerocopy } => {
                let refs = match self.mem.user_refs(buf) {
                    Ok(r) => r,
                    Err(f) => return Perform::Fault(f),
                };
                // tcp_sendmsg_locked waits in sk_stream_wait_memory until it queued all.
                if self.sock.room(cfg.sndbuf) < buf.len {
                    return Blocked;
                }
                // MSG_ZEROCOPY without SO_ZEROCOPY is silently a copy (tcp_sendmsg_locked).
                if zerocopy && self.sock.zerocopy_enabled {
                    let tail = self.sock.write_queue.back().and_then(|s| s.notif);
                    let notif = match self.zc.alloc_msg(g, tail, cfg.zc_optmem) {
                        Ok(n) => n,
                        Err(e) => return err(e),
                    };
                    // skb_zerocopy_iter_stream: frags point at the user's pages.
                    for r in refs {
                        self.sock.queue(r, Some(notif));
                    }
                } else {
                    for r in refs {
                        self.sock.queue(DataRef::Copied(self.mem.read(r)), None);
                    }
                }
                Done(Outcome::Done(buf.len))
            }
            Op::EnableZerocopy => {
                if cfg.profile.msg_zerocopy {
                    self.sock.zerocopy_enabled = true;
                    ok
                } else {
                    err(Errno::NoProtoOpt)
                }
            }
            Op::Vmsplice { buf, gift } => {
                if gift && cfg.profile.gift == GiftSupport::Rejected {
                    return err(Errno::OpNotSupp);
                }
                let refs = match self.mem.user_refs(buf) {
                    Ok(r) => r,
                    Err(f) => return Perform::Fault(f),
                };
                // vmsplice_to_pipe: wait_for_space once, then iter_to_pipe adds what fits.
                let n = self.pipe.room().min(buf.len);
                if n == 0 {
                    return Blocked;
                }
                for r in &refs[..n as usize] {
                    let data = if cfg.profile.vmsplice_maps {
                        *r
                    } else {
                        DataRef::Copied(self.mem.read(*r))
                    };
                    self.pipe.bufs.push_back(data);
                }
                Done(Outcome::Done(n))
            }
            Op::Splice { len } => {
                // splice_to_socket moves the pipe buffers' page references into skbs.
                let n = len
                    .min(self.pipe.bufs.len() as u64)
                    .min(self.sock.room(cfg.sndbuf));
                if n == 0 {
                    return Blocked;
                }
                for _ in 0..n {
                    let data = self.pipe.bufs.pop_front().expect("counted");
                    self.sock.queue(data, None);
                }
                Done(Outcome::Done(n))
            }
            Op::Siocoutq => {
                // A repeated poll with nothing written since answers only on a change.
                let now = (self.sock.write_seq, self.sock.snd_una);
                if self.sock.last_outq == Some(now) {
                    return Blocked;
                }
                self.sock.last_outq = Some(now);
                Done(Outcome::Done(self.sock.outq() as u64))
            }
            Op::ReadErrqueue { block } => match self.zc.errqueue.pop_front() {
                Some(n) => Done(Outcome::Zc(Some(n))),
                None if block => Blocked,
                None => Done(Outcome::Zc(None)),
            },
            Op::UringSendZc { buf, user_data } => {
                if !cfg.profile.uring_send_zc {
                    return err(Errno::Inval);
                }
                self.zc.sq.push(Sqe { user_data, buf });
                ok
            }
            Op::UringWaitCqe => match self.zc.cq.pop_front() {
                Some(c) => Done(Outcome::Cqe(c)),
                None => Blocked,
            },
            Op::CreateFile { file } => {
                // O_TRUNC drops the old pages from the page cache; skbs keep theirs.
                self.freeze(|r| matches!(r, DataRef::File(f, _) if f == file));
                self.mem.create(file);
                ok
            }
            Op::WriteFile {
                file,
                region,
                stream,
            } => match self.mem.write_file(file, region, stream) {
                Ok(()) => ok,
                Err(f) => Perform::Fault(f),
            },
            Op::Sendfile { file, region } => {
                let refs = match self.mem.file_refs(file, region) {
                    Ok(r) => r,
                    Err(f) => return Perform::Fault(f),
                };
                if self.sock.room(cfg.sndbuf) < region.len {
                    return Blocked;
                }
                // do_sendfile → splice_direct_to_actor: filemap_splice_read puts
                // page-cache pages in the internal pipe, then into skbs.
                for r in refs {
                    let data = if cfg.profile.file_splice_maps {
                        r
                    } else {
                        DataRef::Copied(self.mem.read(r))
                    };
                    self.sock.queue(data, None);
                }
                Done(Outcome::Done(region.len))
            }
            Op::RemoveFile { file } => {
                if !self.mem.exists(file) {
                    return Perform::Fault(Fault::NoFile(file));
                }
                self.freeze(|r| matches!(r, DataRef::File(f, _) if f == file));
                match self.mem.remove(file) {
                    Ok(()) => ok,
                    Err(f) => Perform::Fault(f),
                }
            }
            Op::Munmap { buf } => {
                if let Err(f) = self.mem.user_refs(buf) {
                    return Perform::Fault(f);
                }
                // The kernel's references keep the old pages alive; nobody can write them.
                let pages = buf.offset..buf.end();
                self.freeze(|r| matches!(r, DataRef::User(p) if pages.contains(&(p as u64))));
                match self.mem.unmap(buf) {
                    Ok(()) => ok,
                    Err(f) => Perform::Fault(f),
                }
            }
            Op::Mmap { buf } => match self.mem.map(buf) {
                Ok(()) => ok,
                Err(f) => Perform::Fault(f),
            },
            Op::WaitAppAck { beyond } => {
                if self.peer.consumed as u64 > beyond {
                    Done(Outcome::Done(self.peer.consumed as u64))
                } else {
                    Blocked
                }
            }
            Op::Finish => {
                self.finished = true;
                ok
            }
            Op::Abort(_) => ok,
        }
    }

    /// The kernel events that can happen now, in a fixed order.
    pub fn enabled(&self, s: &Scenario) -> Vec<Event> {
        let cfg = &s.config;
        let local = Self::local(s);
        let mut ev = Vec::new();
        if self.sock.can_transmit(cfg.cwnd) {
            ev.push(Event::Transmit);
        }
        if !self.net.ring.is_empty() {
            ev.push(Event::DeviceComplete);
        }
        if !self.net.wire.is_empty() {
            ev.push(Event::Deliver);
            if self.net.losses < cfg.losses {
                ev.push(Event::Lose);
            }
        }
        if self.net.ack.is_some() {
            ev.push(Event::Ack);
        }
        if let Some(head) = self.sock.rtx.front() {
            // A retransmission is needed when no copy of the head is on its way and the
            // peer does not have it; otherwise it is spurious (the ACK is just slow),
            // and those are bounded. Needed ones are bounded by the loss budget.
            let needed =
                head.seq >= self.peer.rcv_nxt && !self.net.wire.iter().any(|p| p.seq == head.seq);
            let allowed = needed || self.sock.retransmits < cfg.spurious_rto;
            if allowed && !self.net.holds_in_host(head.seq, local) {
                ev.push(Event::Retransmit);
            }
        }
        if !self.peer.queue.is_empty() {
            ev.push(Event::Read);
        }
        for (i, sqe) in self.zc.sq.iter().enumerate() {
            if self.sock.room(cfg.sndbuf) >= sqe.buf.len {
                ev.push(Event::UringExec(i as u8));
            }
        }
        if cfg.pipe_reader && !self.pipe.bufs.is_empty() {
            ev.push(Event::PipeRead);
        }
        if self.zc.failures < cfg.uring_failures {
            ev.extend((0..self.zc.sq.len()).map(|i| Event::UringFail(i as u8)));
        }
        if !self.zc.failed_notifs.is_empty() {
            ev.push(Event::UringNotifFlush);
        }
        ev
    }

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

    /// Every zero-copy completion still referenced by some segment.
    fn live_notifs(&self) -> Vec<Notif> {
        let segs = self
            .sock
            .write_queue
            .iter()
            .chain(&self.sock.rtx)
            .chain(&self.net.ring)
            .chain(&self.net.wire);
        segs.filter_map(|s| s.notif)
            .chain(self.peer.queue.iter().filter_map(|q| q.2))
            .collect()
    }

    fn sweep(&mut self, s: &Scenario) {
        if self.zc.uargs.is_empty() && self.zc.uring_notifs.is_empty() {
            return;
        }
        let live = self.live_notifs();
        self.zc.sweep(&s.geometry, &live);
    }

    /// Every data reference the kernel holds, mutably.
    fn refs_mut(&mut self) -> impl Iterator<Item = &mut DataRef> {
        self.pipe
            .bufs
            .iter_mut()
            .chain(self.sock.write_queue.iter_mut().map(|s| &mut s.data))
            .chain(self.sock.rtx.iter_mut().map(|s| &mut s.data))
            .chain(self.net.ring.iter_mut().map(|s| &mut s.data))
            .chain(self.net.wire.iter_mut().map(|s| &mut s.data))
            .chain(self.peer.queue.iter_mut().map(|q| &mut q.1))
    }

    /// Turns references matching `pred` into copies of what they point at now: the
    /// pages are about to become unreachable, so their content can never change again.
    fn freeze(&mut self, pred: impl Fn(DataRef) -> bool) {
        let mem = self.mem.clone();
        for r in self.refs_mut() {
            if pred(*r) {
                *r = DataRef::Copied(mem.read(*r));
            }
        }
    }

    /// Which kernel objects reference the page behind `page` (for timelines).
    pub fn holders(&self, page: DataRef) -> Vec<Holder> {
        let mut h = Vec::new();
        let mut add = |cond: bool, holder| {
            if cond {
                h.push(holder)
            }
        };
        add(self.pipe.bufs.contains(&page), Holder::Pipe);
        add(
            self.sock.write_queue.iter().any(|s| s.data == page),
            Holder::WriteQueue,
        );
        add(
            self.sock.rtx.iter().any(|s| s.data == page),
            Holder::Retransmit,
        );
        add(
            self.net.ring.iter().any(|s| s.data == page),
            Holder::DeviceRing,
        );
        add(self.net.wire.iter().any(|s| s.data == page), Holder::Wire);
        add(
            self.peer.queue.iter().any(|q| q.1 == page),
            Holder::PeerQueue,
        );
        let in_sq = |p: u16| {
            self.zc
                .sq
                .iter()
                .any(|q| (q.buf.offset..q.buf.end()).contains(&(p as u64)))
        };
        add(
            matches!(page, DataRef::User(p) if in_sq(p)),
            Holder::UringSubmission,
        );
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Scenario;
    use zcsafe_policy::{Profile, Region};

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
        k.fire(&s, Event::DeviceComplete);
        k.fire(&s, Event::Deliver);
        assert_eq!(
            k.fire(&s, Event::Read),
            Some(Corruption {
                offset: 0,
                meant_for: Some(9)
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
}
