//! Another program's TCP socket seen from outside, as `ss` sees it: one `inet_diag`
//! request over `NETLINK_SOCK_DIAG` — [sock_diag(7)].
//!
//! Why: an external sender is a program zcsafe cannot look into, but its socket's queues
//! are the kernel's, and they say how much of the stream the kernel still held. For an
//! established TCP socket `tcp_diag_get_info` (net/ipv4/tcp_diag.c, 6.1 and 6.12 alike)
//! reports `idiag_wqueue = write_seq − snd_una` — what `ioctl(SIOCOUTQ)` returns to the
//! program itself: bytes written and not yet acknowledged, whose pages a zero-copy sender
//! must not reuse — and `idiag_rqueue = rcv_nxt − copied_seq`.
//!
//! The request names one socket exactly (both addresses and ports, no dump), so the
//! kernel answers from `inet_diag_find_one_icsk` with one message or `ENOENT` once the
//! socket is gone.
//!
//! [sock_diag(7)]: https://man7.org/linux/man-pages/man7/sock_diag.7.html

use std::io;
use std::mem::size_of;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// `SOCK_DIAG_BY_FAMILY` (include/uapi/linux/sock_diag.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `INET_DIAG_NOCOOKIE`: match the socket by its addresses alone.
const NO_COOKIE: u32 = !0;
/// How long one answer may take before the sample is given up.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// `struct inet_diag_sockid` (include/uapi/linux/inet_diag.h): ports and addresses in
/// network byte order.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SockId {
    sport: [u8; 2],
    dport: [u8; 2],
    src: [u8; 16],
    dst: [u8; 16],
    ifindex: u32,
    cookie: [u32; 2],
}

/// `struct inet_diag_req_v2`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Request {
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    id: SockId,
}

/// `struct inet_diag_msg`: the fixed head of every answer.
#[repr(C)]
#[derive(Clone, Copy)]
struct Answer {
    family: u8,
    state: u8,
    timer: u8,
    retrans: u8,
    id: SockId,
    expires: u32,
    rqueue: u32,
    wqueue: u32,
    uid: u32,
    inode: u32,
}

/// A TCP socket's two queues, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queues {
    /// Written by the application and not yet acknowledged by the peer (`SIOCOUTQ`).
    pub unacked: u64,
    /// Received and not yet read by the application (`SIOCINQ`).
    pub unread: u64,
}

/// A `NETLINK_SOCK_DIAG` socket of one network namespace (the one it was opened in).
#[derive(Debug)]
pub struct SockDiag {
    fd: OwnedFd,
}

impl SockDiag {
    /// `socket(AF_NETLINK, SOCK_DGRAM, NETLINK_SOCK_DIAG)` in the calling thread's network
    /// namespace, with a receive timeout so a lost answer cannot hang the caller.
    pub fn open() -> io::Result<SockDiag> {
        // SAFETY: socket(2) takes no pointers; the fd is owned at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        crate::sys::set_timeout_opt(fd.as_raw_fd(), libc::SO_RCVTIMEO, ANSWER_TIMEOUT)?;
        Ok(SockDiag { fd })
    }

    /// The queues of the TCP socket bound to `local` and connected to `remote` (`None`
    /// once it is gone, or when the addresses' families differ).
    pub fn tcp_queues(&self, local: SocketAddr, remote: SocketAddr) -> io::Result<Option<Queues>> {
        let (family, src, dst) = match (local, remote) {
            (SocketAddr::V4(l), SocketAddr::V4(r)) => {
                (libc::AF_INET, v4(l.ip().octets()), v4(r.ip().octets()))
            }
            (SocketAddr::V6(l), SocketAddr::V6(r)) => {
                (libc::AF_INET6, l.ip().octets(), r.ip().octets())
            }
            _ => return Ok(None),
        };
        #[repr(C)]
        struct Message {
            header: libc::nlmsghdr,
            request: Request,
        }
        let message = Message {
            header: libc::nlmsghdr {
                nlmsg_len: size_of::<Message>() as u32,
                nlmsg_type: SOCK_DIAG_BY_FAMILY,
                nlmsg_flags: libc::NLM_F_REQUEST as u16,
                nlmsg_seq: 1,
                nlmsg_pid: 0,
            },
            request: Request {
                family: family as u8,
                protocol: libc::IPPROTO_TCP as u8,
                ext: 0,
                pad: 0,
                states: !0,
                id: SockId {
                    sport: local.port().to_be_bytes(),
                    dport: remote.port().to_be_bytes(),
                    src,
                    dst,
                    ifindex: 0,
                    cookie: [NO_COOKIE; 2],
                },
            },
        };
        // SAFETY: `message` is a live, fully initialised repr(C) value of the length given;
        // send(2) only reads it.
        let sent = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                (&message as *const Message).cast(),
                size_of::<Message>(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = [0u8; 8192];
        let n = crate::sys::retry_eintr(|| {
            // SAFETY: recv(2) writes at most `buf.len()` bytes into `buf`.
            let r =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(r as usize)
            }
        })?;
        parse(&buf[..n])
    }
}

/// An IPv4 address in the first four bytes of `inet_diag_sockid`'s address field.
fn v4(o: [u8; 4]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&o);
    a
}

/// Reads one answer: an `inet_diag_msg`, or an error message (`ENOENT`: no such socket).
fn parse(buf: &[u8]) -> io::Result<Option<Queues>> {
    let head = size_of::<libc::nlmsghdr>();
    if buf.len() < head {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short sock_diag answer",
        ));
    }
    // SAFETY: `buf` holds at least a header's bytes; read_unaligned copies them out.
    let header: libc::nlmsghdr = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast()) };
    let body = &buf[head..];
    if header.nlmsg_type == libc::NLMSG_ERROR as u16 {
        let errno = body
            .get(..4)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(-libc::EPROTO);
        return match -errno {
            0 | libc::ENOENT => Ok(None),
            e => Err(io::Error::from_raw_os_error(e)),
        };
    }
    if header.nlmsg_type != SOCK_DIAG_BY_FAMILY || body.len() < size_of::<Answer>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "unexpected sock_diag answer: type {}, {} bytes",
                header.nlmsg_type,
                body.len()
            ),
        ));
    }
    // SAFETY: `body` holds at least an `Answer`'s bytes, every bit pattern of which is valid.
    let a: Answer = unsafe { std::ptr::read_unaligned(body.as_ptr().cast()) };
    Ok(Some(Queues {
        unacked: a.wqueue.into(),
        unread: a.rqueue.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn the_queues_of_a_socket_are_what_the_socket_itself_says() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let tx = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut rx, _) = l.accept().unwrap();
        let diag = SockDiag::open().unwrap();
        let (local, remote) = (tx.local_addr().unwrap(), tx.peer_addr().unwrap());
        // Fill the receiver's window and the sender's queue: nobody reads yet, so the
        // sender's queue keeps what the window did not take.
        tx.set_nonblocking(true).unwrap();
        let chunk = [7u8; 64 << 10];
        let mut written = 0u64;
        loop {
            match (&tx).write(&chunk) {
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        let seen_tx = diag
            .tcp_queues(local, remote)
            .unwrap()
            .expect("the sender exists");
        let outq = crate::sys::siocoutq(tx.as_raw_fd()).unwrap();
        assert!(
            seen_tx.unacked > 0,
            "{written} bytes written, the window took some only"
        );
        assert_eq!(seen_tx.unacked, outq, "wqueue is SIOCOUTQ");
        let seen_rx = diag
            .tcp_queues(rx.local_addr().unwrap(), rx.peer_addr().unwrap())
            .unwrap()
            .expect("the receiver exists");
        assert!(seen_rx.unread > 0);
        assert_eq!(
            seen_rx.unread,
            crate::sys::fionread(&rx).unwrap(),
            "rqueue is SIOCINQ"
        );
        // Nothing was read, so every acknowledged byte is still in the receiver's queue
        // (which only grows while the sender's unacknowledged bytes only shrink).
        assert!(
            seen_rx.unread + outq >= written,
            "{} unread + {outq} unacked < {written} written",
            seen_rx.unread
        );
        let mut b = vec![0u8; 64 << 10];
        let _ = rx.read(&mut b).unwrap();
        // A socket that never existed is `None`, not an error.
        let nobody: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(diag.tcp_queues(nobody, remote).unwrap(), None);
    }
}
