//! IPv4 + TCP segments as the TUN device hands them over (`IFF_TUN | IFF_NO_PI`: one IP
//! packet per read, no header before it): parsed with every checksum verified, and built
//! with every checksum computed.
//!
//! The device gives no checksum offload here (no `TUNSETOFFLOAD`, no virtio header), so
//! the kernel computed both checksums in software before `tun_net_xmit`
//! (`skb_checksum_help` in `validate_xmit_skb`); a wrong one is a bug, never noise. What
//! the peer writes is checked by the kernel the same way (`tcp_v4_rcv` →
//! `tcp_checksum_complete`), so a wrong checksum of ours would look like loss.

use std::net::Ipv4Addr;

/// IPv4 header without options.
pub const IP_HEADER: usize = 20;
/// TCP header without options.
pub const TCP_HEADER: usize = 20;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const UDP_HEADER: usize = 8;

/// TCP header flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(pub u8);

impl Flags {
    pub const FIN: Flags = Flags(0x01);
    pub const SYN: Flags = Flags(0x02);
    pub const RST: Flags = Flags(0x04);
    pub const PSH: Flags = Flags(0x08);
    pub const ACK: Flags = Flags(0x10);

    pub fn has(self, f: Flags) -> bool {
        self.0 & f.0 == f.0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, o: Flags) -> Flags {
        Flags(self.0 | o.0)
    }
}

/// The TCP options the peer reads and writes. Kinds it does not know are skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Maximum segment size (kind 2).
    pub mss: Option<u16>,
    /// Window scale shift (kind 3).
    pub wscale: Option<u8>,
    /// SACK permitted (kind 4): offered by the kernel, never answered by the peer.
    pub sack_permitted: bool,
    /// Timestamps (kind 8): offered by the kernel, never answered by the peer.
    pub timestamps: bool,
}

impl Options {
    /// The wire form, padded with NOPs to a multiple of 4 bytes.
    fn encode(&self) -> Vec<u8> {
        let mut o = Vec::new();
        if let Some(mss) = self.mss {
            o.extend_from_slice(&[2, 4]);
            o.extend_from_slice(&mss.to_be_bytes());
        }
        if let Some(shift) = self.wscale {
            o.extend_from_slice(&[1, 3, 3, shift]);
        }
        // SACK and timestamps are never written: the peer implements neither.
        while o.len() % 4 != 0 {
            o.push(1);
        }
        o
    }

    fn decode(raw: &[u8]) -> Result<Options, SegmentError> {
        let mut o = Options::default();
        let mut i = 0;
        while i < raw.len() {
            match raw[i] {
                0 => break,
                1 => i += 1,
                kind => {
                    let len = *raw.get(i + 1).ok_or(SegmentError::Options { at: i })? as usize;
                    if len < 2 || i + len > raw.len() {
                        return Err(SegmentError::Options { at: i });
                    }
                    let body = &raw[i + 2..i + len];
                    match (kind, body.len()) {
                        (2, 2) => o.mss = Some(u16::from_be_bytes([body[0], body[1]])),
                        (3, 1) => o.wscale = Some(body[0]),
                        (4, 0) => o.sack_permitted = true,
                        (8, 8) => o.timestamps = true,
                        (2 | 3 | 4 | 8, _) => return Err(SegmentError::Options { at: i }),
                        _ => {}
                    }
                    i += len;
                }
            }
        }
        Ok(o)
    }
}

/// A packet the peer cannot take as a TCP segment.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("{len}-byte packet is shorter than its headers")]
    Short { len: usize },
    #[error("IP version {0}, not 4")]
    NotIpv4(u8),
    #[error("IP protocol {0}, not TCP")]
    NotTcp(u8),
    #[error("IP protocol {0}, not UDP")]
    NotUdp(u8),
    #[error("IP fragment (flags/offset {0:#06x}): the kernel sets DF and never fragments TCP")]
    Fragment(u16),
    #[error("IPv4 header checksum {got:#06x}, computed {want:#06x}")]
    IpChecksum { got: u16, want: u16 },
    #[error("TCP checksum {got:#06x}, computed {want:#06x}")]
    TcpChecksum { got: u16, want: u16 },
    #[error("malformed TCP option at byte {at} of the options")]
    Options { at: usize },
}

/// One TCP segment read from the device; `payload` borrows the packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: Flags,
    /// The window field as sent (unscaled).
    pub window: u16,
    pub options: Options,
    pub payload: &'a [u8],
}

/// The ones' complement sum of `data` (odd length padded with a zero byte), unfolded.
fn sum(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The IPv4 header checksum (RFC 791) of `header` with its checksum field zero.
pub fn ip_checksum(header: &[u8]) -> u16 {
    fold(sum(header, 0))
}

/// The TCP checksum (RFC 793) of `tcp` (header + payload, checksum field zero) with the
/// IPv4 pseudo-header.
pub fn tcp_checksum(src: Ipv4Addr, dst: Ipv4Addr, tcp: &[u8]) -> u16 {
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = PROTO_TCP;
    pseudo[10..].copy_from_slice(&(tcp.len() as u16).to_be_bytes());
    fold(sum(tcp, sum(&pseudo, 0)))
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// An unfragmented IPv4 packet with a right header checksum: what both the TCP peer and
/// the UDP one read from the device.
struct Ipv4<'a> {
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload: &'a [u8],
}

impl<'a> Ipv4<'a> {
    fn parse(packet: &'a [u8]) -> Result<Ipv4<'a>, SegmentError> {
        let short = || SegmentError::Short { len: packet.len() };
        let first = *packet.first().ok_or_else(short)?;
        if first >> 4 != 4 {
            return Err(SegmentError::NotIpv4(first >> 4));
        }
        let ihl = (first & 0x0f) as usize * 4;
        if ihl < IP_HEADER || packet.len() < ihl {
            return Err(short());
        }
        let total = be16(packet, 2) as usize;
        if total < ihl || total > packet.len() {
            return Err(short());
        }
        let packet = &packet[..total];
        let frag = be16(packet, 6);
        if frag & 0x3fff != 0 {
            return Err(SegmentError::Fragment(frag));
        }
        let mut header = packet[..ihl].to_vec();
        header[10..12].fill(0);
        let (got, want) = (be16(packet, 10), ip_checksum(&header));
        if got != want {
            return Err(SegmentError::IpChecksum { got, want });
        }
        Ok(Ipv4 {
            proto: packet[9],
            src: Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]),
            dst: Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]),
            payload: &packet[ihl..],
        })
    }
}

/// The destination port and payload of one UDP datagram read from the device (an
/// unfragmented IPv4 packet; the UDP checksum is the sender's, not checked: the payload
/// is checked word by word against the stream).
pub fn udp_datagram(packet: &[u8]) -> Result<(u16, &[u8]), SegmentError> {
    let ip = Ipv4::parse(packet)?;
    if ip.proto != PROTO_UDP {
        return Err(SegmentError::NotUdp(ip.proto));
    }
    let udp = ip.payload;
    let len = udp.get(4..6).map(|b| be16(b, 0) as usize);
    match len {
        Some(len) if (UDP_HEADER..=udp.len()).contains(&len) => {
            Ok((be16(udp, 2), &udp[UDP_HEADER..len]))
        }
        _ => Err(SegmentError::Short { len: packet.len() }),
    }
}

impl<'a> Segment<'a> {
    /// Parses one IPv4 packet; both checksums must be right.
    pub fn parse(packet: &'a [u8]) -> Result<Segment<'a>, SegmentError> {
        let short = || SegmentError::Short { len: packet.len() };
        let ip = Ipv4::parse(packet)?;
        if ip.proto != PROTO_TCP {
            return Err(SegmentError::NotTcp(ip.proto));
        }
        let (src, dst) = (ip.src, ip.dst);
        let tcp = ip.payload;
        if tcp.len() < TCP_HEADER {
            return Err(short());
        }
        let doff = (tcp[12] >> 4) as usize * 4;
        if doff < TCP_HEADER || doff > tcp.len() {
            return Err(short());
        }
        let mut zeroed = tcp.to_vec();
        zeroed[16..18].fill(0);
        let (got, want) = (be16(tcp, 16), tcp_checksum(src, dst, &zeroed));
        if got != want {
            return Err(SegmentError::TcpChecksum { got, want });
        }
        Ok(Segment {
            src,
            dst,
            sport: be16(tcp, 0),
            dport: be16(tcp, 2),
            seq: be32(tcp, 4),
            ack: be32(tcp, 8),
            flags: Flags(tcp[13] & 0x3f),
            window: be16(tcp, 14),
            options: Options::decode(&tcp[TCP_HEADER..doff])?,
            payload: &tcp[doff..],
        })
    }

    /// Sequence space the segment occupies: its payload, plus one each for SYN and FIN.
    pub fn seq_len(&self) -> u32 {
        self.payload.len() as u32
            + self.flags.has(Flags::SYN) as u32
            + self.flags.has(Flags::FIN) as u32
    }

    /// The IPv4 packet of this segment, checksums computed; `id` is the IP
    /// identification (DF is set, so it only tells packets apart in a capture).
    pub fn build(&self, id: u16) -> Vec<u8> {
        let opts = self.options.encode();
        let doff = TCP_HEADER + opts.len();
        let total = IP_HEADER + doff + self.payload.len();
        let mut p = Vec::with_capacity(total);
        p.extend_from_slice(&[0x45, 0]);
        p.extend_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&0x4000u16.to_be_bytes()); // DF
        p.extend_from_slice(&[64, PROTO_TCP, 0, 0]);
        p.extend_from_slice(&self.src.octets());
        p.extend_from_slice(&self.dst.octets());
        let ipsum = ip_checksum(&p);
        p[10..12].copy_from_slice(&ipsum.to_be_bytes());
        p.extend_from_slice(&self.sport.to_be_bytes());
        p.extend_from_slice(&self.dport.to_be_bytes());
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.ack.to_be_bytes());
        p.extend_from_slice(&[((doff / 4) as u8) << 4, self.flags.0]);
        p.extend_from_slice(&self.window.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        p.extend_from_slice(&opts);
        p.extend_from_slice(self.payload);
        let tcpsum = tcp_checksum(self.src, self.dst, &p[IP_HEADER..]);
        p[IP_HEADER + 16..IP_HEADER + 18].copy_from_slice(&tcpsum.to_be_bytes());
        p
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A SYN the host kernel (Linux 6.18) wrote to a TUN device with MTU 4136 for
    /// `connect(10.78.0.2:5001)` from 10.78.0.1, read from the device fd.
    pub(crate) const KERNEL_SYN: &str = "4500003ce7f8400040063e250a4e00010a4e0002a6781389\
        423b1f1400000000a002ffff1b6b0000020410000402080a78e47972000000000103030a";

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_kernels_syn_parses_with_its_checksums_and_options() {
        let raw = hex(KERNEL_SYN);
        let s = Segment::parse(&raw).unwrap();
        assert_eq!(s.src, Ipv4Addr::new(10, 78, 0, 1));
        assert_eq!(s.dst, Ipv4Addr::new(10, 78, 0, 2));
        assert_eq!((s.sport, s.dport), (42616, 5001));
        assert_eq!(s.seq, 0x423b1f14);
        assert_eq!(s.flags, Flags::SYN);
        assert_eq!(s.window, 0xffff);
        assert_eq!(
            s.options,
            Options {
                mss: Some(4096),
                wscale: Some(10),
                sack_permitted: true,
                timestamps: true,
            },
            "MTU 4136 − 40 = MSS 4096"
        );
        assert!(s.payload.is_empty());
        assert_eq!(s.seq_len(), 1);
    }

    #[test]
    fn rebuilding_the_kernels_syn_gives_its_checksums() {
        let raw = hex(KERNEL_SYN);
        let s = Segment::parse(&raw).unwrap();
        // Without the options we do not write the checksums differ, so compare the
        // checksum algorithm itself on the kernel's bytes.
        let mut ip = raw[..IP_HEADER].to_vec();
        ip[10..12].fill(0);
        assert_eq!(ip_checksum(&ip), 0x3e25);
        let mut tcp = raw[IP_HEADER..].to_vec();
        tcp[16..18].fill(0);
        assert_eq!(tcp_checksum(s.src, s.dst, &tcp), 0x1b6b);
        // A segment we build parses back to itself.
        let reply = Segment {
            src: s.dst,
            dst: s.src,
            sport: s.dport,
            dport: s.sport,
            seq: 7,
            ack: s.seq.wrapping_add(1),
            flags: Flags::SYN | Flags::ACK,
            window: 4096,
            options: Options {
                mss: Some(4096),
                wscale: Some(1),
                ..Options::default()
            },
            payload: b"odd",
        };
        let bytes = reply.build(1);
        assert_eq!(Segment::parse(&bytes).unwrap(), reply);
    }

    #[test]
    fn every_wrong_byte_is_caught() {
        let raw = hex(KERNEL_SYN);
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x40;
            assert!(
                Segment::parse(&bad).is_err(),
                "flipped byte {i} went unnoticed"
            );
        }
        assert!(matches!(
            Segment::parse(&raw[..30]),
            Err(SegmentError::Short { .. })
        ));
        let mut v6 = raw.clone();
        v6[0] = 0x60;
        assert_eq!(Segment::parse(&v6), Err(SegmentError::NotIpv4(6)));
    }
}
