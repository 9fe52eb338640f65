//! The transports a guest offers, as one type.
//!
//! The names arrive as text once — `--transports loopback,remote` on the command line —
//! and leave as text once: the `transport` field of each cell's finding, the
//! `{transport}` of the guest command, the `--transports` of a rerun. In between the
//! matrix asks the type what it needs to know ("is this the two-NIC setup?", "which
//! expectation class?") instead of comparing names.

use crate::error::VmError;
use std::fmt;
use std::str::FromStr;
use zcsafe_policy::TransportClass;

/// One guest transport. The names are those of `zcsafe run --transport`, which the guest
/// command receives as is (`veth-lossy` and `veth-slow` are set up by the guest's
/// zcsafe; only `remote` needs the VM's help: two NICs on one QEMU hub).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GuestTransport {
    Loopback,
    Veth,
    VethLossy,
    VethSlow,
    /// Two NICs, the peer's in its own network namespace (see [`crate::guest`]).
    Remote,
}

impl GuestTransport {
    /// Every transport, in the order `--help` lists them.
    pub const ALL: [GuestTransport; 5] = [
        GuestTransport::Loopback,
        GuestTransport::Veth,
        GuestTransport::VethLossy,
        GuestTransport::VethSlow,
        GuestTransport::Remote,
    ];

    /// The name on the command line, in findings and in `matrix.json`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            GuestTransport::Loopback => "loopback",
            GuestTransport::Veth => "veth",
            GuestTransport::VethLossy => "veth-lossy",
            GuestTransport::VethSlow => "veth-slow",
            GuestTransport::Remote => "remote",
        }
    }

    /// The two-NIC transport: the VM gets a NIC pair, netem applies, cells record the NIC.
    #[must_use]
    pub fn is_remote(self) -> bool {
        self == GuestTransport::Remote
    }

    /// The class a policy's expectation is written for.
    #[must_use]
    pub fn class(self) -> TransportClass {
        if self.is_remote() {
            TransportClass::Remote
        } else {
            TransportClass::Local
        }
    }

    /// A comma-separated list (`loopback, veth,remote`); empty items are skipped.
    pub fn parse_list(list: &str) -> Result<Vec<GuestTransport>, VmError> {
        list.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::parse)
            .collect()
    }
}

impl FromStr for GuestTransport {
    type Err = VmError;

    fn from_str(s: &str) -> Result<GuestTransport, VmError> {
        GuestTransport::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                VmError::Usage(format!(
                    "unknown transport `{s}`; guests offer {}",
                    GUEST_TRANSPORTS.join(", ")
                ))
            })
    }
}

impl fmt::Display for GuestTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The names of [`GuestTransport::ALL`], for help texts and error messages.
pub const GUEST_TRANSPORTS: &[&str] = &["loopback", "veth", "veth-lossy", "veth-slow", "remote"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_valid_names() {
        let names: Vec<&str> = GuestTransport::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(names, GUEST_TRANSPORTS);
        for t in GuestTransport::ALL {
            assert_eq!(t.name().parse::<GuestTransport>().unwrap(), t);
            assert_eq!(t.to_string(), t.name());
            assert_eq!(t.is_remote(), t.name() == "remote");
        }
        assert_eq!(
            GuestTransport::parse_list(" loopback, ,remote").unwrap(),
            [GuestTransport::Loopback, GuestTransport::Remote]
        );
        let e = GuestTransport::parse_list("veth,wifi").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid option: unknown transport `wifi`; guests offer loopback, veth, veth-lossy, veth-slow, remote"
        );
        assert_eq!(GuestTransport::Remote.class(), TransportClass::Remote);
        assert_eq!(GuestTransport::VethSlow.class(), TransportClass::Local);
    }
}
