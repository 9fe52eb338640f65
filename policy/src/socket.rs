//! Which kind of socket a policy sends on.
//!
//! The catalogue's schemes grew up on TCP; UDP `MSG_ZEROCOPY` (QUIC stacks, media
//! servers) has the same system calls but a different lifetime for the pages: no ACK,
//! no retransmit queue, the release when the one skb is freed. A policy declares its
//! socket in its [`Pipeline`](crate::Pipeline), so the model, the simulation and the
//! kernel executor all run the same kind and none has to guess it from a name.

use crate::Hazard;
use serde::{Deserialize, Serialize};

/// The sending socket's protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SocketKind {
    /// A connected TCP stream.
    #[default]
    Tcp,
    /// A connected UDP socket; every send is one datagram (`udp_sendmsg`, uncorked).
    Udp,
}

impl SocketKind {
    /// For `skip_serializing_if`: TCP is what every file written before UDP meant.
    pub fn is_tcp(&self) -> bool {
        *self == SocketKind::Tcp
    }

    /// Hazards this protocol can never produce, so that a send opening them
    /// ([`Hazard::opened_by`]) leaves no gap when a run does not reach them: UDP never
    /// retransmits, and its skbs are freed in the order they were sent (one device ring,
    /// one backlog), so completions never overtake each other.
    pub fn unreachable(self) -> &'static [Hazard] {
        match self {
            SocketKind::Tcp => &[],
            SocketKind::Udp => &[
                Hazard::Retransmission,
                Hazard::RetransmitAfterReuse,
                Hazard::OutOfOrderCompletion,
            ],
        }
    }

    /// The hazards `op` opens on this socket: [`Hazard::opened_by`] less those the
    /// protocol cannot produce.
    pub fn opened_by(self, op: &crate::Op) -> impl Iterator<Item = Hazard> {
        let never = self.unreachable();
        Hazard::opened_by(op)
            .iter()
            .copied()
            .filter(move |h| !never.contains(h))
    }
}

impl std::fmt::Display for SocketKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SocketKind::Tcp => "tcp",
            SocketKind::Udp => "udp",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Op, Region};

    #[test]
    fn udp_opens_no_retransmission_tcp_opens_all() {
        let send = Op::Send {
            buf: Region::new(0, 1),
            zerocopy: true,
        };
        let udp: Vec<_> = SocketKind::Udp.opened_by(&send).collect();
        assert!(!udp.contains(&Hazard::Retransmission));
        assert!(udp.contains(&Hazard::Copied));
        let tcp: Vec<_> = SocketKind::Tcp.opened_by(&send).collect();
        assert_eq!(tcp, Hazard::opened_by(&send));
    }
}
