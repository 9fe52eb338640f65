//! io_uring: `UringSendZc` (submit one `IORING_OP_SEND_ZC`, or `IORING_OP_SENDMSG_ZC`
//! with one iovec entry per page, an `IORING_OP_LINK_TIMEOUT` linked after it if asked), `UringSend` (a plain `IORING_OP_SEND`) and `UringWaitCqe` (the next completion, send or
//! notification), over [`crate::uring::ZcRing`].
//!
//! Why a module: the ring is created on the first send, and a kernel without io_uring
//! or without SEND_ZC must come out as the errno the policy contract names (so the
//! verdict is `unsupported`), not as a backend failure.

use super::{Executor, Halt, Step};
use crate::sys;
use crate::uring::{RingError, ZcRing};
use zcsafe_policy::{Errno, Outcome, Region, UringZcOpcode, UserData};

impl Executor {
    /// `Op::UringSendZc`.
    pub(super) fn uring_send_zc(
        &mut self,
        buf: Region,
        user_data: UserData,
        opcode: UringZcOpcode,
        link_timeout: Option<UserData>,
    ) -> Step {
        let (off, len) = self.region(buf)?;
        if let Some(refused) = self.ensure_ring() {
            return Ok(refused);
        }
        let page = self.g.page as usize;
        let data = self.buf.slice(off, len);
        let ring = self.ring.as_mut().expect("created above");
        if let Some(t) = link_timeout {
            ring.link_timeout(user_data, t);
        }
        let submitted = match opcode {
            UringZcOpcode::Send => ring.send_zc(user_data, data),
            UringZcOpcode::Sendmsg => ring.sendmsg_zc(user_data, data, page),
        };
        self.submitted(submitted)
    }

    /// `Op::UringSend`: a plain `IORING_OP_SEND`, `MSG_ZEROCOPY` in its flags or not.
    pub(super) fn uring_send(
        &mut self,
        buf: Region,
        user_data: UserData,
        msg_zerocopy: bool,
    ) -> Step {
        let (off, len) = self.region(buf)?;
        if let Some(refused) = self.ensure_ring() {
            return Ok(refused);
        }
        let data = self.buf.slice(off, len);
        let ring = self.ring.as_mut().expect("created above");
        let submitted = ring.send(user_data, data, msg_zerocopy);
        self.submitted(submitted)
    }

    /// Creates the ring on the first submission; `Some(outcome)` when this kernel has
    /// no io_uring for us (the errno the policy contract names).
    fn ensure_ring(&mut self) -> Option<Outcome> {
        if self.ring.is_some() {
            return None;
        }
        match ZcRing::new(self.fd()) {
            Ok(r) => {
                self.ring = Some(r);
                None
            }
            Err(RingError::Setup(e)) => Some(self.err("io_uring_setup", &e)),
            Err(e) => {
                self.last_error = Some(e.to_string());
                Some(Outcome::Err(Errno::OpNotSupp))
            }
        }
    }

    /// The outcome of a submission: an opcode missing from the probe is `EOPNOTSUPP`.
    fn submitted(&mut self, submitted: Result<(), RingError>) -> Step {
        match submitted {
            Ok(()) => Ok(Outcome::Ok),
            Err(e @ (RingError::NoSendZc | RingError::NoSendmsgZc)) => {
                self.last_error = Some(format!("{e} of Linux {}", sys::kernel_release()));
                Ok(Outcome::Err(Errno::OpNotSupp))
            }
            Err(e) => Err(Halt::Failed(e.to_string())),
        }
    }

    /// `Op::UringWaitCqe`.
    pub(super) fn uring_wait_cqe(&mut self) -> Step {
        let deadline = self.deadline();
        let secs = self.secs();
        let Some(ring) = self.ring.as_mut() else {
            return Err(Halt::Stuck(
                "waited for an io_uring CQE with nothing submitted".into(),
            ));
        };
        match ring.wait_cqe(deadline) {
            Ok(Some(c)) => {
                if c.res < 0 {
                    let e = std::io::Error::from_raw_os_error(-c.res as i32);
                    self.last_error = Some(format!(
                        "io_uring SEND_ZC: {} on Linux {}",
                        sys::errno_text(&e),
                        sys::kernel_release()
                    ));
                }
                Ok(Outcome::Cqe(c))
            }
            Ok(None) => Err(Halt::Stuck(format!(
                "waited {secs:.1} s for an io_uring CQE ({} submissions unfinished)",
                ring.inflight()
            ))),
            Err(e) => Err(Halt::Failed(e.to_string())),
        }
    }
}
