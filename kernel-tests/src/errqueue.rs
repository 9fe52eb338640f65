//! `MSG_ZEROCOPY` completion notifications from the socket error queue.
//!
//! Each `recvmsg(MSG_ERRQUEUE)` returns one `sock_extended_err` in an `IP_RECVERR` (or
//! `IPV6_RECVERR`) control message. For zero-copy, `ee_origin` is
//! `SO_EE_ORIGIN_ZEROCOPY`, `[ee_info, ee_data]` is the inclusive range of send-call
//! counters released, and `ee_code` has `SO_EE_CODE_ZEROCOPY_COPIED` when the kernel had
//! to copy (`__msg_zerocopy_callback` in net/core/skbuff.c).

use std::os::fd::RawFd;
use zcsafe_policy::ZcNotification;

pub const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
pub const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;

/// `struct sock_extended_err` (include/uapi/linux/errqueue.h).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockExtendedErr {
    pub ee_errno: u32,
    pub ee_origin: u8,
    pub ee_type: u8,
    pub ee_code: u8,
    pub ee_pad: u8,
    pub ee_info: u32,
    pub ee_data: u32,
}

/// What one error-queue read gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrqueueRead {
    Notification(ZcNotification),
    /// A queued error of another origin (ICMP, timestamps): skipped.
    Other {
        origin: u8,
        errno: u32,
    },
    /// Nothing queued (`EAGAIN`).
    Empty,
}

/// One non-blocking `recvmsg(MSG_ERRQUEUE)`.
pub fn read_one(fd: RawFd) -> std::io::Result<ErrqueueRead> {
    // 128 bytes, aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain old data; all zeroes is an empty header (no name, no iovec).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: the only buffer `msg` points at is `control`, alive and writable for the
    // call with its true length; with no iovec the kernel writes nowhere else. A bad fd
    // is an error return, not undefined behaviour.
    let r = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EAGAIN) {
            return Ok(ErrqueueRead::Empty);
        }
        return Err(e);
    }
    // SAFETY: CMSG_FIRSTHDR/NXTHDR stay within msg_controllen, which recvmsg set to what
    // it wrote into `control`; the payload is read only after checking cmsg_len covers a
    // whole sock_extended_err, and read_unaligned needs no alignment.
    unsafe {
        let mut cm = libc::CMSG_FIRSTHDR(&msg);
        while !cm.is_null() {
            let c = &*cm;
            let is_recverr = (c.cmsg_level == libc::SOL_IP && c.cmsg_type == libc::IP_RECVERR)
                || (c.cmsg_level == libc::SOL_IPV6 && c.cmsg_type == libc::IPV6_RECVERR);
            if is_recverr
                && c.cmsg_len as usize
                    >= libc::CMSG_LEN(std::mem::size_of::<SockExtendedErr>() as u32) as usize
            {
                let ee = std::ptr::read_unaligned(libc::CMSG_DATA(cm) as *const SockExtendedErr);
                return Ok(decode(&ee));
            }
            cm = libc::CMSG_NXTHDR(&msg, cm);
        }
    }
    Ok(ErrqueueRead::Other {
        origin: 0,
        errno: 0,
    })
}

/// Interprets one extended error.
pub fn decode(ee: &SockExtendedErr) -> ErrqueueRead {
    if ee.ee_origin == SO_EE_ORIGIN_ZEROCOPY && ee.ee_errno == 0 {
        ErrqueueRead::Notification(ZcNotification {
            lo: ee.ee_info,
            hi: ee.ee_data,
            copied: ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED != 0,
        })
    } else {
        ErrqueueRead::Other {
            origin: ee.ee_origin,
            errno: ee.ee_errno,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_ranges_and_the_copied_code() {
        let ee = SockExtendedErr {
            ee_origin: SO_EE_ORIGIN_ZEROCOPY,
            ee_code: SO_EE_CODE_ZEROCOPY_COPIED,
            ee_info: u32::MAX,
            ee_data: 2,
            ..Default::default()
        };
        assert_eq!(
            decode(&ee),
            ErrqueueRead::Notification(ZcNotification {
                lo: u32::MAX,
                hi: 2,
                copied: true
            })
        );
        let icmp = SockExtendedErr {
            ee_origin: 2,
            ee_errno: 113,
            ..Default::default()
        };
        assert_eq!(
            decode(&icmp),
            ErrqueueRead::Other {
                origin: 2,
                errno: 113
            }
        );
    }
}
