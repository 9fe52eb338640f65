//! A packet tap on the TUN device: every packet the kernel hands the device, seen at
//! the moment of transmission, without taking it off the device's queue.
//!
//! Why: the schedule replay ([`crate::schedule`]) must tell *when* the kernel transmits
//! a segment (the model's `Transmit` and `Retransmit`) apart from *when the device reads
//! it* (the model's `TxComplete`, the peer's `read` of the TUN fd, `tun_put_user`).
//! Reading the TUN fd to see a transmission would make the device read early. An
//! `AF_PACKET` socket bound with `ETH_P_ALL` gets a clone of every outgoing skb from
//! `dev_queue_xmit_nit`, which `xmit_one` calls just before `tun_net_xmit` — after GSO
//! segmentation (`validate_xmit_skb`; the device has no TSO), so one tap packet is one
//! segment on the wire. Only `ETH_P_ALL` taps see outgoing packets (`ptype_all`), so
//! incoming ones (the peer's own writes, `PACKET_HOST`) are filtered out here.
//!
//! The tap's clone holds references to page frags until it is read (`packet_rcv` queues
//! it), so [`Tap::recv`] is called at the step it observes and the bytes it returns are
//! the page contents at that step.

use crate::error::KernelError;
use crate::sys;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

/// `PACKET_OUTGOING` (`linux/if_packet.h`): a packet this host sent.
const PACKET_OUTGOING: u8 = 4;

/// An `AF_PACKET` tap on one device.
#[derive(Debug)]
pub struct Tap {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Tap {
    /// Opens a tap on `device` in the calling thread's namespace.
    pub fn open(device: &str) -> Result<Tap, KernelError> {
        let name = std::ffi::CString::new(device).expect("a device name has no NUL");
        // SAFETY: a NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(KernelError::last("if_nametoindex"));
        }
        let all = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket creation; the fd returned is ours alone.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                all as i32,
            )
        };
        if raw < 0 {
            return Err(KernelError::last("socket(AF_PACKET, ETH_P_ALL)"));
        }
        // SAFETY: `raw` is a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain data; zero is a valid start.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = all;
        sll.sll_ifindex = index as i32;
        // SAFETY: binds our socket to one sockaddr_ll of the right length.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r < 0 {
            return Err(KernelError::last("bind(AF_PACKET tap)"));
        }
        Ok(Tap {
            fd,
            buf: vec![0; 65536],
        })
    }

    /// The next packet the kernel transmitted on the device, or `None` when none came
    /// before `deadline` (a deadline in the past: only what is queued already).
    pub fn recv(&mut self, deadline: Instant) -> Result<Option<&[u8]>, KernelError> {
        loop {
            // SAFETY: sockaddr_ll is plain data.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: reads at most `buf.len()` bytes into our buffer and one address.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n >= 0 {
                if from.sll_pkttype != PACKET_OUTGOING {
                    continue;
                }
                return Ok(Some(&self.buf[..n as usize]));
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => {}
                _ => return Err(KernelError::io("recvfrom on the packet tap", e)),
            }
            if sys::poll_until(self.fd.as_raw_fd(), libc::POLLIN, deadline)
                .map_err(|e| KernelError::io("poll on the packet tap", e))?
                .is_none()
            {
                return Ok(None);
            }
        }
    }
}
