//! What a policy can ask a backend to do.
//!
//! Each variant is one system call (or one well-defined blocking wait) on a real kernel,
//! and one transition of the model. Blocking operations block on every backend; the model
//! enables them only when the real call would return, so a policy that waits for a signal
//! that can no longer come is reported as `stuck`.

use crate::geometry::Region;
use serde::{Deserialize, Serialize};

/// A tmpfs file slot of the policy (for the sendfile policies). Small integers: the
/// backend maps them to real files.
pub type FileId = u8;

/// Tag of an io_uring submission, returned in its CQEs.
pub type UserData = u32;

/// Which io_uring zero-copy send an [`Op::UringSendZc`] submits. Both post a send CQE
/// with `IORING_CQE_F_MORE` and one NOTIF for the whole request (6.1 and 6.12:
/// `io_send_zc` and `io_sendmsg_zc` both point `msg_ubuf` at the request's one notif,
/// flush it and set `F_MORE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UringZcOpcode {
    /// `IORING_OP_SEND_ZC` (6.0): one buffer.
    #[default]
    Send,
    /// `IORING_OP_SENDMSG_ZC` (6.1): a `msghdr` whose iovec has one entry per page of the
    /// region, gathered into one message; its one NOTIF covers every entry.
    Sendmsg,
}

impl UringZcOpcode {
    /// Whether this is the default, `SEND_ZC` (left out of serialized traces).
    pub fn is_send(&self) -> bool {
        *self == UringZcOpcode::Send
    }
}

/// One operation of the sender.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Op {
    /// Write the stream bytes starting at stream offset `stream` into `buf`.
    /// This is the reuse moment: whatever still references these pages sees the new bytes.
    Fill {
        /// Where in the user buffer: the pages whose holders decide the verdict.
        buf: Region,
        /// Which stream bytes, so the receiver can tell stale bytes from fresh ones.
        stream: u64,
    },
    /// `send(2)`, blocking. With `zerocopy` the call uses `MSG_ZEROCOPY` (after
    /// [`Op::EnableZerocopy`]) and the pages stay referenced until the completion.
    /// Outcome: [`Outcome::Done`](crate::Outcome::Done) with the bytes queued, or an
    /// error (`ENOBUFS`).
    Send {
        /// The bytes to send, already filled.
        buf: Region,
        /// `MSG_ZEROCOPY`: the kernel keeps the pages instead of copying them.
        zerocopy: bool,
    },
    /// `setsockopt(SO_ZEROCOPY, 1)`. Outcome: `Ok` or an error if unsupported.
    EnableZerocopy,
    /// `vmsplice(2)` of `buf` into the pipe, blocking while the pipe is full; with `gift`
    /// it passes `SPLICE_F_GIFT`. Outcome: bytes moved, or an error.
    Vmsplice {
        /// The user pages the pipe will reference (or copy, per the kernel profile).
        buf: Region,
        /// `SPLICE_F_GIFT`: the policy promises never to write these pages again.
        gift: bool,
    },
    /// `splice(2)` up to `len` bytes from the pipe to the socket. Blocks while the pipe is
    /// empty or the socket's send buffer is full. Outcome: bytes moved.
    Splice {
        /// At most this many bytes; the pipe may hold fewer.
        len: u64,
    },
    /// `ioctl(SIOCOUTQ)`: bytes written but not yet acknowledged by the peer.
    ///
    /// Polling contract: if the previous `Siocoutq` returned `v` and nothing was written
    /// to the socket since (no send, splice, sendfile or SEND_ZC), the backend waits
    /// until the value differs from `v` before answering (a real backend re-polls; the
    /// model waits for the kernel to move). A busy loop that sees the same number twice
    /// learns nothing, so this loses no behaviour and keeps the model finite.
    Siocoutq,
    /// `recvmsg(MSG_ERRQUEUE)` for one zero-copy notification. With `block` the call waits
    /// (`poll(POLLERR)`) until one is queued. Outcome: [`Outcome::Zc`](crate::Outcome::Zc).
    ReadErrqueue {
        /// Wait for a notification, rather than return `None` at once.
        block: bool,
    },
    /// Submit an io_uring zero-copy send of `buf` (`IORING_OP_SEND_ZC`, or
    /// `IORING_OP_SENDMSG_ZC` per `opcode`). Outcome: `Ok` once submitted; results arrive
    /// as CQEs. Two submissions in flight at once may execute in either order (a send
    /// that finds no socket space is retried later, `io_send_zc` returning `-EAGAIN` to
    /// poll); wait for the first one's send CQE to keep stream order.
    UringSendZc {
        /// The bytes to send; the kernel may read them until the NOTIF CQE.
        buf: Region,
        /// Returned in both CQEs, so the policy knows which slot they release.
        user_data: UserData,
        /// Which opcode; traces written before `SENDMSG_ZC` existed read as `SEND_ZC`.
        #[serde(default, skip_serializing_if = "UringZcOpcode::is_send")]
        opcode: UringZcOpcode,
        /// An `IORING_OP_LINK_TIMEOUT` linked after the send (`IOSQE_IO_LINK`), with this
        /// tag: when it fires before the send completed it cancels the send
        /// (`io_link_timeout_fn` → `io_req_task_link_timeout` → `io_try_cancel`) and
        /// posts `-ETIME`; the send's CQE says what it had queued by then (`done_io`) or
        /// `-ECANCELED`, with `F_MORE`, and its NOTIF still follows once the kernel let go
        /// of the pages it queued. A send that completes first disarms it
        /// (`io_disarm_next`): its CQE is `-ECANCELED`. Left out of traces when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link_timeout: Option<UserData>,
    },
    /// Submit a plain io_uring `IORING_OP_SEND` of `buf`, with `MSG_ZEROCOPY` in its
    /// `msg_flags` per `msg_zerocopy`. Outcome: `Ok` once submitted; one CQE follows, with
    /// the bytes sent and no `IORING_CQE_F_MORE`. `io_send` passes the flags through to
    /// `sock_sendmsg` with no `msg_ubuf` (6.1, read; 6.18 on this host behaves so), so on a socket with
    /// `SO_ZEROCOPY` `tcp_sendmsg_locked` takes the `MSG_ZEROCOPY` path
    /// (`msg_zerocopy_realloc`): the pages stay referenced after the CQE and the release
    /// comes as a notification on the socket's error queue ([`Op::ReadErrqueue`]), not on
    /// the ring. Without `SO_ZEROCOPY` the flag is ignored and the data copied.
    UringSend {
        /// The bytes to send.
        buf: Region,
        /// Returned in the CQE.
        user_data: UserData,
        /// `MSG_ZEROCOPY` in the SQE's `msg_flags`.
        msg_zerocopy: bool,
    },
    /// Wait for the next io_uring CQE. Outcome: [`Outcome::Cqe`](crate::Outcome::Cqe).
    UringWaitCqe,
    /// Create (or open empty) the tmpfs file `file`.
    CreateFile {
        /// The policy's file slot.
        file: FileId,
    },
    /// `pwrite(2)` the stream bytes starting at `stream` into `file` at `region`.
    /// Existing page-cache pages are overwritten in place.
    WriteFile {
        /// The policy's file slot; must exist ([`Op::CreateFile`]).
        file: FileId,
        /// Where in the file: its page-cache pages are what skbs may reference.
        region: Region,
        /// Which stream bytes, as in [`Op::Fill`].
        stream: u64,
    },
    /// `sendfile(2)` `region` of `file` to the socket, blocking while the send buffer is
    /// full. Outcome: bytes sent.
    Sendfile {
        /// The policy's file slot.
        file: FileId,
        /// The file range to send; its pages may stay referenced after the call.
        region: Region,
    },
    /// Close and unlink `file`. Its pages leave the page cache; skbs keep their own
    /// references, and nobody can write those pages any more.
    RemoveFile {
        /// The policy's file slot, free for [`Op::CreateFile`] again.
        file: FileId,
    },
    /// `munmap(2)` a region of the buffer. Pages the kernel still references stay alive,
    /// unchanged, until it lets go.
    Munmap {
        /// Whole pages of the buffer; no longer writable until [`Op::Mmap`].
        buf: Region,
    },
    /// `mmap(2)` fresh anonymous pages at a region of the buffer (`MAP_FIXED`).
    Mmap {
        /// Whole pages of the buffer, replaced by pages no kernel object references.
        buf: Region,
    },
    /// Wait until the receiver reports having consumed more than `beyond` bytes (an
    /// application-level acknowledgement on the same connection). Outcome: consumed bytes.
    WaitAppAck {
        /// Stream bytes the receiver must have consumed past, before the call returns.
        beyond: u64,
    },
    /// The whole stream has been handed to the kernel. The backend shuts down the write
    /// side and lets the receiver finish. The policy must not touch its buffers any more.
    Finish,
    /// The policy cannot go on.
    Abort(Abort),
}

/// Why a policy gave up.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "reason")]
pub enum Abort {
    /// The kernel lacks something the policy needs (verdict `unsupported`).
    Unsupported(String),
    /// The policy saw an outcome it cannot handle (verdict `error`).
    Failed(String),
}

impl Op {
    /// Short name of the operation, as the timeline shows it.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Fill { .. } => "fill",
            Op::Send {
                zerocopy: false, ..
            } => "send",
            Op::Send { zerocopy: true, .. } => "send(MSG_ZEROCOPY)",
            Op::EnableZerocopy => "setsockopt(SO_ZEROCOPY)",
            Op::Vmsplice { gift: false, .. } => "vmsplice",
            Op::Vmsplice { gift: true, .. } => "vmsplice(GIFT)",
            Op::Splice { .. } => "splice",
            Op::Siocoutq => "ioctl(SIOCOUTQ)",
            Op::ReadErrqueue { .. } => "recvmsg(MSG_ERRQUEUE)",
            Op::UringSendZc {
                opcode: UringZcOpcode::Send,
                ..
            } => "io_uring SEND_ZC",
            Op::UringSendZc {
                opcode: UringZcOpcode::Sendmsg,
                ..
            } => "io_uring SENDMSG_ZC",
            Op::UringSend {
                msg_zerocopy: false,
                ..
            } => "io_uring SEND",
            Op::UringSend {
                msg_zerocopy: true, ..
            } => "io_uring SEND(MSG_ZEROCOPY)",
            Op::UringWaitCqe => "io_uring wait CQE",
            Op::CreateFile { .. } => "create file",
            Op::WriteFile { .. } => "pwrite",
            Op::Sendfile { .. } => "sendfile",
            Op::RemoveFile { .. } => "unlink",
            Op::Munmap { .. } => "munmap",
            Op::Mmap { .. } => "mmap",
            Op::WaitAppAck { .. } => "wait app-ack",
            Op::Finish => "finish",
            Op::Abort(_) => "abort",
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.name();
        match self {
            Op::Fill { buf, stream } => write!(f, "{name} buf{buf} with stream@{stream}"),
            Op::Send { buf, .. } | Op::Vmsplice { buf, .. } => write!(f, "{name} buf{buf}"),
            Op::Splice { len } => write!(f, "{name} {len} pipe→socket"),
            Op::ReadErrqueue { block } => {
                write!(f, "{name}{}", if *block { " (blocking)" } else { "" })
            }
            Op::UringSendZc {
                buf,
                user_data,
                link_timeout: Some(t),
                ..
            } => write!(f, "{name} buf{buf} #{user_data} + LINK_TIMEOUT #{t}"),
            Op::UringSendZc { buf, user_data, .. } | Op::UringSend { buf, user_data, .. } => {
                write!(f, "{name} buf{buf} #{user_data}")
            }
            Op::CreateFile { file } | Op::RemoveFile { file } => write!(f, "{name} file{file}"),
            Op::WriteFile {
                file,
                region,
                stream,
            } => write!(f, "{name} file{file}{region} with stream@{stream}"),
            Op::Sendfile { file, region } => write!(f, "{name} file{file}{region}"),
            Op::Munmap { buf } | Op::Mmap { buf } => write!(f, "{name} buf{buf}"),
            Op::WaitAppAck { beyond } => write!(f, "{name} > {beyond}"),
            Op::Abort(Abort::Unsupported(r)) => write!(f, "{name}: unsupported: {r}"),
            Op::Abort(Abort::Failed(r)) => write!(f, "{name}: {r}"),
            _ => f.write_str(name),
        }
    }
}
