//! The kernel side of a zero-copy send, as one explicit state machine.
//!
//! [`Kernel::perform`] executes an application operation (or says it would block);
//! [`Kernel::fire`] executes one asynchronous kernel event. The checker decides which
//! enabled move happens next, so every interleaving of the application, TCP's transmit
//! path, the device, the network, ACKs, timers and the receiving application is a path.
//! Each rule names the kernel function whose behaviour it encodes.
//!
//! This module holds the state and what both sides read: which events are enabled and
//! who holds a page. The moves live next door: `ops` executes the application's
//! operations, `events` the kernel's asynchronous events.

mod events;
mod ops;

use crate::config::Scenario;
use crate::memory::{DataRef, Fault, Memory};
use crate::network::Network;
use crate::peer::Peer;
use crate::pipe::Pipe;
use crate::socket::{Notif, Segment, Socket};
use crate::zerocopy::Zerocopy;
use std::hash::{Hash, Hasher};
use zcsafe_policy::{Hazard, HazardMarks, Holder, Outcome, TransportClass};

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
    /// The linked timeout of the `n`th pending `SEND_ZC` fires and cancels it.
    UringLinkTimeout(u8),
    /// io_uring posts the `-ECANCELED` CQE of the oldest disarmed linked timeout.
    UringTimeoutDisarmed,
    /// Receive autotuning grows the peer's buffer (`tcp_rcv_space_adjust`).
    Autotune,
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

/// What glibc's malloc adds to each allocation, for [`Kernel::heap_bytes`].
pub(crate) const MALLOC_HEADER: usize = 16;

/// The whole kernel state. Small and canonical: the checker hashes it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    pub mem: Memory,
    pub pipe: Pipe,
    pub sock: Socket,
    pub net: Network,
    pub peer: Peer,
    pub zc: Zerocopy,
    /// The application called `Finish`.
    pub finished: bool,
    /// The hazards reached and opened since [`Kernel::take_marks`] last emptied them.
    pub marks: Marks,
}

clone_reusing!(Kernel {
    mem,
    pipe,
    sock,
    net,
    peer,
    zc,
    finished,
    marks
});

/// What the steps since the last [`Kernel::take_marks`] reached and opened
/// ([`zcsafe_policy::hazard`]). A record of the path, not part of the state: all marks
/// are equal and hash alike, so two states that differ only in how they were reached
/// stay one state to the checker.
#[derive(Clone, Copy, Debug, Default)]
pub struct Marks(pub HazardMarks);

impl PartialEq for Marks {
    fn eq(&self, _: &Marks) -> bool {
        true
    }
}

impl Eq for Marks {}

impl Hash for Marks {
    fn hash<H: Hasher>(&self, _: &mut H) {}
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
            marks: Marks::default(),
        }
    }

    /// The hazards reached and opened since the last call, leaving none.
    pub fn take_marks(&mut self) -> HazardMarks {
        std::mem::take(&mut self.marks.0)
    }

    fn reach(&mut self, h: Hazard) {
        self.marks.0.reached.insert(h);
    }

    /// Marks what rewriting (or, with `release`, giving back) the page behind `page`
    /// reaches, from its content before the write: a page that held stream bytes is a
    /// reuse; before the receiving application read those bytes, the window an early
    /// reuse corrupts in; while a kernel object references the page, a reuse the kernel
    /// can still read.
    fn mark_rewrite(&mut self, page: DataRef, release: bool) {
        let Some(unit) = self.mem.read(page).stream_unit() else {
            return;
        };
        let unread = unit >= self.peer.consumed as u64;
        let mut held = false;
        self.holders_each(page, |_| held = true);
        let (any, before_read) = if release {
            (Hazard::Release, Hazard::ReleaseBeforeRead)
        } else {
            (Hazard::Reuse, Hazard::ReuseBeforeRead)
        };
        self.reach(any);
        if unread {
            self.reach(before_read);
        }
        if held && !release {
            self.reach(Hazard::ReuseWhileHeld);
        }
    }

    /// A retransmission of `seq` is needed: the peer does not have it and no copy is on
    /// its way (otherwise it is spurious: the ACK is just slow).
    fn retransmit_needed(&self, seq: u16) -> bool {
        seq >= self.peer.rcv_nxt && !self.net.on_its_way(seq)
    }

    fn local(s: &Scenario) -> bool {
        s.config.transport == TransportClass::Local
    }

    fn udp(s: &Scenario) -> bool {
        s.config.socket == zcsafe_policy::SocketKind::Udp
    }

    /// The application finished and the receiver read the whole stream.
    pub fn complete(&self, s: &Scenario) -> bool {
        self.finished && self.peer.consumed as u64 == s.geometry.stream
    }

    /// The kernel events that can happen now, in a fixed order.
    pub fn enabled(&self, s: &Scenario) -> Vec<Event> {
        let mut ev = Vec::new();
        self.enabled_each(s, |e| ev.push(e));
        ev
    }

    /// [`Kernel::enabled`], each event handed to `ev` in turn: the checker pushes them
    /// into one buffer it reuses for every state instead of allocating a vector per state.
    pub fn enabled_each(&self, s: &Scenario, mut ev: impl FnMut(Event)) {
        let cfg = &s.config;
        let local = Self::local(s);
        if self.sock.can_transmit(cfg.cwnd) {
            ev(Event::Transmit);
        }
        if !self.net.ring.is_empty() {
            ev(Event::DeviceComplete);
        }
        if !self.net.wire.is_empty() {
            ev(Event::Deliver);
            if self.net.losses < cfg.losses {
                ev(Event::Lose);
            }
        }
        if self.net.ack.is_some() {
            ev(Event::Ack);
        }
        if let Some(head) = self.sock.rtx.front() {
            // A retransmission is needed when no copy of the head is on its way and the
            // peer does not have it; otherwise it is spurious (the ACK is just slow),
            // and those are bounded. Needed ones are bounded by the loss budget.
            let needed = self.retransmit_needed(head.seq);
            let allowed = needed || self.sock.retransmits < cfg.spurious_rto;
            if allowed && !self.net.holds_in_host(head.seq, local, cfg.device) {
                ev(Event::Retransmit);
            }
        }
        if !self.peer.queue.is_empty() {
            ev(Event::Read);
        }
        for (i, sqe) in self.zc.sq.iter().enumerate() {
            // io_send_zc runs once the socket takes the whole request (MSG_WAITALL,
            // resubmitted by io_net_retry) or, without it, any of it (a short send). One
            // with a linked timeout queues what fits and waits for the rest, as the
            // kernel does any MSG_WAITALL send (`ret > 0 && io_net_retry`: `done_io +=
            // ret`, `REQ_F_PARTIAL_IO`, poll armed again): only a cancellation in between
            // makes that visible — unlinked, the request ends with the same CQE as one
            // queued whole later — so only these part-queue, and the other policies' state
            // spaces stay as they were.
            let need = if cfg.uring_waitall && !sqe.part_queues() {
                sqe.buf.len
            } else {
                1
            };
            if self.sock.room(cfg.sndbuf) >= need {
                ev(Event::UringExec(i as u8));
            }
        }
        if cfg.pipe_reader && !self.pipe.bufs.is_empty() {
            ev(Event::PipeRead);
        }
        if self.zc.failures < cfg.uring_failures {
            // Only a SEND_ZC owns a notif whose failure path is modelled (io_sendrecv_fail).
            self.zc
                .sq
                .iter()
                .enumerate()
                .filter(|(_, q)| q.kind == crate::zerocopy::SqeKind::SendZc && q.done == 0)
                .for_each(|(i, _)| ev(Event::UringFail(i as u8)));
        }
        if self.zc.link_timeouts < cfg.uring_link_timeouts {
            (self.zc.sq.iter().enumerate())
                .filter(|(_, q)| q.link_timeout.is_some())
                .for_each(|(i, _)| ev(Event::UringLinkTimeout(i as u8)));
        }
        if !self.zc.failed_notifs.is_empty() {
            ev(Event::UringNotifFlush);
        }
        if !self.zc.disarmed.is_empty() {
            ev(Event::UringTimeoutDisarmed);
        }
        // tcp_rcv_space_adjust runs from tcp_recvmsg after the application copied data
        // out, and only grows a buffer SO_RCVBUF did not lock.
        if cfg
            .autotune
            .is_some_and(|g| (self.peer.rcvbuf as u64) < g && self.peer.consumed > 0)
        {
            ev(Event::Autotune);
        }
    }

    /// Completes the zero-copy notifications no segment references any more. Liveness
    /// is asked of the queues directly, not collected: this runs after every move.
    fn sweep(&mut self, s: &Scenario) {
        if self.zc.uargs.is_empty() && self.zc.uring_notifs.is_empty() {
            return;
        }
        let Kernel {
            sock,
            net,
            peer,
            zc,
            ..
        } = self;
        let live = |n: Notif| {
            let held = |seg: &Segment| seg.notif == Some(n);
            sock.write_queue.iter().any(held)
                || sock.rtx.iter().any(held)
                || net.ring.iter().any(held)
                || net.wire.iter().any(held)
                || peer.queue.iter().any(|q| q.2 == Some(n))
        };
        let swept = zc.sweep(&s.geometry, live);
        self.marks.0.reached.union(swept.reached);
    }

    /// Bytes of the heap buffers behind this state (their capacity, plus a malloc
    /// header each): what the checker counts against `--max-memory` beyond the inline
    /// size. The policy's own buffers are not counted.
    pub fn heap_bytes(&self) -> usize {
        fn buf<T>(cap: usize) -> usize {
            if cap == 0 {
                0
            } else {
                cap * std::mem::size_of::<T>() + MALLOC_HEADER
            }
        }
        let z = &self.zc;
        self.mem.heap_bytes()
            + buf::<DataRef>(self.pipe.bufs.capacity())
            + buf::<Segment>(self.sock.write_queue.capacity())
            + buf::<Segment>(self.sock.rtx.capacity())
            + buf::<Segment>(self.net.ring.capacity())
            + buf::<Segment>(self.net.wire.capacity())
            + buf::<(u16, DataRef, Option<Notif>)>(self.peer.queue.capacity())
            + buf::<crate::zerocopy::Uarg>(z.uargs.capacity())
            + buf::<zcsafe_policy::ZcNotification>(z.errqueue.capacity())
            + buf::<crate::zerocopy::Sqe>(z.sq.capacity())
            + buf::<crate::zerocopy::UringNotif>(z.uring_notifs.capacity())
            + buf::<zcsafe_policy::Cqe>(z.cq.capacity())
            + buf::<u32>(z.failed_notifs.capacity())
            + buf::<u32>(z.disarmed.capacity())
    }

    /// Which kernel objects reference the page behind `page` (for timelines).
    pub fn holders(&self, page: DataRef) -> Vec<Holder> {
        let mut h = Vec::new();
        self.holders_each(page, |holder| h.push(holder));
        h
    }

    /// [`Kernel::holders`], each handed to `f`: the checker asks at every fill whether a
    /// page is held, and needs no vector for that.
    fn holders_each(&self, page: DataRef, mut f: impl FnMut(Holder)) {
        let mut add = |cond: bool, holder| {
            if cond {
                f(holder)
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
    }
}

#[cfg(test)]
mod tests;
