//! What a backend tells the policy after an operation.

use crate::op::UserData;
use serde::{Deserialize, Serialize};

/// The result of one [`Op`](crate::Op).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "value")]
pub enum Outcome {
    /// Success without a value (fill, setsockopt, mmap, submit, …).
    Ok,
    /// A byte count: bytes moved by send/vmsplice/splice/sendfile, the `SIOCOUTQ` value,
    /// or the bytes the receiver reported consumed.
    Done(u64),
    /// One errqueue read: a notification, or `None` when a non-blocking read found none.
    Zc(Option<ZcNotification>),
    /// One io_uring completion.
    Cqe(Cqe),
    /// The call failed with this errno.
    Err(Errno),
}

/// A `SO_EE_ORIGIN_ZEROCOPY` notification: the sends numbered `lo..=hi` (counters that
/// wrap at 2^32, or at the model's configured width) have released their pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ZcNotification {
    /// First send released (`ee_info`).
    pub lo: u32,
    /// Last send released, inclusive (`ee_data`); a range may wrap past the counter's top.
    pub hi: u32,
    /// `SO_EE_CODE_ZEROCOPY_COPIED`: the kernel copied the data instead.
    pub copied: bool,
}

/// An io_uring completion queue entry for a `SEND_ZC`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cqe {
    /// The tag the policy gave the SQE, so it knows which buffer slot completed.
    pub user_data: UserData,
    /// Bytes sent, or a negative errno.
    pub res: i64,
    /// `IORING_CQE_F_MORE`: a notification CQE will follow.
    pub more: bool,
    /// `IORING_CQE_F_NOTIF`: this is the notification; the buffer is released.
    pub notif: bool,
    /// `IORING_NOTIF_USAGE_ZC_COPIED` (with `REPORT_USAGE`): the kernel copied.
    pub copied: bool,
}

/// `IORING_NOTIF_USAGE_ZC_COPIED`: the bit `io_notif_tw_complete` (6.1:
/// `__io_notif_complete_tw`) ORs into a notification's `cqe->res` under
/// `IORING_SEND_ZC_REPORT_USAGE` when `zc_copied || !zc_used`. It is the sign bit of the
/// `i32`: read as a result, `res` is `-2147483648`, which is no errno
/// (tokio-rs/io-uring#354).
pub const IORING_NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

impl Cqe {
    /// Decodes a CQE as the kernel wrote it (`cqe->res`, `IORING_CQE_F_MORE`,
    /// `IORING_CQE_F_NOTIF`): a notification's `res` is a usage report, whose
    /// [`IORING_NOTIF_USAGE_ZC_COPIED`] bit becomes [`Cqe::copied`]; a send CQE's `res`
    /// is bytes sent or `-errno`.
    pub fn from_raw(user_data: UserData, res: i32, more: bool, notif: bool) -> Cqe {
        let copied = notif && (res as u32) & IORING_NOTIF_USAGE_ZC_COPIED != 0;
        let res = if notif {
            ((res as u32) & !IORING_NOTIF_USAGE_ZC_COPIED) as i32
        } else {
            res
        };
        Cqe {
            user_data,
            res: res as i64,
            more,
            notif,
            copied,
        }
    }

    /// `cqe->res` as the kernel wrote it: the inverse of [`Cqe::from_raw`]. What an
    /// application that reads every `res` as "bytes or `-errno`" sees.
    pub fn raw_res(&self) -> i32 {
        let res = self.res as i32;
        if self.notif && self.copied {
            ((res as u32) | IORING_NOTIF_USAGE_ZC_COPIED) as i32
        } else {
            res
        }
    }
}

/// An errno, kept symbolic so the model and real kernels agree on names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Errno {
    /// `ENOBUFS`: `MSG_ZEROCOPY` could not allocate its notification (optmem exhausted).
    NoBufs,
    /// `EOPNOTSUPP`: e.g. a kernel that refuses `SPLICE_F_GIFT`.
    OpNotSupp,
    /// `EINVAL`.
    Inval,
    /// `ENOPROTOOPT`: e.g. `SO_ZEROCOPY` unknown.
    NoProtoOpt,
    /// `EAGAIN`.
    Again,
    /// `EPIPE` / `ECONNRESET`: the connection is gone.
    Pipe,
    /// `ECANCELED`: an io_uring request was cancelled (by a linked timeout, say).
    Canceled,
    /// `ETIME`: an io_uring timeout fired.
    Time,
    /// Any other errno, by number.
    Other(i32),
}

impl Errno {
    /// Maps a raw errno from a real system call.
    pub fn from_raw(errno: i32) -> Errno {
        match errno {
            105 => Errno::NoBufs,
            95 => Errno::OpNotSupp,
            22 => Errno::Inval,
            92 => Errno::NoProtoOpt,
            11 => Errno::Again,
            32 | 104 => Errno::Pipe,
            125 => Errno::Canceled,
            62 => Errno::Time,
            n => Errno::Other(n),
        }
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Errno::NoBufs => f.write_str("ENOBUFS"),
            Errno::OpNotSupp => f.write_str("EOPNOTSUPP"),
            Errno::Inval => f.write_str("EINVAL"),
            Errno::NoProtoOpt => f.write_str("ENOPROTOOPT"),
            Errno::Again => f.write_str("EAGAIN"),
            Errno::Pipe => f.write_str("EPIPE"),
            Errno::Canceled => f.write_str("ECANCELED"),
            Errno::Time => f.write_str("ETIME"),
            Errno::Other(n) => write!(f, "errno {n}"),
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Done(n) => write!(f, "{n}"),
            Outcome::Zc(None) => f.write_str("no notification"),
            Outcome::Zc(Some(n)) => write!(
                f,
                "notification [{}, {}]{}",
                n.lo,
                n.hi,
                if n.copied { " COPIED" } else { "" }
            ),
            Outcome::Cqe(c) => write!(
                f,
                "CQE #{} res={}{}{}{}",
                c.user_data,
                c.res,
                if c.more { " F_MORE" } else { "" },
                if c.notif { " F_NOTIF" } else { "" },
                // The usage bit, decoded: raw `res` -2147483648 (tokio-rs/io-uring#354).
                if c.notif && c.copied {
                    " ZC_COPIED"
                } else {
                    ""
                }
            ),
            Outcome::Err(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copied_notification_is_i32_min_raw_and_zero_decoded() {
        let c = Cqe::from_raw(7, i32::MIN, false, true);
        assert_eq!((c.res, c.copied), (0, true));
        assert_eq!(c.raw_res(), -2147483648);
        let zc = Cqe::from_raw(7, 0, false, true);
        assert_eq!((zc.res, zc.copied, zc.raw_res()), (0, false, 0));
    }

    #[test]
    fn a_send_cqe_keeps_its_errno_and_never_reads_the_bit() {
        // -EAGAIN
        let c = Cqe::from_raw(1, -11, true, false);
        assert_eq!((c.res, c.copied), (-11, false));
        assert_eq!(c.raw_res(), -11);
        let sent = Cqe::from_raw(1, 4096, true, false);
        assert_eq!((sent.res, sent.raw_res()), (4096, 4096));
    }
}
