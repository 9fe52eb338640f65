//! io_uring `SEND_ZC` with an `IORING_OP_LINK_TIMEOUT` linked after every request, and
//! what the sender does when a timeout cancels a send: the state machine of the
//! liburing#643 reproducers (`bugs::liburing_643`), which differ only in [`OnTimeout`].
//!
//! Per chunk: fill its slot, submit the `SEND_ZC` with its timeout, reap both CQEs (the
//! send's and the timeout's, in either order; NOTIFs of earlier sends free their slots
//! meanwhile). A send that queued the whole chunk holds its slot until its NOTIF, as in
//! `uring-zc-notif`. A send the timeout cancelled (`-ETIME` for the timeout; the send's
//! `res` the bytes it had queued, `done_io`, or `-ECANCELED`) is sent again from the
//! first byte it did not queue, so the receiver still gets the stream whole.
//!
//! A cancelled `SEND_ZC` still has `F_MORE`: its NOTIF comes once the kernel let go of
//! the pages it queued (`io_sendrecv_fail`, `io_send_zc_cleanup` → `io_notif_flush`).

use crate::steps::{feature_failed, unexpected, Cursor};
use crate::uring::{Holds, NotSent};
use zcsafe_policy::{
    Abort, Cqe, Errno, Geometry, Op, Outcome, Policy, Region, UringZcOpcode, UserData,
};

/// What the sender does with a send its timeout cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum OnTimeout {
    /// Keep the buffer: it is the kernel's until the cancelled send's NOTIF. The rest is
    /// sent from where it lies, and the slot waits for both NOTIFs.
    KeepUntilNotif,
    /// Free the buffer at the timeout (the error CQE ends the request, as far as this
    /// sender knows) and copy the unsent rest into a new one for the retry — which the
    /// allocator hands out at the same address, the block just freed. The cancelled
    /// send's NOTIF promises nothing to it.
    FreeAndReallocate,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct UringZcLinkTimeout {
    g: Geometry,
    on_timeout: OnTimeout,
    at: Cursor,
    holds: Holds,
    /// Requests submitted so far. Request `n` from slot `s` is tagged `2 (n slots + s)`,
    /// its timeout one more: a tag names its slot and tells the two apart.
    requests: u32,
    phase: Phase,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    /// Reap NOTIFs until the current slot is free.
    Reclaim,
    Fill,
    /// Write the unsent rest into the buffer's new allocation (`FreeAndReallocate`).
    Reallocate(Part),
    Submit(Part),
    /// Reap until both CQEs of the request tagged `tag` came.
    Await {
        part: Part,
        tag: UserData,
        send: Option<Cqe>,
        timeout: Option<Cqe>,
    },
    Done,
    Failed(Abort),
}

/// What one request sends: a buffer region and the stream offset of its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Part {
    buf: Region,
    stream: u64,
}

impl UringZcLinkTimeout {
    pub(crate) fn new(g: &Geometry, on_timeout: OnTimeout) -> Self {
        UringZcLinkTimeout {
            g: *g,
            on_timeout,
            at: Cursor::default(),
            holds: Holds::new(g),
            requests: 0,
            phase: Phase::Fill,
        }
    }

    fn slot(&self) -> usize {
        self.at.slot_index(&self.g) as usize
    }

    fn slot_of(&self, tag: UserData) -> usize {
        ((tag / 2) as u64 % self.g.slots()) as usize
    }

    /// The current chunk, whole.
    fn chunk(&self) -> Part {
        Part {
            buf: self.at.slot(&self.g),
            stream: self.at.offset(&self.g),
        }
    }

    fn tag(&self) -> UserData {
        2 * (self.requests * self.g.slots() as UserData + self.slot() as UserData)
    }

    /// Fill the current slot once it is free; finish after the last chunk.
    fn ready(&self) -> Phase {
        if self.at.chunk >= self.g.chunks() {
            Phase::Done
        } else if self.holds.pins(self.slot()) {
            Phase::Reclaim
        } else {
            Phase::Fill
        }
    }

    /// Books a send CQE as it arrives — its NOTIF may come before the timeout's CQE: the
    /// send no longer holds its slot, and the NOTIF its `F_MORE` promises does, unless
    /// this sender takes a send that did not queue it all (so the timeout cancelled it:
    /// with `MSG_WAITALL` nothing else completes a send short) to have freed the buffer.
    fn book(&mut self, part: &Part, send: &Cqe) {
        let whole = send.res >= 0 && send.res as u64 >= part.buf.len;
        let freed = !whole && self.on_timeout == OnTimeout::FreeAndReallocate;
        self.holds
            .completed(self.slot_of(send.user_data), send.more && !freed);
    }

    /// Both CQEs of a request came: decide what comes next.
    fn settle(&mut self, part: Part, send: &Cqe, timeout: &Cqe) -> Phase {
        let fired = match -timeout.res {
            62 => true,   // ETIME: it fired and cancelled the send
            125 => false, // ECANCELED: the send completed first and disarmed it
            e => {
                return Phase::Failed(feature_failed(
                    "io_uring LINK_TIMEOUT",
                    Errno::from_raw(e as i32),
                ))
            }
        };
        let cancelled = fired && (send.res >= 0 || send.res == -125);
        let done = send.res.max(0) as u64;
        if done >= part.buf.len {
            self.at.advance(&self.g);
            return self.ready();
        }
        if !cancelled {
            let failed = match send.res {
                r if r < 0 => NotSent::Failed(Errno::from_raw(-r as i32)),
                sent => NotSent::Short {
                    sent,
                    chunk: part.buf.len,
                },
            };
            return Phase::Failed(failed.abort());
        }
        let rest = part.buf.len - done;
        let stream = part.stream + done;
        match self.on_timeout {
            OnTimeout::KeepUntilNotif => Phase::Submit(Part {
                buf: Region::new(part.buf.offset + done, rest),
                stream,
            }),
            OnTimeout::FreeAndReallocate => Phase::Reallocate(Part {
                buf: Region::new(self.at.slot(&self.g).offset, rest),
                stream,
            }),
        }
    }
}

impl Policy for UringZcLinkTimeout {
    fn poll_op(&self) -> Op {
        match &self.phase {
            Phase::Reclaim | Phase::Await { .. } => Op::UringWaitCqe,
            Phase::Fill => self.at.fill(&self.g),
            Phase::Reallocate(p) => Op::Fill {
                buf: p.buf,
                stream: p.stream,
            },
            Phase::Submit(p) => Op::UringSendZc {
                buf: p.buf,
                user_data: self.tag(),
                opcode: UringZcOpcode::Send,
                link_timeout: Some(self.tag() + 1),
            },
            Phase::Done => Op::Finish,
            Phase::Failed(a) => Op::Abort(a.clone()),
        }
    }

    fn handle(&mut self, outcome: Outcome) {
        let op = self.poll_op();
        self.phase = match (std::mem::replace(&mut self.phase, Phase::Done), &outcome) {
            (Phase::Fill, Outcome::Ok) => Phase::Submit(self.chunk()),
            (Phase::Reallocate(p), Outcome::Ok) => Phase::Submit(p),
            (Phase::Submit(part), Outcome::Ok) => {
                let tag = self.tag();
                self.requests += 1;
                self.holds.submitted(self.slot());
                Phase::Await {
                    part,
                    tag,
                    send: None,
                    timeout: None,
                }
            }
            (Phase::Submit(_), Outcome::Err(e)) => {
                Phase::Failed(feature_failed("io_uring SEND_ZC", *e))
            }
            (phase @ (Phase::Reclaim | Phase::Await { .. }), Outcome::Cqe(c)) if c.notif => {
                self.holds.notified(self.slot_of(c.user_data));
                match phase {
                    Phase::Reclaim => self.ready(),
                    awaiting => awaiting,
                }
            }
            (
                Phase::Await {
                    part,
                    tag,
                    mut send,
                    mut timeout,
                },
                Outcome::Cqe(c),
            ) if c.user_data == tag || c.user_data == tag + 1 => {
                match c.user_data == tag {
                    true => {
                        self.book(&part, c);
                        send = Some(*c);
                    }
                    false => timeout = Some(*c),
                }
                match (send, timeout) {
                    (Some(s), Some(t)) => self.settle(part, &s, &t),
                    _ => Phase::Await {
                        part,
                        tag,
                        send,
                        timeout,
                    },
                }
            }
            (Phase::Done, _) => Phase::Done,
            (Phase::Failed(a), _) => Phase::Failed(a),
            _ => Phase::Failed(unexpected(&op, &outcome)),
        };
    }
}
