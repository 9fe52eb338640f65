//! The report channel of `zcsafe sanitize`: what the preloaded runtime
//! (`zcsafe-sanitizer`) tells `zcsafe`, one JSON object per line in the file named by
//! [`REPORT_ENV`].
//!
//! Both sides use these types: the runtime serialises them (inside a signal handler, so
//! every field is a number, an enum or a borrowed string — serialising allocates
//! nothing), `zcsafe` reads them back with [`read_log`]. No meaning is ever parsed out of
//! text.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::path::Path;

/// Version of this channel, in every [`Start`] line; bumped on incompatible changes.
pub const CHANNEL_VERSION: u32 = 1;

/// Environment variable: the file (opened `O_APPEND`) the runtime writes its lines to.
pub const REPORT_ENV: &str = "ZCSAFE_SANITIZE_REPORT";

/// Environment variable: `1` stops the program at its first premature write.
pub const ABORT_ENV: &str = "ZCSAFE_SANITIZE_ABORT";

/// One line of the channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    /// The runtime was loaded into a process (one per process, after every `exec`).
    Start(Start<'a>),
    /// A write to bytes a zero-copy submission still holds.
    PrematureWrite(PrematureWrite<'a>),
    /// What the runtime tracked in one process, written when it exits normally.
    Summary(Summary),
}

/// The runtime is active in a process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start<'a> {
    /// [`CHANNEL_VERSION`] of the runtime.
    pub version: u32,
    /// The process.
    pub pid: i32,
    /// `/proc/self/exe` at start.
    pub exe: Cow<'a, str>,
}

/// The zero-copy call that handed bytes to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendCall {
    /// `send(2)`.
    Send,
    /// `sendto(2)`.
    Sendto,
    /// `sendmsg(2)`.
    Sendmsg,
    /// `sendmmsg(2)` (one submission per message).
    Sendmmsg,
    /// An io_uring `IORING_OP_SEND_ZC` request.
    UringSendZc,
    /// An io_uring `IORING_OP_SENDMSG_ZC` request.
    UringSendmsgZc,
}

impl SendCall {
    /// The libc name.
    pub fn name(self) -> &'static str {
        match self {
            SendCall::Send => "send",
            SendCall::Sendto => "sendto",
            SendCall::Sendmsg => "sendmsg",
            SendCall::Sendmmsg => "sendmmsg",
            SendCall::UringSendZc => "io_uring SEND_ZC",
            SendCall::UringSendmsgZc => "io_uring SENDMSG_ZC",
        }
    }

    /// Whether the call is an io_uring request (released by its NOTIF CQE, not by the
    /// error queue).
    pub fn is_uring(self) -> bool {
        matches!(self, SendCall::UringSendZc | SendCall::UringSendmsgZc)
    }
}

/// A tracked zero-copy submission: one `MSG_ZEROCOPY` call that queued bytes (the kernel
/// gave it one notification id, `msg_zerocopy_realloc`), or one io_uring zero-copy
/// request the kernel consumed from the submission queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// The call.
    pub call: SendCall,
    /// The socket (for io_uring: the SQE's `fd`, a registered-file index with
    /// `IOSQE_FIXED_FILE`).
    pub fd: i32,
    /// The `MSG_ZEROCOPY` notification id the kernel assigned (`sk_zckey`, a `u32`); for
    /// io_uring, the request's number among the ring's tracked ones.
    pub zc_id: u32,
    /// For io_uring: the SQE's `user_data`, which its NOTIF CQE carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<u64>,
    /// Its number among the process's tracked submissions (from 0).
    pub seq: u64,
}

/// Who wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Writer<'a> {
    /// An instruction of the program (a store that faulted on a protected page).
    Instruction {
        /// The faulting instruction's address.
        ip: u64,
        /// The mapped file that holds it (`/proc/self/maps`), if any.
        module: Option<Cow<'a, str>>,
        /// `ip` as an offset into that file (for `addr2line -e module`).
        module_offset: u64,
    },
    /// The kernel, on behalf of a system call the program made (`read` into the buffer).
    Syscall {
        /// The libc name of the call.
        call: Cow<'a, str>,
    },
}

/// A write to bytes of an in-flight zero-copy submission, before the program had read
/// the notification that releases them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrematureWrite<'a> {
    /// The process.
    pub pid: i32,
    /// The thread that wrote.
    pub tid: i32,
    /// Who wrote.
    pub writer: Writer<'a>,
    /// The first address written that the submission holds.
    pub addr: u64,
    /// The submission that holds it.
    pub submission: Submission,
    /// The byte range of that submission the address falls in: start …
    pub range_start: u64,
    /// … and length.
    pub range_len: u64,
    /// The highest notification id the program had read on that socket (`None`: none;
    /// always `None` for io_uring, whose NOTIFs carry a `user_data`, not an id).
    pub notified_through: Option<u32>,
    /// How many zero-copy notifications the program had read on that socket (for io_uring:
    /// NOTIF CQEs seen in that ring).
    pub notifications_read: u64,
    /// Whether the runtime stops the program here (`--abort`).
    pub abort: bool,
}

impl PrematureWrite<'_> {
    /// One sentence, e.g. `send #41 on fd 3 [0x…, +32768) written at +0 before its
    /// MSG_ZEROCOPY notification (error queue read up to #38)`.
    pub fn sentence(&self) -> String {
        let s = &self.submission;
        if let Some(ud) = s.user_data {
            return format!(
                "{} user_data {ud:#x} (request #{} on its ring, fd {}) [{:#x}, +{}) written at +{} \
                 before its NOTIF CQE ({} NOTIF(s) seen in the ring)",
                s.call.name(),
                s.zc_id,
                s.fd,
                self.range_start,
                self.range_len,
                self.addr.wrapping_sub(self.range_start),
                self.notifications_read,
            );
        }
        let read = match self.notified_through {
            Some(n) => format!("error queue read up to #{n}"),
            None => "no notification read yet".into(),
        };
        format!(
            "{} #{} on fd {} [{:#x}, +{}) written at +{} before its MSG_ZEROCOPY notification ({read})",
            s.call.name(),
            s.zc_id,
            s.fd,
            self.range_start,
            self.range_len,
            self.addr.wrapping_sub(self.range_start),
        )
    }
}

/// What the runtime did in one process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The process.
    pub pid: i32,
    /// Zero-copy submissions tracked (each write-protected until released).
    pub tracked: u64,
    /// Released by a notification the program read.
    pub released: u64,
    /// Released because the program closed the socket (its notifications can no longer
    /// be read; see docs/design.md §8).
    pub released_by_close: u64,
    /// Still in flight when the process exited.
    pub in_flight_at_exit: u64,
    /// `MSG_ZEROCOPY` calls the runtime could not track (not a TCP socket; zero-copy
    /// disabled on the socket is a copy, not counted).
    pub untracked: u64,
    /// Zero-copy notifications the program read.
    pub notifications: u64,
    /// Writes to premature ranges, every one counted (a store repeated over one range, as
    /// `rep movsb` does, is one finding but many writes).
    pub premature_writes: u64,
    /// Writes to protected pages outside every in-flight range (they proceeded).
    pub other_writes: u64,
    /// System calls that write memory let through by lifting the protection of the pages
    /// they write.
    pub syscall_lifts: u64,
    /// `mprotect` calls that failed (the pages stayed as they were).
    pub protect_failures: u64,
    /// io_uring rings the runtime followed (from `io_uring_setup`).
    #[serde(default)]
    pub uring_rings: u64,
    /// `io_uring_enter` calls the seccomp trap passed through the runtime.
    #[serde(default)]
    pub uring_enters: u64,
    /// io_uring zero-copy requests on rings the runtime cannot follow (SQPOLL, no
    /// mapping, an unknown ring), or io_uring calls made while the trap was not installed.
    #[serde(default)]
    pub uring_untracked: u64,
    /// In-flight io_uring requests released without their NOTIF being seen: CQEs
    /// overwritten before the runtime looked (the ring wrapped), or a ring replaced.
    #[serde(default)]
    pub uring_released_unseen: u64,
}

/// A line of the channel that is not an [`Event`].
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file could not be read.
    #[error("cannot read the sanitizer report {path}: {source}")]
    Read {
        /// The report file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line that does not parse.
    #[error("{path}:{line}: not a sanitizer event ({source}); the runtime and zcsafe are from different builds?")]
    Line {
        /// The report file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// Why.
        source: serde_json::Error,
    },
}

/// Reads every event of a report file, in the order written.
pub fn read_log(path: &Path) -> Result<Vec<Event<'static>>, LogError> {
    let text = std::fs::read_to_string(path).map_err(|source| LogError::Read {
        path: path.display().to_string(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| LogError::Line {
                path: path.display().to_string(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_as_one_line_each() {
        let w = Event::PrematureWrite(PrematureWrite {
            pid: 7,
            tid: 8,
            writer: Writer::Instruction {
                ip: 0x1234,
                module: Some(Cow::Borrowed("/bin/x")),
                module_offset: 0x234,
            },
            addr: 0x1010,
            submission: Submission {
                call: SendCall::Sendmsg,
                fd: 3,
                zc_id: u32::MAX,
                user_data: None,
                seq: 9,
            },
            range_start: 0x1000,
            range_len: 100,
            notified_through: Some(3),
            notifications_read: 2,
            abort: false,
        });
        let line = serde_json::to_string(&w).unwrap();
        assert!(!line.contains('\n'));
        assert!(
            line.starts_with(r#"{"event":"premature_write","pid":7"#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<Event<'_>>(&line).unwrap(), w);
        let Event::PrematureWrite(p) = w else {
            unreachable!()
        };
        assert_eq!(
            p.sentence(),
            "sendmsg #4294967295 on fd 3 [0x1000, +100) written at +16 before its \
             MSG_ZEROCOPY notification (error queue read up to #3)"
        );
    }

    #[test]
    fn a_bad_line_is_refused_with_its_number() {
        let dir = std::env::temp_dir().join(format!("zcsafe-events-{}", std::process::id()));
        std::fs::write(&dir, "{\"event\":\"summary\",\"pid\":1,\"tracked\":0,\"released\":0,\"released_by_close\":0,\"in_flight_at_exit\":0,\"untracked\":0,\"notifications\":0,\"premature_writes\":0,\"other_writes\":0,\"syscall_lifts\":0,\"protect_failures\":0}\n\nnot json\n").unwrap();
        let err = read_log(&dir).unwrap_err().to_string();
        std::fs::remove_file(&dir).unwrap();
        assert!(err.contains(":3: not a sanitizer event"), "{err}");
    }
}
