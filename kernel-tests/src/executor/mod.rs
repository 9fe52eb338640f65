//! Performs a policy's operations with real system calls on a connected socket.
//!
//! Every blocking operation waits at most `op_timeout`: a policy waiting for something
//! that does not come is `stuck`, with what it waited for. Sockets are blocking with
//! `SO_SNDTIMEO`, so `send`/`splice`/`sendfile` block exactly as a real sender's would.
//!
//! Why a directory: one module per kernel API the operations use, each holding the
//! state that API needs — `buffer` (the user buffer and its page table), `socket`
//! (`send`, `SIOCOUTQ`), `zerocopy` (`SO_ZEROCOPY`, the error queue), `splice` (the
//! pipe, `vmsplice`, `splice`), `uring` (`IORING_OP_SEND_ZC`), `files` (tmpfs files,
//! `sendfile`), `app_ack` (the receiver's consumed-byte counts) and `udp` (when the
//! kernel let go of each datagram, for a UDP socket). This file holds
//! what they share: the result types, the dispatch, errno reporting and the one
//! EINTR/EAGAIN policy of blocking writes (`Executor::blocking_write`). The raw calls
//! are in [`crate::sys`], shared with the probe.

mod app_ack;
mod buffer;
mod files;
mod socket;
mod splice;
mod udp;
mod uring;
mod zerocopy;

pub use socket::Conn;
pub use udp::Sends;

use crate::app_ack::AckDecoder;
use crate::exposure::{Consumed, Exposure, Tracker};
use crate::sys::{self, Mapping};
use crate::uring::ZcRing;
use std::net::{TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};
use zcsafe_policy::{Errno, Geometry, Op, Outcome, Region};

/// The result of one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Performed {
    Outcome(Outcome),
    /// A blocking operation timed out: what it waited for.
    Stuck(String),
    /// The backend itself failed (not an errno the policy should see).
    Failed(String),
}

/// Why an operation has no [`Outcome`]: the error side of every handler, so `?` can
/// leave one early. An errno the policy should see is an `Ok(Outcome::Err(..))`.
#[derive(Debug)]
enum Halt {
    /// See [`Performed::Stuck`].
    Stuck(String),
    /// See [`Performed::Failed`].
    Failed(String),
}

/// What every handler returns.
type Step = Result<Outcome, Halt>;

/// The sender side of one run.
pub struct Executor {
    /// Declared first so it is dropped first: pending submissions are cancelled before
    /// the buffer they point into is unmapped.
    ring: Option<ZcRing>,
    g: Geometry,
    seed: u64,
    op_timeout: Duration,
    buf: Mapping,
    /// Which pages of the buffer are mapped (Munmap/Mmap); Fill of a hole is a policy bug.
    mapped: Vec<bool>,
    sock: Conn,
    /// A UDP socket's notification ledger ([`udp`]); `None` on TCP.
    udp: Option<udp::Ledger>,
    pipe: Option<(OwnedFd, OwnedFd)>,
    files: files::Files,
    outq: socket::OutqWatch,
    acks: AckDecoder,
    ack_eof: bool,
    /// Every reuse, measured against the receiver's progress.
    reuses: Tracker,
    /// The last failed system call, with errno, for `unsupported` verdicts.
    pub last_error: Option<String>,
}

impl Executor {
    /// The sender on a connected TCP stream, its reuses measured against `consumed`
    /// (the receiver's progress).
    pub fn new(
        g: Geometry,
        seed: u64,
        sock: TcpStream,
        op_timeout: Duration,
        consumed: Consumed,
    ) -> Result<Executor, crate::KernelError> {
        Executor::on(g, seed, Conn::Tcp(sock), op_timeout, consumed, None)
    }

    /// The sender on a connected UDP socket, its reuses measured against its own
    /// notification ledger ([`Sends`] counts what it saw).
    pub fn udp(
        g: Geometry,
        seed: u64,
        sock: UdpSocket,
        op_timeout: Duration,
    ) -> Result<Executor, crate::KernelError> {
        let ledger = udp::Ledger::default();
        let released = ledger.released.clone();
        Executor::on(g, seed, Conn::Udp(sock), op_timeout, released, Some(ledger))
    }

    fn on(
        g: Geometry,
        seed: u64,
        sock: Conn,
        op_timeout: Duration,
        consumed: Consumed,
        udp: Option<udp::Ledger>,
    ) -> Result<Executor, crate::KernelError> {
        let buf = Mapping::new(g.buffer as usize)?;
        sys::set_timeout_opt(sock.as_raw_fd(), libc::SO_SNDTIMEO, op_timeout)
            .map_err(|e| crate::KernelError::io("setsockopt(SO_SNDTIMEO)", e))?;
        Ok(Executor {
            udp,
            mapped: vec![true; (g.buffer / g.page) as usize],
            g,
            seed,
            op_timeout,
            buf,
            sock,
            pipe: None,
            ring: None,
            files: files::Files::default(),
            outq: socket::OutqWatch::default(),
            acks: AckDecoder::default(),
            ack_eof: false,
            reuses: Tracker::new(consumed, g.page),
            last_error: None,
        })
    }

    /// How far the policy's reuses exercised the hazard so far.
    pub fn exposure(&self) -> Exposure {
        self.reuses.exposure()
    }

    /// Segments the sender's TCP sent again (`tcpi_total_retrans`): whether the
    /// retransmit queue's pages were read twice. `None` if `TCP_INFO` failed.
    pub fn total_retransmits(&self) -> Option<u64> {
        crate::sys::tcp_info(self.fd())
            .ok()
            .map(|i| i.tcpi_total_retrans as u64)
    }

    fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.op_timeout
    }

    fn secs(&self) -> f64 {
        self.op_timeout.as_secs_f64()
    }

    /// Checks that `r` lies in the buffer; returns (offset, len) as usize.
    fn region(&self, r: Region) -> Result<(usize, usize), Halt> {
        if r.end() > self.g.buffer {
            return Err(Halt::Failed(format!(
                "policy used buf{r}, beyond the {}-byte buffer",
                self.g.buffer
            )));
        }
        Ok((r.offset as usize, r.len as usize))
    }

    /// A failed call the policy sees as an errno; remembered for `unsupported` verdicts.
    /// An error without an errno (a short `pwrite`) is reported as errno 0.
    fn err(&mut self, what: &str, e: &std::io::Error) -> Outcome {
        let n = e.raw_os_error().unwrap_or(0);
        self.last_error = Some(format!(
            "{what}: {} on Linux {}",
            sys::errno_text(&std::io::Error::from_raw_os_error(n)),
            sys::kernel_release()
        ));
        Outcome::Err(Errno::from_raw(n))
    }

    /// The outcome of a blocking write to the socket (`send`, `splice`, `sendfile`),
    /// made through [`sys::retry_eintr`]: the count, stuck when `SO_SNDTIMEO` expired
    /// (`EAGAIN`: no socket buffer space for `op_timeout`), else the errno.
    fn blocking_write(&mut self, what: &str, r: std::io::Result<usize>) -> Step {
        match r {
            Ok(n) => Ok(Outcome::Done(n as u64)),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Err(Halt::Stuck(format!(
                "{what} waited {:.1} s for socket buffer space",
                self.secs()
            ))),
            Err(e) => Ok(self.err(what, &e)),
        }
    }

    /// Performs one operation. `Finish` and `Abort` are handled by the caller.
    pub fn perform(&mut self, op: &Op) -> Performed {
        match self.try_perform(op) {
            Ok(o) => Performed::Outcome(o),
            Err(Halt::Stuck(w)) => Performed::Stuck(w),
            Err(Halt::Failed(w)) => Performed::Failed(w),
        }
    }

    fn try_perform(&mut self, op: &Op) -> Step {
        // The polling contract of Op::Siocoutq waits for a change only while nothing was
        // written to the socket since the previous answer.
        if matches!(
            op,
            Op::Send { .. }
                | Op::Splice { .. }
                | Op::Sendfile { .. }
                | Op::UringSendZc { .. }
                | Op::UringSend { .. }
        ) {
            self.outq.written();
        }
        match *op {
            Op::Fill { buf, stream } => self.fill(buf, stream),
            Op::Munmap { buf } => self.munmap(buf),
            Op::Mmap { buf } => self.mmap(buf),
            Op::Send { buf, zerocopy } => self.send(buf, zerocopy),
            Op::Siocoutq => self.siocoutq(),
            Op::EnableZerocopy => self.enable_zerocopy(),
            Op::ReadErrqueue { block } => self.read_errqueue(block),
            Op::Vmsplice { buf, gift } => self.vmsplice(buf, gift),
            Op::Splice { len } => self.splice(len),
            Op::UringSendZc {
                buf,
                user_data,
                opcode,
                link_timeout,
            } => self.uring_send_zc(buf, user_data, opcode, link_timeout),
            Op::UringSend {
                buf,
                user_data,
                msg_zerocopy,
            } => self.uring_send(buf, user_data, msg_zerocopy),
            Op::UringWaitCqe => self.uring_wait_cqe(),
            Op::CreateFile { file } => self.create_file(file),
            Op::WriteFile {
                file,
                region,
                stream,
            } => self.write_file(file, region, stream),
            Op::Sendfile { file, region } => self.sendfile(file, region),
            Op::RemoveFile { file } => self.remove_file(file),
            Op::WaitAppAck { beyond } => self.wait_app_ack(beyond),
            Op::Finish | Op::Abort(_) => Err(Halt::Failed(format!("{op} reached the executor"))),
        }
    }

    /// After `Finish`: shut the write side so the receiver sees EOF.
    pub fn shutdown_write(&self) {
        self.sock.end(std::net::Shutdown::Write);
    }

    /// Unblocks the receiver at once (a stuck or failed run).
    pub fn abort_connection(&self) {
        self.sock.end(std::net::Shutdown::Both);
    }
}
