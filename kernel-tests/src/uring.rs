//! io_uring `IORING_OP_SEND_ZC` (Linux 6.0): a send CQE (`IORING_CQE_F_MORE` when a
//! notification follows), then a separate `IORING_CQE_F_NOTIF` CQE once the kernel has
//! released the pages (`io_notif_tw_complete` in 6.12's io_uring/notif.c,
//! `__io_notif_complete_tw` in 6.1's). With `IORING_SEND_ZC_REPORT_USAGE` (6.2, and
//! Debian's 6.1.176: `io_send_zc_prep` accepts it) the notification's `res` has
//! `IORING_NOTIF_USAGE_ZC_COPIED` when the data was copied instead — or when nothing was
//! sent with zero copy at all (`zc_copied || !zc_used`, docs/design.md §9).

use io_uring::{cqueue, opcode, types, IoUring, Probe};
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::time::Instant;
use zcsafe_policy::{Cqe, UserData};

pub const IORING_SEND_ZC_REPORT_USAGE: u16 = 8;
pub const IORING_NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

#[derive(Clone, Copy)]
struct Submission {
    ptr: *const u8,
    len: u32,
}

/// A ring for SEND_ZC on one socket.
pub struct ZcRing {
    ring: IoUring,
    fd: RawFd,
    /// Cleared after the kernel refused `REPORT_USAGE` (6.0, 6.1 before the backport).
    report_usage: bool,
    /// No SEND_ZC has succeeded yet, so an `EINVAL` may be the flag's fault.
    none_succeeded: bool,
    inflight: HashMap<UserData, Submission>,
}

/// Why the ring could not be used.
#[derive(Debug)]
pub enum RingError {
    /// `io_uring_setup` failed (ENOSYS, or EPERM from `kernel.io_uring_disabled`).
    Setup(std::io::Error),
    /// The kernel's opcode probe lacks SEND_ZC.
    NoSendZc,
    Submit(std::io::Error),
}

impl std::fmt::Display for RingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RingError::Setup(e) => write!(f, "io_uring_setup: {e}"),
            RingError::NoSendZc => f.write_str("IORING_OP_SEND_ZC missing from the io_uring probe"),
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
        if !opcode_supported(&ring, opcode::SendZc::CODE) {
            return Err(RingError::NoSendZc);
        }
        Ok(ZcRing {
            ring,
            fd,
            report_usage: true,
            none_succeeded: true,
            inflight: HashMap::new(),
        })
    }

    fn push(&mut self, user_data: UserData, s: Submission) -> Result<(), RingError> {
        let e = opcode::SendZc::new(types::Fd(self.fd), s.ptr, s.len)
            // MSG_WAITALL: like a blocking send(2), the send CQE comes when every byte is
            // queued; without it `io_send_zc` completes short when the socket is full
            // (`io_net_retry` retries stream sockets only with MSG_WAITALL).
            .flags(libc::MSG_NOSIGNAL | libc::MSG_WAITALL)
            .zc_flags(if self.report_usage {
                IORING_SEND_ZC_REPORT_USAGE
            } else {
                0
            })
            .build()
            .user_data(user_data as u64);
        loop {
            // SAFETY: the buffer stays mapped for the run (the executor owns it) and the
            // kernel reads it until the NOTIF CQE, which is the point of the exercise.
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                break;
            }
            self.ring.submit().map_err(RingError::Submit)?;
        }
        self.ring.submit().map_err(RingError::Submit)?;
        self.inflight.insert(user_data, s);
        Ok(())
    }

    /// Submits one SEND_ZC now (`io_uring_enter` before returning).
    pub fn send_zc(&mut self, user_data: UserData, buf: &[u8]) -> Result<(), RingError> {
        let s = Submission {
            ptr: buf.as_ptr(),
            len: buf.len().min(u32::MAX as usize) as u32,
        };
        self.push(user_data, s)
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
                if !notif {
                    if res >= 0 {
                        self.none_succeeded = false;
                    } else if self.report_usage && self.none_succeeded && res == -libc::EINVAL {
                        // A kernel before 6.2 refuses REPORT_USAGE: resubmit without it.
                        self.report_usage = false;
                        if let Some(s) = self.inflight.get(&ud).copied() {
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
                let copied = notif && (res as u32) & IORING_NOTIF_USAGE_ZC_COPIED != 0;
                let res = if notif {
                    ((res as u32) & !IORING_NOTIF_USAGE_ZC_COPIED) as i32
                } else {
                    res
                };
                return Ok(Some(Cqe {
                    user_data: ud,
                    res: res as i64,
                    more,
                    notif,
                    copied,
                }));
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
