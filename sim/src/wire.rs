//! What travels between the two simulated hosts, as datagram payloads.

use zcsafe_model::split::AckMsg;

/// One datagram on the simulated link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Msg {
    /// A segment: the in-flight clone `flight` of sequence `seq`. Its pages stay where
    /// the model keeps them (a local clone references the sender's memory).
    Seg { flight: u64, seq: u16 },
    /// A cumulative ACK; `id` orders them, so a late one cannot shrink the window back
    /// (`tcp_may_update_window`).
    Ack { id: u64, ack: AckMsg },
    /// A zero-window probe (`tcp_send_probe0`).
    Probe,
}

impl Msg {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(13);
        match *self {
            Msg::Seg { flight, seq } => {
                out.push(1);
                out.extend_from_slice(&flight.to_le_bytes());
                out.extend_from_slice(&seq.to_le_bytes());
            }
            Msg::Ack { id, ack } => {
                out.push(2);
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&ack.ack.to_le_bytes());
                out.extend_from_slice(&ack.window.to_le_bytes());
            }
            Msg::Probe => out.push(3),
        }
        out
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Msg> {
        let u64_at = |i: usize| Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?));
        let u16_at = |i: usize| Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?));
        match b.first()? {
            1 => Some(Msg::Seg {
                flight: u64_at(1)?,
                seq: u16_at(9)?,
            }),
            2 => Some(Msg::Ack {
                id: u64_at(1)?,
                ack: AckMsg {
                    ack: u16_at(9)?,
                    window: u16_at(11)?,
                },
            }),
            3 => Some(Msg::Probe),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for m in [
            Msg::Seg { flight: 9, seq: 3 },
            Msg::Ack {
                id: 2,
                ack: AckMsg { ack: 4, window: 1 },
            },
            Msg::Probe,
        ] {
            assert_eq!(Msg::decode(&m.encode()), Some(m));
        }
        assert_eq!(Msg::decode(&[]), None);
    }
}
