//! Performs a policy's operations with real system calls on a connected socket.
//!
//! Every blocking operation waits at most `op_timeout`: a policy waiting for something
//! that does not come is `stuck`, with what it waited for. Sockets are blocking with
//! `SO_SNDTIMEO`, so `send`/`splice`/`sendfile` block exactly as a real sender's would.

use crate::errqueue::{self, ErrqueueRead};
use crate::sys::{self, Mapping};
use crate::uring::{RingError, ZcRing};
use std::collections::HashMap;
use std::fs::File;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use zcsafe_policy::{stream, Errno, FileId, Geometry, Op, Outcome, Region};

/// The result of one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Performed {
    Outcome(Outcome),
    /// A blocking operation timed out: what it waited for.
    Stuck(String),
    /// The backend itself failed (not an errno the policy should see).
    Failed(String),
}

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
    sock: TcpStream,
    pipe: Option<(OwnedFd, OwnedFd)>,
    files_dir: Option<tempfile::TempDir>,
    files: HashMap<FileId, (PathBuf, File)>,
    last_siocoutq: Option<u64>,
    /// Where the current fall of SIOCOUTQ started (time, value; reset when it rises), and
    /// the rate (bytes/s) it fell at over that whole window (ACKs come in bursts, so a
    /// rate between two polls would overshoot): a poll naps about a quarter of the time
    /// the queue needs to drain, not a fixed backoff.
    outq_seen: Option<(Instant, u64)>,
    outq_rate: f64,
    ack_carry: Vec<u8>,
    acked: u64,
    ack_eof: bool,
    /// The last failed system call, with errno, for `unsupported` verdicts.
    pub last_error: Option<String>,
}

/// [`stream::fill`], a word at a time when the range is word-aligned (every policy's
/// is): five times faster, so the sender is not slowed down by producing the stream.
fn fill(dst: &mut [u8], offset: u64, seed: u64) {
    if offset % 8 != 0 || dst.len() % 8 != 0 {
        return stream::fill(dst, offset, seed);
    }
    let k0 = offset / 8;
    for (i, w) in dst.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&stream::word(k0 + i as u64, seed).to_le_bytes());
    }
}

fn errno_name(e: i32) -> String {
    format!(
        "{} ({})",
        Errno::from_raw(e),
        std::io::Error::from_raw_os_error(e)
    )
}

impl Executor {
    pub fn new(
        g: Geometry,
        seed: u64,
        sock: TcpStream,
        op_timeout: Duration,
    ) -> Result<Executor, crate::KernelError> {
        let buf = Mapping::new(g.buffer as usize)?;
        sys::set_timeout_opt(sock.as_raw_fd(), libc::SO_SNDTIMEO, op_timeout)
            .map_err(|e| crate::KernelError::io("setsockopt(SO_SNDTIMEO)", e))?;
        Ok(Executor {
            mapped: vec![true; (g.buffer / g.page) as usize],
            g,
            seed,
            op_timeout,
            buf,
            sock,
            pipe: None,
            ring: None,
            files_dir: None,
            files: HashMap::new(),
            last_siocoutq: None,
            outq_seen: None,
            outq_rate: 0.0,
            ack_carry: Vec::new(),
            acked: 0,
            ack_eof: false,
            last_error: None,
        })
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
    fn region(&self, r: Region) -> Result<(usize, usize), Performed> {
        if r.end() > self.g.buffer {
            return Err(Performed::Failed(format!(
                "policy used buf{r}, beyond the {}-byte buffer",
                self.g.buffer
            )));
        }
        Ok((r.offset as usize, r.len as usize))
    }

    fn err(&mut self, what: &str, e: i32) -> Performed {
        self.last_error = Some(format!(
            "{what}: {} on Linux {}",
            errno_name(e),
            sys::kernel_release()
        ));
        Performed::Outcome(Outcome::Err(Errno::from_raw(e)))
    }

    fn pipe(&mut self) -> Result<(RawFd, RawFd), Performed> {
        if self.pipe.is_none() {
            let (r, w) = sys::pipe().map_err(|e| Performed::Failed(e.to_string()))?;
            // SAFETY: fcntl on our pipe.
            let got = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, self.g.pipe as i32) };
            if got < 0 {
                return Err(Performed::Failed(format!(
                    "F_SETPIPE_SZ {}: {}",
                    self.g.pipe,
                    std::io::Error::last_os_error()
                )));
            }
            if got as u64 != self.g.pipe {
                return Err(Performed::Failed(format!(
                    "F_SETPIPE_SZ {} gave a {got}-byte pipe: the geometry's pipe must be a power-of-two number of pages",
                    self.g.pipe
                )));
            }
            self.pipe = Some((r, w));
        }
        let (r, w) = self.pipe.as_ref().expect("created above");
        Ok((r.as_raw_fd(), w.as_raw_fd()))
    }

    /// Performs one operation. `Finish` and `Abort` are handled by the caller.
    pub fn perform(&mut self, op: &Op) -> Performed {
        match self.try_perform(op) {
            Ok(p) | Err(p) => p,
        }
    }

    fn try_perform(&mut self, op: &Op) -> Result<Performed, Performed> {
        let ok = |o| Ok(Performed::Outcome(o));
        // The polling contract of Op::Siocoutq waits for a change only while nothing was
        // written to the socket since the previous answer.
        if matches!(
            op,
            Op::Send { .. } | Op::Splice { .. } | Op::Sendfile { .. } | Op::UringSendZc { .. }
        ) {
            self.last_siocoutq = None;
        }
        match *op {
            Op::Fill { buf, stream: at } => {
                let (off, len) = self.region(buf)?;
                let ps = self.g.page;
                if let Some(p) =
                    (buf.offset / ps..buf.end().div_ceil(ps)).find(|&p| !self.mapped[p as usize])
                {
                    return Err(Performed::Failed(format!(
                        "policy filled buf{buf}, but page {p} is unmapped"
                    )));
                }
                fill(self.buf.slice_mut(off, len), at, self.seed);
                ok(Outcome::Ok)
            }
            Op::Send { buf, zerocopy } => {
                let (off, len) = self.region(buf)?;
                let mut flags = libc::MSG_NOSIGNAL;
                if zerocopy {
                    flags |= libc::MSG_ZEROCOPY;
                }
                let ptr = self.buf.slice_mut(off, len).as_ptr();
                loop {
                    // SAFETY: sends from our mapping.
                    let r =
                        unsafe { libc::send(self.fd(), ptr as *const libc::c_void, len, flags) };
                    if r >= 0 {
                        return ok(Outcome::Done(r as u64));
                    }
                    match sys::errno() {
                        libc::EINTR => continue,
                        libc::EAGAIN => {
                            return Ok(Performed::Stuck(format!(
                                "send waited {:.1} s for socket buffer space",
                                self.secs()
                            )))
                        }
                        e => return Ok(self.err("send", e)),
                    }
                }
            }
            Op::EnableZerocopy => {
                match sys::set_int_opt(self.fd(), libc::SOL_SOCKET, libc::SO_ZEROCOPY, 1) {
                    Ok(()) => ok(Outcome::Ok),
                    Err(e) => {
                        Ok(self.err("setsockopt(SO_ZEROCOPY)", e.raw_os_error().unwrap_or(0)))
                    }
                }
            }
            Op::Vmsplice { buf, gift } => {
                let (off, len) = self.region(buf)?;
                let (_, w) = self.pipe()?;
                match sys::poll_until(w, libc::POLLOUT, self.deadline()) {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Ok(Performed::Stuck(format!(
                            "vmsplice waited {:.1} s for room in a full pipe",
                            self.secs()
                        )))
                    }
                    Err(e) => return Err(Performed::Failed(format!("poll(pipe): {e}"))),
                }
                let iov = libc::iovec {
                    iov_base: self.buf.slice_mut(off, len).as_mut_ptr() as *mut libc::c_void,
                    iov_len: len,
                };
                let mut flags = libc::SPLICE_F_NONBLOCK;
                if gift {
                    flags |= libc::SPLICE_F_GIFT;
                }
                // SAFETY: one iovec into our mapping.
                let r = unsafe { libc::vmsplice(w, &iov, 1, flags) };
                if r < 0 {
                    let what = if gift {
                        "vmsplice(SPLICE_F_GIFT)"
                    } else {
                        "vmsplice"
                    };
                    return Ok(self.err(what, sys::errno()));
                }
                ok(Outcome::Done(r as u64))
            }
            Op::Splice { len } => {
                let (r, _) = self.pipe()?;
                let deadline = self.deadline();
                // An empty pipe blocks splice until a writer adds pages (`splice_to_socket`
                // → `pipe_wait_readable`); only this sender writes it, so that is stuck.
                match sys::poll_until(r, libc::POLLIN, deadline) {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Ok(Performed::Stuck(format!(
                            "splice waited {:.1} s on an empty pipe",
                            self.secs()
                        )))
                    }
                    Err(e) => return Err(Performed::Failed(format!("poll(pipe): {e}"))),
                }
                loop {
                    // SAFETY: splice between our pipe and socket, no offsets.
                    let n = unsafe {
                        libc::splice(
                            r,
                            std::ptr::null_mut(),
                            self.fd(),
                            std::ptr::null_mut(),
                            len as usize,
                            libc::SPLICE_F_MOVE,
                        )
                    };
                    if n >= 0 {
                        return ok(Outcome::Done(n as u64));
                    }
                    match sys::errno() {
                        libc::EINTR => continue,
                        libc::EAGAIN => {
                            return Ok(Performed::Stuck(format!(
                                "splice waited {:.1} s for socket buffer space",
                                self.secs()
                            )))
                        }
                        e => return Ok(self.err("splice", e)),
                    }
                }
            }
            Op::Siocoutq => {
                let deadline = self.deadline();
                loop {
                    let v = match sys::siocoutq(self.fd()) {
                        Ok(v) => v,
                        Err(e) => {
                            return Ok(self.err("ioctl(SIOCOUTQ)", e.raw_os_error().unwrap_or(0)))
                        }
                    };
                    let now = Instant::now();
                    match self.outq_seen {
                        Some((t0, v0)) if v <= v0 => {
                            let dt = now.saturating_duration_since(t0).as_secs_f64();
                            if v < v0 && dt > 0.0 {
                                self.outq_rate = (v0 - v) as f64 / dt;
                            }
                        }
                        _ => self.outq_seen = Some((now, v)),
                    }
                    // The polling contract of Op::Siocoutq: answer only a changed value
                    // (or any value after a write).
                    if self.last_siocoutq != Some(v) {
                        self.last_siocoutq = Some(v);
                        return ok(Outcome::Done(v));
                    }
                    if Instant::now() >= deadline {
                        return Ok(Performed::Stuck(format!(
                            "SIOCOUTQ stayed at {v} for {:.1} s",
                            self.secs()
                        )));
                    }
                    let nap = if self.outq_rate > 0.0 {
                        Duration::from_secs_f64(v as f64 / self.outq_rate / 4.0)
                    } else {
                        Duration::from_micros(50)
                    };
                    std::thread::sleep(
                        nap.clamp(Duration::from_micros(5), Duration::from_millis(2)),
                    );
                }
            }
            Op::ReadErrqueue { block } => {
                let deadline = self.deadline();
                // The last poll woke with POLLERR: read at once, without a nap.
                let mut err_wake = false;
                loop {
                    match errqueue::read_one(self.fd()) {
                        Ok(ErrqueueRead::Notification(n)) => return ok(Outcome::Zc(Some(n))),
                        Ok(ErrqueueRead::Other { .. }) => continue,
                        Ok(ErrqueueRead::Empty) if !block => return ok(Outcome::Zc(None)),
                        Ok(ErrqueueRead::Empty) => {}
                        Err(e) => {
                            return Ok(
                                self.err("recvmsg(MSG_ERRQUEUE)", e.raw_os_error().unwrap_or(0))
                            )
                        }
                    }
                    if err_wake {
                        // POLLERR without a notification: a socket error, not ours.
                        std::thread::sleep(Duration::from_micros(100));
                    }
                    // poll with no events still reports POLLERR: `tcp_poll` sets it while
                    // sk_error_queue is non-empty.
                    match sys::poll_until(self.fd(), 0, deadline) {
                        Ok(Some(revents)) => err_wake = revents & libc::POLLERR != 0,
                        Ok(None) => {
                            return Ok(Performed::Stuck(format!(
                                "waited {:.1} s for a MSG_ZEROCOPY notification",
                                self.secs()
                            )))
                        }
                        Err(e) => return Err(Performed::Failed(format!("poll(POLLERR): {e}"))),
                    }
                    if !err_wake {
                        // POLLHUP/POLLIN also wake poll: avoid a busy loop.
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
            }
            Op::UringSendZc { buf, user_data } => {
                let (off, len) = self.region(buf)?;
                if self.ring.is_none() {
                    match ZcRing::new(self.fd()) {
                        Ok(r) => self.ring = Some(r),
                        Err(RingError::Setup(e)) => {
                            return Ok(self.err("io_uring_setup", e.raw_os_error().unwrap_or(0)))
                        }
                        Err(RingError::NoSendZc) => {
                            self.last_error = Some(format!(
                                "IORING_OP_SEND_ZC is not in the io_uring probe of Linux {}",
                                sys::kernel_release()
                            ));
                            return ok(Outcome::Err(Errno::OpNotSupp));
                        }
                        Err(e) => return Err(Performed::Failed(e.to_string())),
                    }
                }
                let data = self.buf.slice_mut(off, len) as *const [u8];
                let ring = self.ring.as_mut().expect("created above");
                // SAFETY: the slice points into our mapping, alive for the executor's life.
                match ring.send_zc(user_data, unsafe { &*data }) {
                    Ok(()) => ok(Outcome::Ok),
                    Err(e) => Err(Performed::Failed(e.to_string())),
                }
            }
            Op::UringWaitCqe => {
                let deadline = self.deadline();
                let secs = self.secs();
                let Some(ring) = self.ring.as_mut() else {
                    return Ok(Performed::Stuck(
                        "waited for an io_uring CQE with nothing submitted".into(),
                    ));
                };
                match ring.wait_cqe(deadline) {
                    Ok(Some(c)) => {
                        if c.res < 0 {
                            self.last_error = Some(format!(
                                "io_uring SEND_ZC: {} on Linux {}",
                                errno_name(-c.res as i32),
                                sys::kernel_release()
                            ));
                        }
                        ok(Outcome::Cqe(c))
                    }
                    Ok(None) => Ok(Performed::Stuck(format!(
                        "waited {secs:.1} s for an io_uring CQE ({} submissions unfinished)",
                        ring.inflight()
                    ))),
                    Err(e) => Err(Performed::Failed(e.to_string())),
                }
            }
            Op::CreateFile { file } => {
                if self.files_dir.is_none() {
                    // tmpfs, so pages live in the page cache only (`shmem_file_splice_read`).
                    let dir = tempfile::Builder::new()
                        .prefix("zcsafe-")
                        .tempdir_in("/dev/shm")
                        .or_else(|_| tempfile::Builder::new().prefix("zcsafe-").tempdir())
                        .map_err(|e| Performed::Failed(format!("temp dir: {e}")))?;
                    self.files_dir = Some(dir);
                }
                let path = self
                    .files_dir
                    .as_ref()
                    .expect("created above")
                    .path()
                    .join(format!("file{file}"));
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(|e| Performed::Failed(format!("create {}: {e}", path.display())))?;
                self.files.insert(file, (path, f));
                ok(Outcome::Ok)
            }
            Op::WriteFile {
                file,
                region,
                stream: at,
            } => {
                let Some((_, f)) = self.files.get(&file) else {
                    return Err(Performed::Failed(format!(
                        "policy wrote file{file}, which does not exist"
                    )));
                };
                let mut data = vec![0u8; region.len as usize];
                fill(&mut data, at, self.seed);
                match f.write_all_at(&data, region.offset) {
                    Ok(()) => ok(Outcome::Ok),
                    Err(e) => Ok(self.err("pwrite", e.raw_os_error().unwrap_or(0))),
                }
            }
            Op::Sendfile { file, region } => {
                let Some((_, f)) = self.files.get(&file) else {
                    return Err(Performed::Failed(format!(
                        "policy sent file{file}, which does not exist"
                    )));
                };
                let ffd = f.as_raw_fd();
                let mut off = region.offset as libc::off_t;
                loop {
                    // SAFETY: sendfile from our file to our socket.
                    let n =
                        unsafe { libc::sendfile(self.fd(), ffd, &mut off, region.len as usize) };
                    if n >= 0 {
                        return ok(Outcome::Done(n as u64));
                    }
                    match sys::errno() {
                        libc::EINTR => continue,
                        libc::EAGAIN => {
                            return Ok(Performed::Stuck(format!(
                                "sendfile waited {:.1} s for socket buffer space",
                                self.secs()
                            )))
                        }
                        e => return Ok(self.err("sendfile", e)),
                    }
                }
            }
            Op::RemoveFile { file } => {
                let Some((path, f)) = self.files.remove(&file) else {
                    return Err(Performed::Failed(format!(
                        "policy removed file{file}, which does not exist"
                    )));
                };
                drop(f);
                let _ = std::fs::remove_file(path);
                ok(Outcome::Ok)
            }
            Op::Munmap { buf } => {
                let (off, len) = self.region(buf)?;
                self.page_aligned(buf)?;
                // SAFETY: a page-aligned range inside our mapping; Fill checks `mapped`.
                let r = unsafe { libc::munmap(self.buf.ptr.add(off) as *mut libc::c_void, len) };
                if r < 0 {
                    return Ok(self.err("munmap", sys::errno()));
                }
                self.set_mapped(buf, false);
                ok(Outcome::Ok)
            }
            Op::Mmap { buf } => {
                let (off, len) = self.region(buf)?;
                self.page_aligned(buf)?;
                // SAFETY: MAP_FIXED inside our own reservation.
                let p = unsafe {
                    libc::mmap(
                        self.buf.ptr.add(off) as *mut libc::c_void,
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                        -1,
                        0,
                    )
                };
                if p == libc::MAP_FAILED {
                    return Ok(self.err("mmap(MAP_FIXED)", sys::errno()));
                }
                self.set_mapped(buf, true);
                ok(Outcome::Ok)
            }
            Op::WaitAppAck { beyond } => self.wait_app_ack(beyond),
            Op::Finish | Op::Abort(_) => {
                Err(Performed::Failed(format!("{op} reached the executor")))
            }
        }
    }

    fn page_aligned(&self, r: Region) -> Result<(), Performed> {
        if r.offset % self.g.page != 0 || r.len % self.g.page != 0 {
            return Err(Performed::Failed(format!("buf{r} is not whole pages")));
        }
        Ok(())
    }

    fn set_mapped(&mut self, r: Region, on: bool) {
        for p in r.offset / self.g.page..r.end() / self.g.page {
            self.mapped[p as usize] = on;
        }
    }

    /// Reads the receiver's cumulative 8-byte counts until one exceeds `beyond`.
    fn wait_app_ack(&mut self, beyond: u64) -> Result<Performed, Performed> {
        let deadline = self.deadline();
        loop {
            if self.acked > beyond {
                return Ok(Performed::Outcome(Outcome::Done(self.acked)));
            }
            if self.ack_eof {
                return Ok(Performed::Stuck(format!(
                    "waited for the receiver to report more than {beyond} bytes, but it closed at {}",
                    self.acked
                )));
            }
            match sys::poll_until(self.fd(), libc::POLLIN, deadline) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Ok(Performed::Stuck(format!(
                        "waited {:.1} s for the receiver to report more than {beyond} bytes consumed (last report {})",
                        self.secs(),
                        self.acked
                    )))
                }
                Err(e) => return Err(Performed::Failed(format!("poll: {e}"))),
            }
            self.read_acks();
        }
    }

    /// Drains whatever counts are readable now, without blocking.
    fn read_acks(&mut self) {
        let mut b = [0u8; 4096];
        loop {
            // SAFETY: receives into a stack buffer.
            let n = unsafe {
                libc::recv(
                    self.fd(),
                    b.as_mut_ptr() as *mut libc::c_void,
                    b.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n == 0 {
                self.ack_eof = true;
                return;
            }
            if n < 0 {
                if sys::errno() != libc::EAGAIN && sys::errno() != libc::EINTR {
                    self.ack_eof = true;
                }
                return;
            }
            self.ack_carry.extend_from_slice(&b[..n as usize]);
            let whole = self.ack_carry.len() / 8 * 8;
            for w in self.ack_carry[..whole].chunks_exact(8) {
                let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
                self.acked = self.acked.max(v);
            }
            self.ack_carry.drain(..whole);
        }
    }

    /// After `Finish`: shut the write side so the receiver sees EOF.
    pub fn shutdown_write(&self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
    }

    /// Unblocks the receiver at once (a stuck or failed run).
    pub fn abort_connection(&self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }

    /// Reads the receiver's remaining acks until it closes, so our close sends FIN, not
    /// RST (`tcp_close` resets when unread data is queued).
    pub fn drain_until_eof(&mut self, deadline: Instant) {
        while !self.ack_eof && Instant::now() < deadline {
            match sys::poll_until(self.fd(), libc::POLLIN, deadline) {
                Ok(Some(_)) => self.read_acks(),
                _ => return,
            }
        }
    }
}
