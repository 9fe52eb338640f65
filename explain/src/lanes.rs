//! The lanes of a sequence diagram, and which lanes each step connects.
//!
//! A step is drawn as an arrow between two lanes (the syscall goes from the application
//! into the pipe, a transmission from the write queue onto the wire, an ACK from the peer
//! back to the write queue …) or as a mark on one lane. The lane follows from the typed
//! event alone, so a kernel recording gets the same picture as a model counterexample.

use zcsafe_policy::{Actor, Event, Op};

/// The fixed lanes, left to right.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    /// The sending application.
    App,
    /// The pipe between `vmsplice` and `splice`.
    Pipe,
    /// The socket's write and retransmit queues.
    WriteQueue,
    /// The device ring and the network.
    Wire,
    /// The receiving host: its TCP and application.
    Peer,
}

impl Lane {
    /// Every lane, left to right.
    pub const ALL: [Lane; 5] = [
        Lane::App,
        Lane::Pipe,
        Lane::WriteQueue,
        Lane::Wire,
        Lane::Peer,
    ];

    /// Column header.
    pub fn title(self) -> &'static str {
        match self {
            Lane::App => "application",
            Lane::Pipe => "pipe",
            Lane::WriteQueue => "write queue",
            Lane::Wire => "wire/device",
            Lane::Peer => "peer",
        }
    }

    /// Narrow header for the terminal.
    pub fn short(self) -> &'static str {
        match self {
            Lane::App => "app",
            Lane::Pipe => "pipe",
            Lane::WriteQueue => "wq",
            Lane::Wire => "wire",
            Lane::Peer => "peer",
        }
    }

    /// Position from the left.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where a step happens: from one lane to another, or on one lane (`from == to`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrow {
    /// Where the step starts.
    pub from: Lane,
    /// Where it arrives.
    pub to: Lane,
}

impl Arrow {
    fn on(l: Lane) -> Arrow {
        Arrow { from: l, to: l }
    }
    fn new(from: Lane, to: Lane) -> Arrow {
        Arrow { from, to }
    }
}

/// Which lanes `event` connects.
pub fn arrow(event: &Event) -> Arrow {
    use Lane::*;
    match event {
        Event::Call { op, .. } => match op {
            Op::Vmsplice { .. } => Arrow::new(App, Pipe),
            Op::Splice { .. } => Arrow::new(Pipe, WriteQueue),
            Op::Send { .. }
            | Op::UringSendZc { .. }
            | Op::UringSend { .. }
            | Op::Sendfile { .. } => Arrow::new(App, WriteQueue),
            // The kernel answers the application: a counter, a notification, a CQE.
            Op::Siocoutq | Op::ReadErrqueue { .. } | Op::UringWaitCqe => {
                Arrow::new(WriteQueue, App)
            }
            Op::WaitAppAck { .. } => Arrow::new(Peer, App),
            // Memory and file operations, finish, abort: the application alone.
            Op::Fill { .. }
            | Op::EnableZerocopy
            | Op::CreateFile { .. }
            | Op::WriteFile { .. }
            | Op::RemoveFile { .. }
            | Op::Munmap { .. }
            | Op::Mmap { .. }
            | Op::Finish
            | Op::Abort(_) => Arrow::on(App),
        },
        Event::Unrecorded { .. } => Arrow::on(App),
        Event::Transmit { .. } | Event::Retransmit { .. } => Arrow::new(WriteQueue, Wire),
        Event::Ack { .. } => Arrow::new(Peer, WriteQueue),
        Event::ZeroWindowProbe => Arrow::on(WriteQueue),
        Event::UringExec { .. } => Arrow::new(App, WriteQueue),
        // A failure or a notification: io_uring answers the application.
        Event::UringFail { .. }
        | Event::UringNotifFlush { .. }
        | Event::UringLinkTimeout { .. }
        | Event::UringTimeoutDisarmed { .. } => Arrow::new(WriteQueue, App),
        Event::TxComplete { .. } | Event::Lose { .. } => Arrow::on(Wire),
        Event::Deliver { .. } => Arrow::new(Wire, Peer),
        Event::RcvbufGrow { .. } => Arrow::new(Peer, WriteQueue),
        Event::Read {
            from_pipe: true, ..
        } => Arrow::new(Pipe, Peer),
        Event::Read { .. }
        | Event::Accepted { .. }
        | Event::Checked { .. }
        | Event::Ended { .. } => Arrow::on(Peer),
        // A version-1 step has only its actor: its own lane.
        Event::Legacy { actor, .. } => Arrow::on(match actor {
            Actor::App => App,
            Actor::Tcp => WriteQueue,
            Actor::Device | Actor::Wire => Wire,
            Actor::Peer | Actor::Receiver => Peer,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zcsafe_policy::{Answer, Outcome, Payload, Region};

    fn call(op: Op) -> Event {
        Event::Call {
            op,
            answer: Answer::Returned(Outcome::Done(1)),
            wrote_held: vec![],
        }
    }

    #[test]
    fn arrows_follow_the_data() {
        let buf = Region::new(0, 1);
        let payload = Payload {
            page: None,
            content: Some(0),
        };
        assert_eq!(
            arrow(&call(Op::Vmsplice { buf, gift: false })),
            Arrow::new(Lane::App, Lane::Pipe)
        );
        assert_eq!(
            arrow(&call(Op::Splice { len: 1 })),
            Arrow::new(Lane::Pipe, Lane::WriteQueue)
        );
        assert_eq!(
            arrow(&Event::Retransmit {
                seq: 0,
                payload,
                frags_copied: false
            }),
            Arrow::new(Lane::WriteQueue, Lane::Wire)
        );
        assert_eq!(
            arrow(&Event::Ack { ack: 1, window: 2 }),
            Arrow::new(Lane::Peer, Lane::WriteQueue)
        );
        assert_eq!(
            arrow(&call(Op::Fill { buf, stream: 0 })),
            Arrow::on(Lane::App)
        );
        assert_eq!(
            arrow(&Event::Read {
                seq: 0,
                payload,
                from_pipe: true
            }),
            Arrow::new(Lane::Pipe, Lane::Peer)
        );
    }
}
