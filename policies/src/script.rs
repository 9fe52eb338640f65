//! Scripted policies: a fixed list of actions repeated for every chunk.
//!
//! Most reuse schemes in the wild are exactly this — "fill, vmsplice, splice, wait for
//! SIOCOUTQ, reuse" — and differ only in the list. Writing them as data keeps each policy
//! file down to its provenance, its script and its expectation, and keeps the loop that
//! runs them in one place.

use crate::steps::{
    feature_failed, unexpected, Cursor, Drain, Progress, SendAll, SendfileAll, SpliceChunk,
};
use crate::uring::{self, NotSent};
use zcsafe_policy::{Abort, Geometry, Op, Outcome, Region, UringZcOpcode};

/// The tmpfs file the sendfile scripts use.
const FILE: zcsafe_policy::FileId = 0;

/// One action of a script. Actions that need several calls loop until done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `setsockopt(SO_ZEROCOPY)`; `unsupported` if refused.
    EnableZerocopy,
    /// Write the current chunk into its buffer slot: the reuse moment.
    Fill,
    /// `send` the slot until all of it is queued.
    Send { zerocopy: bool },
    /// `vmsplice` the slot into the pipe (with `SPLICE_F_GIFT` if `gift`) and `splice` it
    /// on to the socket.
    Splice { gift: bool },
    /// Poll `SIOCOUTQ` until it reads 0.
    Drain,
    /// `munmap` the slot and `mmap` fresh pages in its place.
    Remap,
    /// Create the tmpfs file.
    CreateFile,
    /// `pwrite` the current chunk at the start of the file.
    WriteFile,
    /// `sendfile` the chunk from the start of the file.
    Sendfile,
    /// Close and unlink the file.
    RemoveFile,
    /// Submit an io_uring `SEND_ZC` of the slot and wait for its send CQE (`F_MORE`),
    /// skipping notification CQEs.
    UringSendAwaitCqe,
    /// A plain io_uring `IORING_OP_SEND` of the slot, `MSG_ZEROCOPY` in its flags or not,
    /// then wait for its one CQE.
    UringPlainSendAwaitCqe { msg_zerocopy: bool },
}

/// A script: `setup` once, then `per_chunk` for every chunk of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Script {
    pub setup: &'static [Action],
    pub per_chunk: &'static [Action],
}

/// The state of an action that is under way.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Running {
    Once(Op),
    Send(SendAll),
    Splice(SpliceChunk),
    Sendfile(SendfileAll),
    Drain(Drain),
    Munmap(Region),
    UringWait,
}

/// A policy that runs a [`Script`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scripted {
    g: Geometry,
    script: Script,
    at: Cursor,
    /// Index into `setup` followed by `per_chunk`.
    step: usize,
    running: Option<Running>,
    end: Option<Result<(), Abort>>,
}

impl Scripted {
    pub fn new(g: &Geometry, script: Script) -> Self {
        let mut s = Scripted {
            g: *g,
            script,
            at: Cursor::default(),
            step: 0,
            running: None,
            end: None,
        };
        s.start();
        s
    }

    fn action(&self) -> Action {
        let setup = self.script.setup.len();
        if self.step < setup {
            self.script.setup[self.step]
        } else {
            self.script.per_chunk[self.step - setup]
        }
    }

    /// Starts the action at `self.step`.
    fn start(&mut self) {
        let g = &self.g;
        let slot = self.at.slot(g);
        let file_chunk = Region::new(0, g.chunk);
        self.running = Some(match self.action() {
            Action::EnableZerocopy => Running::Once(Op::EnableZerocopy),
            Action::Fill => Running::Once(self.at.fill(g)),
            Action::Send { zerocopy } => Running::Send(SendAll::new(slot, zerocopy)),
            Action::Splice { gift } => Running::Splice(SpliceChunk::new(slot, gift)),
            Action::Drain => Running::Drain(Drain { target: 0 }),
            Action::Remap => Running::Munmap(slot),
            Action::CreateFile => Running::Once(Op::CreateFile { file: FILE }),
            Action::WriteFile => Running::Once(Op::WriteFile {
                file: FILE,
                region: file_chunk,
                stream: self.at.offset(g),
            }),
            Action::Sendfile => Running::Sendfile(SendfileAll {
                file: FILE,
                left: file_chunk,
            }),
            Action::RemoveFile => Running::Once(Op::RemoveFile { file: FILE }),
            Action::UringSendAwaitCqe => Running::Once(Op::UringSendZc {
                buf: slot,
                user_data: self.at.chunk as u32,
                opcode: UringZcOpcode::Send,
                link_timeout: None,
            }),
            Action::UringPlainSendAwaitCqe { msg_zerocopy } => Running::Once(Op::UringSend {
                buf: slot,
                user_data: self.at.chunk as u32,
                msg_zerocopy,
            }),
        });
    }

    /// Moves to the next action, the next chunk, or the end.
    fn next(&mut self) {
        self.step += 1;
        if self.step == self.script.setup.len() + self.script.per_chunk.len() {
            if !self.at.advance(&self.g) {
                self.running = None;
                self.end = Some(Ok(()));
                return;
            }
            self.step = self.script.setup.len();
        }
        self.start();
    }

    fn fail(&mut self, abort: Abort) {
        self.running = None;
        self.end = Some(Err(abort));
    }
}

impl zcsafe_policy::Policy for Scripted {
    fn poll_op(&self) -> Op {
        match (&self.running, &self.end) {
            (Some(Running::Once(op)), _) => op.clone(),
            (Some(Running::Send(s)), _) => s.op(),
            (Some(Running::Splice(s)), _) => s.op(),
            (Some(Running::Sendfile(s)), _) => s.op(),
            (Some(Running::Drain(d)), _) => d.op(),
            (Some(Running::Munmap(buf)), _) => Op::Munmap { buf: *buf },
            (Some(Running::UringWait), _) => Op::UringWaitCqe,
            (None, Some(Err(abort))) => Op::Abort(abort.clone()),
            (None, _) => Op::Finish,
        }
    }

    fn handle(&mut self, outcome: Outcome) {
        let op = self.poll_op();
        let Some(running) = self.running.as_mut() else {
            return;
        };
        let progress = match running {
            Running::Once(Op::UringSendZc { .. } | Op::UringSend { .. }) => match outcome {
                Outcome::Ok => {
                    *running = Running::UringWait;
                    Progress::Pending
                }
                Outcome::Err(e) => Progress::Failed(e),
                _ => Progress::Unexpected,
            },
            Running::Once(_) => match outcome {
                Outcome::Ok => Progress::Complete,
                Outcome::Err(e) => Progress::Failed(e),
                _ => Progress::Unexpected,
            },
            Running::Send(s) => s.handle(&outcome),
            Running::Splice(s) => s.handle(&outcome),
            Running::Sendfile(s) => s.handle(&outcome),
            Running::Drain(d) => d.handle(&outcome),
            Running::Munmap(buf) => match outcome {
                Outcome::Ok => {
                    *running = Running::Once(Op::Mmap { buf: *buf });
                    Progress::Pending
                }
                Outcome::Err(e) => Progress::Failed(e),
                _ => Progress::Unexpected,
            },
            Running::UringWait => match outcome {
                // Our send's CQE (notifications of earlier sends are skipped).
                Outcome::Cqe(c) if !c.notif && c.user_data == self.at.chunk as u32 => {
                    match uring::sent(&c, &self.g) {
                        Ok(()) => Progress::Complete,
                        Err(NotSent::Failed(errno)) => Progress::Failed(errno),
                        Err(short) => {
                            self.fail(short.abort());
                            return;
                        }
                    }
                }
                Outcome::Cqe(_) => Progress::Pending,
                Outcome::Err(e) => Progress::Failed(e),
                _ => Progress::Unexpected,
            },
        };
        match progress {
            Progress::Pending => {}
            Progress::Complete => self.next(),
            Progress::Unexpected => self.fail(unexpected(&op, &outcome)),
            Progress::Failed(errno) => {
                let abort = match op {
                    Op::EnableZerocopy
                    | Op::Vmsplice { gift: true, .. }
                    | Op::UringSendZc { .. } => feature_failed(op.name(), errno),
                    Op::UringWaitCqe => feature_failed("io_uring SEND_ZC", errno),
                    _ => unexpected(&op, &outcome),
                };
                self.fail(abort);
            }
        }
    }
}

/// Declares a catalogued policy that runs a script: the type, its constructor and its
/// `Policy` impl ([`delegate_policy!`](crate::delegate_policy)).
macro_rules! scripted_policy {
    ($(#[$meta:meta])* $name:ident, $script:expr) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub struct $name($crate::script::Scripted);

        impl $name {
            fn scripted(g: &zcsafe_policy::Geometry) -> Self {
                $name($crate::script::Scripted::new(g, $script))
            }
        }

        $crate::delegate_policy!($name);
    };
}
pub(crate) use scripted_policy;

#[cfg(test)]
mod tests {
    use super::*;
    use zcsafe_policy::{Errno, Policy};

    /// The op after the first action of `per_chunk` got `outcome`.
    fn answered(per_chunk: &'static [Action], outcome: Outcome) -> Op {
        let script = Script {
            setup: &[],
            per_chunk,
        };
        let mut p = Scripted::new(&Geometry::kernel(4096, 8192, 4096, 8192), script);
        p.handle(outcome);
        p.poll_op()
    }

    #[test]
    fn a_refused_feature_is_unsupported_but_a_wrong_kind_of_outcome_is_an_error() {
        for per_chunk in [&[Action::EnableZerocopy], &[Action::UringSendAwaitCqe]] {
            let refused = answered(per_chunk, Outcome::Err(Errno::OpNotSupp));
            assert!(
                matches!(refused, Op::Abort(Abort::Unsupported(_))),
                "{per_chunk:?}: {refused:?}"
            );
            let wrong = answered(per_chunk, Outcome::Done(1));
            assert!(
                matches!(wrong, Op::Abort(Abort::Failed(ref why)) if why.contains("unexpected outcome")),
                "{per_chunk:?}: {wrong:?}"
            );
        }
    }
}
