//! The application-acknowledgement wire format, both ends: the verifying receiver
//! ([`crate::receiver`]) writes it, the executor's `WaitAppAck` ([`crate::executor`])
//! reads it.
//!
//! Why a module of its own: the two ends were written apart (one encoded
//! `to_le_bytes`, the other decoded 8-byte chunks with `from_le_bytes`), and a format
//! kept in two places drifts. The format: after each read the receiver writes the total
//! number of stream bytes it has consumed so far as one 8-byte little-endian word on the
//! same connection. Counts are cumulative, so a reader may skip any but the last, and a
//! writer that cannot send one now may drop it for the next ([`AckWriter`]).

use crate::sys;
use std::net::TcpStream;
use std::os::fd::AsRawFd;

/// Bytes of one count on the wire.
pub const ACK_BYTES: usize = 8;

/// One count as it goes on the wire.
#[must_use]
pub fn encode(count: u64) -> [u8; ACK_BYTES] {
    count.to_le_bytes()
}

/// Reassembles counts split across reads and keeps the highest.
#[derive(Debug, Default)]
pub struct AckDecoder {
    carry: Vec<u8>,
    highest: u64,
}

impl AckDecoder {
    /// Takes the bytes of one read; returns the highest count seen so far.
    pub fn feed(&mut self, data: &[u8]) -> u64 {
        self.carry.extend_from_slice(data);
        let whole = self.carry.len() / ACK_BYTES * ACK_BYTES;
        for w in self.carry[..whole].chunks_exact(ACK_BYTES) {
            let v = u64::from_le_bytes(w.try_into().expect("ACK_BYTES bytes"));
            self.highest = self.highest.max(v);
        }
        self.carry.drain(..whole);
        self.highest
    }

    /// The highest count decoded (0 before the first).
    #[must_use]
    pub fn highest(&self) -> u64 {
        self.highest
    }
}

/// Writes cumulative counts without ever blocking the reader: a count that does not fit
/// is superseded by the next one.
#[derive(Debug, Default)]
pub struct AckWriter {
    pending: Vec<u8>,
}

impl AckWriter {
    /// Queues `count` (unless a partly sent one is still pending) and sends what the
    /// socket takes now.
    pub fn send(&mut self, sock: &TcpStream, count: u64) {
        if self.pending.is_empty() {
            self.pending.extend_from_slice(&encode(count));
        }
        while !self.pending.is_empty() {
            match sys::send(
                sock.as_raw_fd(),
                &self.pending,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            ) {
                Ok(n) if n > 0 => {
                    self.pending.drain(..n);
                }
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_split_across_reads_decode_to_the_highest() {
        let mut wire = Vec::new();
        for c in [5u64, 4096, 3, 1 << 40] {
            wire.extend_from_slice(&encode(c));
        }
        let mut d = AckDecoder::default();
        let mut seen = Vec::new();
        for piece in wire.chunks(5) {
            seen.push(d.feed(piece));
        }
        assert_eq!(seen, [0, 5, 5, 4096, 4096, 4096, 1 << 40]);
        assert_eq!(d.highest(), 1 << 40);
    }
}
