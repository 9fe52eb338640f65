//! The peer's decisions at run time, from a [`PeerScript`]: whether a data segment is
//! lost, how long an ACK waits, which window goes out.

use std::time::Duration;
use zcsafe_policy::PeerScript;

/// A [`PeerScript`] being followed: counts the data segments as they arrive.
#[derive(Clone, Debug)]
pub struct Decisions {
    script: PeerScript,
    /// Data segments that carried new sequence space so far.
    new_segments: u32,
}

impl Decisions {
    pub fn new(script: PeerScript) -> Decisions {
        Decisions {
            script,
            new_segments: 0,
        }
    }

    pub fn script(&self) -> PeerScript {
        self.script
    }

    /// A data segment carrying new sequence space arrived: is it lost? Retransmissions
    /// never are (the caller does not ask for them), so every lost segment is sent again.
    pub fn lose_new_segment(&mut self) -> bool {
        self.new_segments += 1;
        self.script.drop == Some(self.new_segments)
    }

    /// How long an ACK waits after the data it acknowledges arrived.
    pub fn ack_delay(&self) -> Duration {
        Duration::from_millis(self.script.hold_acks_ms.unwrap_or(0) as u64)
    }

    /// The receive window advertised, bytes.
    pub fn window(&self) -> u32 {
        self.script.window()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_kth_new_segment_is_lost() {
        let mut d = Decisions::new(PeerScript::parse("drop=3,hold-acks=40").unwrap());
        let lost: Vec<bool> = (0..5).map(|_| d.lose_new_segment()).collect();
        assert_eq!(lost, [false, false, true, false, false]);
        assert_eq!(d.ack_delay(), Duration::from_millis(40));
        let plain = Decisions::new(PeerScript::default());
        assert_eq!(plain.ack_delay(), Duration::ZERO);
    }
}
