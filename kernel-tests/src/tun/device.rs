//! The TUN device: `/dev/net/tun` opened in the sender's namespace, `IFF_TUN |
//! IFF_NO_PI`, not persistent — it lives exactly as long as the fd (`tun_chr_close` →
//! `tun_detach` unregisters a non-persistent device), so a killed zcsafe leaves no
//! device behind, only the namespace mount the next run sweeps ([`crate::netns`]).
//!
//! Where the "NIC" reads the sender's pages: `tun_net_xmit` queues the skb on the
//! device's ring, first copying `MSG_ZEROCOPY` / `SEND_ZC` frags out of the user pages
//! (`skb_orphan_frags_rx` → `skb_copy_ubufs`, since the skb may wait there for ever);
//! the other page frags (vmsplice'd pages, sendfile's page cache) stay referenced until
//! the peer's `read` (`tun_do_read` → `tun_put_user` copies the bytes out and frees the
//! skb). Either way the original stays in the sender's retransmit queue until the peer
//! ACKs it, and a retransmission reads the pages again — a NIC's DMA, in both steps.

use crate::error::KernelError;
use crate::sys;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

/// Device name inside the namespace (the namespace's name is what is unique).
pub const DEVICE: &str = "zcs-tun";
/// Largest packet the device hands over: the MTU ([`super::MTU`]) fits well inside.
const MAX_PACKET: usize = 65536;

const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
/// `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// `struct ifreq` as `TUNSETIFF` reads it: the name, then the flags.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// An open TUN device.
#[derive(Debug)]
pub struct TunDevice {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl TunDevice {
    /// Creates the device [`DEVICE`] in the calling thread's network namespace.
    pub fn open() -> Result<TunDevice, KernelError> {
        // SAFETY: a NUL-terminated path; the fd returned is ours alone.
        let raw = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        };
        if raw < 0 {
            return Err(KernelError::last("open(/dev/net/tun)"));
        }
        // SAFETY: `raw` is a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TUN | IFF_NO_PI,
            _pad: [0; 22],
        };
        req.name[..DEVICE.len()].copy_from_slice(DEVICE.as_bytes());
        // SAFETY: TUNSETIFF reads (and may write back) one `struct ifreq`, which `req` is.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
            return Err(KernelError::last("ioctl(TUNSETIFF, IFF_TUN|IFF_NO_PI)"));
        }
        Ok(TunDevice {
            fd,
            buf: vec![0; MAX_PACKET],
        })
    }

    /// The next packet the kernel transmitted, or `None` when none came before
    /// `deadline`.
    pub fn recv(&mut self, deadline: Instant) -> Result<Option<&[u8]>, KernelError> {
        loop {
            if sys::poll_until(self.fd.as_raw_fd(), libc::POLLIN, deadline)
                .map_err(|e| KernelError::io("poll on the TUN device", e))?
                .is_none()
            {
                return Ok(None);
            }
            // SAFETY: reads at most `buf.len()` bytes into our own buffer.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                )
            };
            if n >= 0 {
                return Ok(Some(&self.buf[..n as usize]));
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                _ => return Err(KernelError::io("read from the TUN device", e)),
            }
        }
    }

    /// Hands one IP packet to the kernel as if it arrived on the wire (`tun_get_user`
    /// → `netif_rx`).
    pub fn send(&self, packet: &[u8]) -> Result<(), KernelError> {
        loop {
            // SAFETY: writes `packet`, which outlives the call.
            let n =
                unsafe { libc::write(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
            if n == packet.len() as isize {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if n < 0 && e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(KernelError::io(
                format!("write of a {}-byte packet to the TUN device", packet.len()),
                e,
            ));
        }
    }
}
