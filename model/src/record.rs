//! What a trace records of the model: each transition as a typed
//! [`zcsafe_policy::Event`], resolved to the segment or page it acts on.
//!
//! [`Event`] names a transition by position (`Transmit` sends the head of the write
//! queue); a trace must say *which* segment and what it carried at that moment, because
//! a reader sees the trace without the state. Both the checker's counterexamples
//! ([`timeline`](crate::timeline)) and the simulator's runs describe moves here, from the
//! state just before the move, so the two backends write the same events.

use crate::config::Scenario;
use crate::kernel::{Event, Kernel};
use crate::memory::DataRef;
use zcsafe_policy::trace::{Completion, HeldPage, PageHolders, Payload};
use zcsafe_policy::{Event as Step, Op, TransportClass};

impl Kernel {
    /// The trace event of `ev`, about to fire in this state.
    pub fn describe(&self, s: &Scenario, ev: Event) -> Step {
        match ev {
            Event::Transmit => {
                let seg = self.sock.write_queue[0];
                Step::Transmit {
                    seq: seg.seq.into(),
                    payload: self.payload(seg.data),
                    frags_copied: Kernel::device_copies(s, &seg),
                }
            }
            Event::DeviceComplete => {
                let seg = self.net.ring[0];
                Step::TxComplete {
                    seq: seg.seq.into(),
                    payload: self.payload(seg.data),
                }
            }
            Event::Deliver => {
                let seg = self.net.wire[0];
                Step::Deliver {
                    seq: seg.seq.into(),
                    payload: self.payload(seg.data),
                    in_order: seg.seq == self.peer.rcv_nxt,
                    // skb_orphan_frags_rx on local delivery, per the profile.
                    frags_copied: s.config.transport == TransportClass::Local
                        && seg.notif.is_some()
                        && s.config.profile.zerocopy_local_copies,
                    datagram: s.config.socket == zcsafe_policy::SocketKind::Udp,
                }
            }
            Event::Lose => Step::Lose {
                seq: self.net.wire[0].seq.into(),
            },
            Event::Ack => {
                let (ack, window) = self.net.ack.expect("an enabled Ack has an ACK");
                Step::Ack {
                    ack: ack.into(),
                    window: window.into(),
                }
            }
            Event::Retransmit => {
                let seg = self.sock.rtx[0];
                Step::Retransmit {
                    seq: seg.seq.into(),
                    payload: self.payload(seg.data),
                    frags_copied: Kernel::device_copies(s, &seg),
                }
            }
            Event::Read => {
                let (seq, data, _) = self.peer.queue[0];
                Step::Read {
                    seq: seq.into(),
                    payload: self.payload(data),
                    from_pipe: false,
                }
            }
            Event::PipeRead => Step::Read {
                seq: self.peer.consumed as u64,
                payload: self.payload(self.pipe.bufs[0]),
                from_pipe: true,
            },
            Event::UringExec(i) => {
                let q = &self.zc.sq[i as usize];
                Step::UringExec {
                    user_data: q.user_data,
                    plain: matches!(q.kind, crate::zerocopy::SqeKind::Send { .. }),
                    part: q.part_queues() && self.sock.room(s.config.sndbuf) < q.buf.len,
                }
            }
            Event::UringTimeoutDisarmed => Step::UringTimeoutDisarmed {
                timeout: self.zc.disarmed[0],
            },
            Event::UringLinkTimeout(i) => {
                let q = &self.zc.sq[i as usize];
                Step::UringLinkTimeout {
                    user_data: q.user_data,
                    timeout: q.link_timeout.unwrap_or_default(),
                    queued: q.done as u32,
                }
            }
            Event::UringFail(i) => Step::UringFail {
                user_data: self.zc.sq[i as usize].user_data,
            },
            Event::UringNotifFlush => Step::UringNotifFlush {
                user_data: self.zc.failed_notifs[0],
            },
            Event::Autotune => Step::RcvbufGrow {
                window: s
                    .config
                    .autotune
                    .map_or(0, |g| g.saturating_sub(self.peer.queue.len() as u64))
                    as u32,
            },
        }
    }

    /// What a reference reads now: the page (unless the kernel copied) and its content.
    pub fn payload(&self, r: DataRef) -> Payload {
        Payload {
            page: r.page(),
            content: self.mem.read(r).stream_unit(),
        }
    }

    /// The pages `op` would write while a kernel object still holds them: the reuse.
    pub fn wrote_held(&self, op: &Op) -> Vec<HeldPage> {
        let pages: Vec<DataRef> = match *op {
            Op::Fill { buf, .. } => (buf.offset..buf.end())
                .map(|p| DataRef::User(p as u16))
                .collect(),
            Op::WriteFile { file, region, .. } => (region.offset..region.end())
                .map(|p| DataRef::File(file, p as u16))
                .collect(),
            _ => return Vec::new(),
        };
        pages
            .into_iter()
            .filter_map(|r| {
                let by = self.holders(r);
                (!by.is_empty()).then(|| HeldPage {
                    page: r.page().expect("user and file pages are pages"),
                    by,
                })
            })
            .collect()
    }

    /// Notifications and NOTIF CQEs that became visible since `before`.
    pub fn completions_since(&self, before: &Kernel) -> Vec<Completion> {
        let mut out = Vec::new();
        let (now, then) = (&self.zc, &before.zc);
        // A notification may also merge into the queue's last one
        // (`skb_zerocopy_notify_extend`): the queue does not grow, but a uarg went.
        let grew = now.errqueue.len() > then.errqueue.len();
        let merged = now.uargs.len() < then.uargs.len() && !now.errqueue.is_empty();
        if grew || merged {
            if let Some(n) = now.errqueue.back() {
                out.push(Completion::Errqueue(*n));
            }
        }
        out.extend(
            now.cq
                .iter()
                .skip(then.cq.len().min(now.cq.len()))
                .filter(|c| c.notif)
                .map(|c| Completion::Notif {
                    user_data: c.user_data,
                }),
        );
        out
    }

    /// Who holds each page now.
    pub fn page_holders(&self) -> Vec<PageHolders> {
        self.mem
            .pages()
            .into_iter()
            .filter_map(|(r, content)| {
                Some(PageHolders {
                    page: r.page()?,
                    content: content.and_then(|c| c.stream_unit()),
                    holders: self.holders(r),
                })
            })
            .collect()
    }
}
