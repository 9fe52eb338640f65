//! Application operations: what a system call (or a write to memory) does to the kernel
//! state, and when it would block. Each rule cites the kernel function it encodes.

use super::{Kernel, Perform};
use crate::config::Scenario;
use crate::memory::{DataRef, Fault};
use crate::zerocopy::{Sqe, SqeKind};
use zcsafe_policy::{Errno, GiftSupport, Hazard, Op, Outcome, Region};

impl Kernel {
    /// Executes an application operation, or reports that it blocks.
    pub fn perform(&mut self, s: &Scenario, op: &Op) -> Perform {
        // MSG_ZEROCOPY without SO_ZEROCOPY copies: it opens nothing.
        let copies = matches!(
            op,
            Op::Send { zerocopy: true, .. }
                | Op::UringSend {
                    msg_zerocopy: true,
                    ..
                }
        ) && !self.sock.zerocopy_enabled;
        if !copies {
            // The model's NIC never copies: COPIED comes only from local delivery, a TUN
            // device (`tun_net_xmit`) and a failed SEND_ZC's flush, so a scenario with
            // none of them cannot reach it.
            let can_copy = (Self::local(s) && s.config.profile.zerocopy_local_copies)
                || s.device().is_some_and(|d| d.copies_zerocopy_at_transmit())
                || s.config.uring_failures > 0
                || s.config.uring_link_timeouts > 0;
            (s.config.socket.opened_by(op))
                .filter(|h| can_copy || *h != Hazard::Copied)
                .for_each(|h| self.marks.0.opened.insert(h));
        }
        let r = self.perform_inner(s, op);
        self.sweep(s);
        r
    }

    fn perform_inner(&mut self, s: &Scenario, op: &Op) -> Perform {
        use Perform::{Blocked, Done};
        let cfg = &s.config;
        let ok = Done(Outcome::Ok);
        let err = |e| Done(Outcome::Err(e));
        match *op {
            Op::Fill { buf, stream } => match self.mem.user_refs(buf) {
                Ok(refs) => {
                    refs.into_iter().for_each(|r| self.mark_rewrite(r, false));
                    self.mem
                        .fill(buf, stream)
                        .map_or_else(Perform::Fault, |()| ok)
                }
                Err(f) => Perform::Fault(f),
            },
            Op::Send { buf, zerocopy } if Self::udp(s) => self.udp_send(s, buf, zerocopy),
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
                    let notif = match self.msg_zerocopy_notif(s, buf.len) {
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
            // io_send_zc and io_sendmsg_zc alike (6.1, 6.12): the request's one notif is
            // the skbs' msg_ubuf, whatever the iovec; the model keeps no iovec.
            // A linked IORING_OP_LINK_TIMEOUT (5.5) is armed once the send was issued
            // (io_queue_linked_timeout); the model's sq entry is that armed request.
            Op::UringSendZc {
                buf,
                user_data,
                link_timeout,
                ..
            } => {
                if !cfg.profile.uring_send_zc {
                    return err(Errno::Inval);
                }
                self.zc.sq.push(Sqe {
                    user_data,
                    buf,
                    kind: SqeKind::SendZc,
                    link_timeout,
                    done: 0,
                });
                ok
            }
            // io_uring_setup and IORING_OP_SEND (5.6) are on every kernel the model
            // profiles; the request runs later, like SEND_ZC's (uring_exec).
            Op::UringSend {
                buf,
                user_data,
                msg_zerocopy,
            } => {
                self.zc.sq.push(Sqe {
                    user_data,
                    buf,
                    kind: SqeKind::Send { msg_zerocopy },
                    link_timeout: None,
                    done: 0,
                });
                ok
            }
            Op::UringWaitCqe => match self.zc.cq.pop_front() {
                Some(c) => Done(Outcome::Cqe(c)),
                None => Blocked,
            },
            Op::CreateFile { file } => {
                // O_TRUNC drops the old pages from the page cache; skbs keep theirs.
                self.mark_file_release(file);
                self.freeze(|r| matches!(r, DataRef::File(f, _) if f == file));
                self.mem.create(file);
                ok
            }
            Op::WriteFile {
                file,
                region,
                stream,
            } => {
                // pwrite overwrites the page-cache pages in place: the pages that exist
                // are rewritten, the ones past the end are new.
                for r in self.mem.file_refs_existing(file, region) {
                    self.mark_rewrite(r, false);
                }
                match self.mem.write_file(file, region, stream) {
                    Ok(()) => ok,
                    Err(f) => Perform::Fault(f),
                }
            }
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
                self.mark_file_release(file);
                self.freeze(|r| matches!(r, DataRef::File(f, _) if f == file));
                match self.mem.remove(file) {
                    Ok(()) => ok,
                    Err(f) => Perform::Fault(f),
                }
            }
            Op::Munmap { buf } => {
                match self.mem.user_refs(buf) {
                    Ok(refs) => refs.into_iter().for_each(|r| self.mark_rewrite(r, true)),
                    Err(f) => return Perform::Fault(f),
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

    /// The notification a `MSG_ZEROCOPY` send of `pages` is accounted to: the tail's
    /// range extended, or a new one (`tcp_sendmsg_locked` → `msg_zerocopy_realloc`);
    /// `ENOBUFS` past optmem. Marks the hazards the allocation reaches.
    pub(super) fn msg_zerocopy_notif(
        &mut self,
        s: &Scenario,
        pages: u64,
    ) -> Result<crate::socket::Notif, Errno> {
        let cfg = &s.config;
        let tail = self.sock.write_queue.back().and_then(|q| q.notif);
        let id = self.zc.zckey;
        let notif = self
            .zc
            .alloc_msg(&s.geometry, tail, cfg.zc_optmem, pages, cfg.zc_uarg_pages)
            .inspect_err(|_| self.marks.0.reached.insert(Hazard::Enobufs))?;
        // sk_zckey is a u32 the kernel lets wrap; here it is zc_id_bits wide.
        if self.zc.zckey < id {
            self.reach(Hazard::CounterWrap);
        }
        Ok(notif)
    }

    /// `udp_sendmsg`, uncorked (no `MSG_MORE`, no `UDP_CORK`): `ip_make_skb` →
    /// `__ip_append_data` builds the one datagram and `udp_send_skb` → `ip_send_skb` sends
    /// it before the call returns — no write queue, nothing kept for a retransmission.
    /// With `MSG_ZEROCOPY` on an `SO_ZEROCOPY` socket `__ip_append_data` calls
    /// `msg_zerocopy_realloc(sk, length, skb_zcopy(skb))` with the tail of the call's own
    /// private queue, which is empty, so every call allocates a new `ubuf_info`
    /// (`msg_zerocopy_alloc`, `sock_omalloc`: `ENOBUFS` past optmem) — UDP coalesces
    /// notifications only on the error queue (`__msg_zerocopy_callback`); then
    /// `skb_zerocopy_iter_dgram` puts the user's pages in the frags (loopback and veth
    /// have `NETIF_F_SG` and `CHECKSUM_PARTIAL`, so `zc` is set; a device without would
    /// copy and report COPIED). The skb is charged to `sk_wmem_alloc` (`SIOCOUTQ`,
    /// `udp_ioctl`) and `sock_alloc_send_pskb` blocks while that is at `sk_sndbuf`
    /// (`sock.outq()` counts the datagrams not yet given back). Remote: the skb waits in
    /// the device ring until TX completion frees it. Local: it goes into the backlog
    /// (`veth_xmit` → `veth_forward_skb`; `loopback_xmit` → `__netif_rx`), where it
    /// still references the pages until `__netif_receive_skb_core` copies them, and is
    /// given back right after (`ip_rcv_core`'s `skb_orphan`). `loopback_xmit` orphans
    /// earlier, at transmit; the model keeps veth's rule for the local class (more
    /// datagrams in loopback's backlog change how many are at risk, not whether).
    fn udp_send(&mut self, s: &Scenario, buf: Region, zerocopy: bool) -> Perform {
        let cfg = &s.config;
        let refs = match self.mem.user_refs(buf) {
            Ok(r) => r,
            Err(f) => return Perform::Fault(f),
        };
        if self.sock.outq() as u64 + buf.len > cfg.sndbuf {
            return Perform::Blocked;
        }
        let notif = if zerocopy && self.sock.zerocopy_enabled {
            match self.msg_zerocopy_notif(s, buf.len) {
                Ok(n) => Some(n),
                Err(e) => return Perform::Done(Outcome::Err(e)),
            }
        } else {
            None
        };
        for r in refs {
            let data = match notif {
                Some(_) => r,
                None => DataRef::Copied(self.mem.read(r)),
            };
            let seg = crate::socket::Segment {
                seq: self.sock.write_seq,
                data,
                notif,
            };
            self.sock.write_seq += 1;
            self.sock.snd_nxt += 1;
            self.send_clone(s, seg);
        }
        Perform::Done(Outcome::Done(buf.len))
    }

    /// Marks the release of every page of `file` (unlinked or truncated), if it exists.
    fn mark_file_release(&mut self, file: zcsafe_policy::FileId) {
        let whole = Region::new(0, u64::MAX / 2);
        for r in self.mem.file_refs_existing(file, whole) {
            self.mark_rewrite(r, true);
        }
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
}
