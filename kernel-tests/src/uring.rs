//! io_uring `IORING_OP_SEND_ZC` (Linux 6.0): a send CQE (`IORING_CQE_F_MORE` when a
//! notification follows), then a separate `IORING_CQE_F_NOTIF` CQE once the kernel has
//! released the pages (`io_notif_tw_complete` in 6.12's io_uring/notif.c,
//! `__io_notif_complete_tw` in 6.1's). With `IORING_SEND_ZC_REPORT_USAGE` (6.2, and
//! Debian's 6.1.176: `io_send_zc_prep` accepts it) the notification's `res` has
//! `IORING_NOTIF_USAGE_ZC_COPIED` when the data was copied instead — or when nothing was
//! sent with zero copy at all (`zc_copied || !zc_used`, docs/design.md §9).

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::time::Instant;
use zcsafe_policy::{Cqe, UserData};

pub const IORING_SEND_ZC_REPORT_USAGE: u16 = 8;
pub use zcsafe_policy::IORING_NOTIF_USAGE_ZC_COPIED;

/// What a request sends, kept until its last CQE: the kernel reads the bytes until the
/// NOTIF, and a request resubmitted without `REPORT_USAGE` needs its SQE again.
enum Submission {
    /// `IORING_OP_SEND_ZC` of one buffer.
    Send { ptr: *const u8, len: u32 },
    /// `IORING_OP_SENDMSG_ZC`: the `msghdr` points into `iov`, both boxed so that they
    /// stay put while the kernel copies them (prep in 6.12, first issue in 6.1).
    Sendmsg {
        msg: Box<libc::msghdr>,
        _iov: Box<[libc::iovec]>,
    },
    /// A plain `IORING_OP_SEND`, `MSG_ZEROCOPY` in its `msg_flags` or not: one CQE, and
    /// on an `SO_ZEROCOPY` socket the release goes to the error queue (`io_send` →
    /// `tcp_sendmsg_locked`, `msg_zerocopy_realloc`).
    Plain {
        ptr: *const u8,
        len: u32,
        msg_zerocopy: bool,
    },
}

impl Submission {
    /// SEND_ZC or SENDMSG_ZC, whose flags include `REPORT_USAGE`.
    fn is_zc(&self) -> bool {
        !matches!(self, Submission::Plain { .. })
    }
}

/// A ring for SEND_ZC on one socket.
pub struct ZcRing {
    ring: IoUring,
    fd: RawFd,
    /// Cleared after the kernel refused `REPORT_USAGE` (6.0, 6.1 before the backport).
    report_usage: bool,
    /// No SEND_ZC has succeeded yet, so an `EINVAL` may be the flag's fault.
    none_succeeded: bool,
    /// The probe lists `IORING_OP_SEND_ZC`.
    send_zc: bool,
    /// The probe lists `IORING_OP_SENDMSG_ZC`.
    sendmsg_zc: bool,
    inflight: HashMap<UserData, Submission>,
    /// The `IORING_OP_LINK_TIMEOUT` linked after each send that asked for one, by the
    /// send's tag (kept for a resubmission without `REPORT_USAGE`).
    links: HashMap<UserData, UserData>,
}

/// How long a linked timeout waits: long enough that a send the socket has room for
/// completes first, short enough that a send stalled by a closed window is cancelled
/// well within any operation timeout.
pub const LINK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(20);

/// Why the ring could not be used.
#[derive(Debug)]
pub enum RingError {
    /// `io_uring_setup` failed (ENOSYS, or EPERM from `kernel.io_uring_disabled`).
    Setup(std::io::Error),
    /// The kernel's opcode probe lacks SEND_ZC.
    NoSendZc,
    /// The kernel's opcode probe lacks SENDMSG_ZC (6.0).
    NoSendmsgZc,
    Submit(std::io::Error),
}

impl std::fmt::Display for RingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RingError::Setup(e) => write!(f, "io_uring_setup: {e}"),
            RingError::NoSendZc => f.write_str("IORING_OP_SEND_ZC missing from the io_uring probe"),
            RingError::NoSendmsgZc => {
                f.write_str("IORING_OP_SENDMSG_ZC missing from the io_uring probe")
            }
            RingError::Submit(e) => write!(f, "io_uring_enter: {e}"),
        }
    }
}

/// Whether this kernel's io_uring knows an opcode (`IORING_REGISTER_PROBE`).
pub fn opcode_supported(ring: &IoUring, op: u8) -> bool {
    let mut p = Probe::new();
    ring.submitter().register_probe(&mut p).is_ok() && p.is_supported(op)
}

impl ZcRing {
    pub fn new(fd: RawFd) -> Result<ZcRing, RingError> {
        let ring = IoUring::new(256).map_err(RingError::Setup)?;
        // A plain SEND (5.6) needs neither; SEND_ZC and SENDMSG_ZC ask at submission.
        let send_zc = opcode_supported(&ring, opcode::SendZc::CODE);
        let sendmsg_zc = opcode_supported(&ring, opcode::SendMsgZc::CODE);
        Ok(ZcRing {
            ring,
            fd,
            report_usage: true,
            none_succeeded: true,
            send_zc,
            sendmsg_zc,
            inflight: HashMap::new(),
            links: HashMap::new(),
        })
    }

    fn push(&mut self, user_data: UserData, s: Submission) -> Result<(), RingError> {
        // MSG_WAITALL: like a blocking send(2), the send CQE comes when every byte is
        // queued; without it `io_send_zc` / `io_sendmsg_zc` complete short when the
        // socket is full (`io_net_retry` retries stream sockets only with MSG_WAITALL).
        let flags = libc::MSG_NOSIGNAL | libc::MSG_WAITALL;
        let zc_flags = if self.report_usage {
            IORING_SEND_ZC_REPORT_USAGE
        } else {
            0
        };
        let fd = types::Fd(self.fd);
        let e = match &s {
            Submission::Send { ptr, len } => opcode::SendZc::new(fd, *ptr, *len)
                .flags(flags)
                .zc_flags(zc_flags)
                .build(),
            // SENDMSG_ZC takes its zero-copy flags in `ioprio`, as SEND_ZC does
            // (`io_send_zc_prep` reads `sqe->ioprio` for both).
            Submission::Sendmsg { msg, .. } => opcode::SendMsgZc::new(fd, &**msg)
                .flags(flags as u32)
                .ioprio(zc_flags)
                .build(),
            Submission::Plain {
                ptr,
                len,
                msg_zerocopy,
            } => {
                let zc = if *msg_zerocopy { libc::MSG_ZEROCOPY } else { 0 };
                opcode::Send::new(fd, *ptr, *len).flags(flags | zc).build()
            }
        }
        .user_data(user_data as u64);
        let mut entries = vec![e];
        // io_link_timeout_prep copies the timespec at submission: it must live until the
        // io_uring_enter below.
        let ts = types::Timespec::from(LINK_TIMEOUT);
        if let Some(&timeout) = self.links.get(&user_data) {
            // io_prep_linked_timeout: the timeout guards the request before it in the
            // link.
            let link = opcode::LinkTimeout::new(&ts)
                .build()
                .user_data(timeout as u64);
            entries[0] = entries[0].clone().flags(squeue::Flags::IO_LINK);
            entries.push(link);
        }
        self.push_entries(&entries)?;
        self.ring.submit().map_err(RingError::Submit)?;
        self.inflight.insert(user_data, s);
        Ok(())
    }

    /// Pushes linked entries together (a link must not be split across a full queue)
    /// and submits them.
    fn push_entries(&mut self, entries: &[squeue::Entry]) -> Result<(), RingError> {
        loop {
            // SAFETY: the buffer stays mapped for the run (the executor owns it) and the
            // kernel reads it until the NOTIF CQE, which is the point of the exercise;
            // the msghdr and iovec live in `inflight` until the request's last CQE.
            if unsafe { self.ring.submission().push_multiple(entries) }.is_ok() {
                return Ok(());
            }
            self.ring.submit().map_err(RingError::Submit)?;
        }
    }

    /// Links an `IORING_OP_LINK_TIMEOUT` tagged `timeout` ([`LINK_TIMEOUT`]) after the
    /// next send tagged `user_data`.
    pub fn link_timeout(&mut self, user_data: UserData, timeout: UserData) {
        self.links.insert(user_data, timeout);
    }

    /// Submits one SEND_ZC now (`io_uring_enter` before returning).
    pub fn send_zc(&mut self, user_data: UserData, buf: &[u8]) -> Result<(), RingError> {
        if !self.send_zc {
            return Err(RingError::NoSendZc);
        }
        let s = Submission::Send {
            ptr: buf.as_ptr(),
            len: buf.len().min(u32::MAX as usize) as u32,
        };
        self.push(user_data, s)
    }

    /// Submits one plain `IORING_OP_SEND` of `buf` now, with `MSG_ZEROCOPY` if asked.
    pub fn send(
        &mut self,
        user_data: UserData,
        buf: &[u8],
        msg_zerocopy: bool,
    ) -> Result<(), RingError> {
        let s = Submission::Plain {
            ptr: buf.as_ptr(),
            len: buf.len().min(u32::MAX as usize) as u32,
            msg_zerocopy,
        };
        self.push(user_data, s)
    }

    /// Submits one SENDMSG_ZC of `buf` now, gathered from an iovec of `entry`-byte pieces.
    pub fn sendmsg_zc(
        &mut self,
        user_data: UserData,
        buf: &[u8],
        entry: usize,
    ) -> Result<(), RingError> {
        if !self.sendmsg_zc {
            return Err(RingError::NoSendmsgZc);
        }
        let iov: Box<[libc::iovec]> = buf
            .chunks(entry.max(1))
            .map(|c| libc::iovec {
                iov_base: c.as_ptr() as *mut libc::c_void,
                iov_len: c.len(),
            })
            .collect();
        // SAFETY: msghdr is plain data; all-zero is an empty message with no name and no
        // control data.
        let mut msg: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len() as _;
        self.push(user_data, Submission::Sendmsg { msg, _iov: iov })
    }

    /// The next CQE, waiting until `deadline`; `Ok(None)` on timeout.
    pub fn wait_cqe(&mut self, deadline: Instant) -> Result<Option<Cqe>, RingError> {
        loop {
            let next = self.ring.completion().next();
            if let Some(c) = next {
                let ud = c.user_data() as UserData;
                let flags = c.flags();
                let notif = cqueue::notif(flags);
                let more = cqueue::more(flags);
                let res = c.result();
                if let Some((&send, _)) = self.links.iter().find(|(_, &t)| t == ud) {
                    // The linked timeout's own CQE (-ETIME fired, -ECANCELED disarmed):
                    // the policy reads it; the send's own CQEs are booked below.
                    self.links.remove(&send);
                    return Ok(Some(Cqe::from_raw(ud, res, more, notif)));
                }
                if !notif {
                    if res >= 0 {
                        self.none_succeeded = false;
                    } else if self.report_usage
                        && self.none_succeeded
                        && res == -libc::EINVAL
                        && self.inflight.get(&ud).is_some_and(Submission::is_zc)
                    {
                        // A kernel before 6.2 refuses REPORT_USAGE: resubmit without it.
                        self.report_usage = false;
                        if let Some(s) = self.inflight.remove(&ud) {
                            self.push(ud, s)?;
                            continue;
                        }
                    }
                    if !more {
                        self.inflight.remove(&ud);
                    }
                } else {
                    self.inflight.remove(&ud);
                }
                return Ok(Some(Cqe::from_raw(ud, res, more, notif)));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let ts = types::Timespec::from(left.min(std::time::Duration::from_millis(200)));
            let args = types::SubmitArgs::new().timespec(&ts);
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => return Err(RingError::Submit(e)),
            }
        }
    }

    /// Submissions whose final CQE has not arrived.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }
}
