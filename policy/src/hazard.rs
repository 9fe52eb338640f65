//! The hazards a zero-copy send path can meet, and which of them a verdict's runs reached.
//!
//! `safe` says that nothing went wrong on the paths, seeds or repetitions explored. It
//! says something about a reuse rule only if those runs met the moments the rule is
//! about: a notification that completes a later send before an earlier one, a counter
//! that wraps, a retransmission that reads a page again, a buffer rewritten while the
//! receiver had not read its previous bytes. [`Hazards`] records which of them a run
//! reached (and how often), and which ones the operations it performed *could* have met
//! but never did — an unreached hazard that the policy's API can suffer is the gap in a
//! `safe`.
//!
//! One vocabulary for every backend: the model counts the moves that reached a hazard
//! over its whole explored graph, the simulator and the kernel backends count the moments
//! in their runs. A backend that cannot observe a hazard (the kernel does not show who
//! holds a page) never opens it, so it is neither reached nor listed as unreached.

use crate::op::Op;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A moment where a reuse rule is put to the test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hazard {
    /// A page that held stream bytes was written again (any reuse at all).
    Reuse,
    /// A reuse while the receiving application had not yet read the page's previous
    /// bytes: the window in which an early reuse corrupts. The kernel backend's
    /// "reuse while unread" is this moment.
    ReuseBeforeRead,
    /// A reuse while a kernel object (pipe, write or retransmit queue, device ring, wire,
    /// the peer's queue) still referenced the page — harmful if the reference is read
    /// again, harmless if only a discarded duplicate sees it. Model and simulation; on
    /// the kernel, UDP runs only (a reuse before its send's notification).
    /// A risk the policy takes, not a moment the scenario must create: never listed as
    /// unreached.
    ReuseWhileHeld,
    /// A page that held stream bytes was given back instead of rewritten (`munmap`,
    /// `unlink`, `O_TRUNC`): the policies that never rewrite rely on the kernel's own
    /// reference.
    Release,
    /// A release while the receiving application had not yet read the page's bytes.
    ReleaseBeforeRead,
    /// TCP sent a segment again (a loss, or a retransmission timeout).
    Retransmission,
    /// A retransmission read a page whose content had changed since the segment was
    /// first queued: what only a real NIC path (the remote class) turns into corruption.
    /// A risk the policy takes: never listed as unreached.
    RetransmitAfterReuse,
    /// A zero-copy completion (an error-queue notification or an io_uring NOTIF) arrived
    /// while an earlier zero-copy send was still not completed.
    OutOfOrderCompletion,
    /// The `MSG_ZEROCOPY` notification counter (`sk_zckey`) wrapped.
    CounterWrap,
    /// A zero-copy completion said the kernel copied the data after all (COPIED).
    Copied,
    /// A `MSG_ZEROCOPY` send failed with `ENOBUFS` (the notification could not be
    /// allocated: `optmem_max`).
    Enobufs,
    /// An io_uring send was cancelled (its linked timeout fired) after it had queued part
    /// of its bytes: its CQE counts fewer bytes than asked, with `F_MORE`, and its NOTIF
    /// still waits for the pages it queued (`io_sendrecv_fail`, liburing#643).
    CancelAfterQueued,
}

impl Hazard {
    /// Every hazard, in the order reports list them.
    pub const ALL: [Hazard; 12] = [
        Hazard::Reuse,
        Hazard::ReuseBeforeRead,
        Hazard::ReuseWhileHeld,
        Hazard::Release,
        Hazard::ReleaseBeforeRead,
        Hazard::Retransmission,
        Hazard::RetransmitAfterReuse,
        Hazard::OutOfOrderCompletion,
        Hazard::CounterWrap,
        Hazard::Copied,
        Hazard::Enobufs,
        Hazard::CancelAfterQueued,
    ];

    /// The name in reports and JSON (kebab-case).
    pub fn name(self) -> &'static str {
        match self {
            Hazard::Reuse => "reuse",
            Hazard::ReuseBeforeRead => "reuse-before-read",
            Hazard::ReuseWhileHeld => "reuse-while-held",
            Hazard::Release => "release",
            Hazard::ReleaseBeforeRead => "release-before-read",
            Hazard::Retransmission => "retransmission",
            Hazard::RetransmitAfterReuse => "retransmit-after-reuse",
            Hazard::OutOfOrderCompletion => "out-of-order-completion",
            Hazard::CounterWrap => "counter-wrap",
            Hazard::Copied => "copied",
            Hazard::Enobufs => "enobufs",
            Hazard::CancelAfterQueued => "cancel-after-queued",
        }
    }

    /// The hazards an operation opens: a policy that performs `op` can meet them. Only
    /// operations that leave the kernel referencing user pages (or file pages) open the
    /// reuse hazards; a copying `send` opens none.
    pub fn opened_by(op: &Op) -> &'static [Hazard] {
        use Hazard::*;
        // Every zero-copy path: the kernel keeps the page, TCP may read it again. The
        // risks a policy takes (reuse-while-held, retransmit-after-reuse) are not
        // opened: a correct policy never reaches them, so their absence is no gap.
        const PAGES: &[Hazard] = &[Reuse, ReuseBeforeRead, Retransmission];
        const MSG_ZEROCOPY: &[Hazard] = &[
            Reuse,
            ReuseBeforeRead,
            Retransmission,
            OutOfOrderCompletion,
            CounterWrap,
            Copied,
            Enobufs,
        ];
        const SEND_ZC: &[Hazard] = &[
            Reuse,
            ReuseBeforeRead,
            Retransmission,
            OutOfOrderCompletion,
            Copied,
        ];
        // A linked timeout may cancel the send after part of it was queued.
        const SEND_ZC_LINKED: &[Hazard] = &[
            Reuse,
            ReuseBeforeRead,
            Retransmission,
            OutOfOrderCompletion,
            Copied,
            CancelAfterQueued,
        ];
        const RELEASE: &[Hazard] = &[Release, ReleaseBeforeRead];
        match op {
            // Whether MSG_ZEROCOPY takes effect depends on SO_ZEROCOPY: the caller opens
            // these only for a send that really referenced the pages.
            Op::Send { zerocopy: true, .. } => MSG_ZEROCOPY,
            Op::UringSendZc {
                link_timeout: Some(_),
                ..
            } => SEND_ZC_LINKED,
            Op::UringSendZc { .. } => SEND_ZC,
            Op::Vmsplice { .. } | Op::Splice { .. } | Op::Sendfile { .. } => PAGES,
            Op::Munmap { .. } | Op::RemoveFile { .. } | Op::CreateFile { .. } => RELEASE,
            _ => &[],
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Hazard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A set of hazards: what one move or one call reached or opened. Two bytes, `Copy`, so
/// the model kernel can carry one per state without cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HazardSet(u16);

impl HazardSet {
    /// The empty set.
    pub const EMPTY: HazardSet = HazardSet(0);

    /// Adds `h`.
    pub fn insert(&mut self, h: Hazard) {
        self.0 |= h.bit();
    }

    /// Adds every hazard of `hs`.
    pub fn extend(&mut self, hs: &[Hazard]) {
        hs.iter().for_each(|h| self.insert(*h));
    }

    /// Adds every member of `other`.
    pub fn union(&mut self, other: HazardSet) {
        self.0 |= other.0;
    }

    /// `h` is in the set.
    pub fn contains(self, h: Hazard) -> bool {
        self.0 & h.bit() != 0
    }

    /// Nothing in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members, in [`Hazard::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Hazard> {
        Hazard::ALL.into_iter().filter(move |h| self.contains(*h))
    }
}

/// What one step of a run did to the hazards: the ones it reached, and the ones its
/// operation opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HazardMarks {
    /// Reached on this step.
    pub reached: HazardSet,
    /// Opened by this step's operation ([`Hazard::opened_by`]).
    pub opened: HazardSet,
}

impl HazardMarks {
    /// Nothing reached or opened.
    pub fn is_empty(&self) -> bool {
        self.reached.is_empty() && self.opened.is_empty()
    }
}

/// Which hazards a verdict's runs reached, how often, and which of the ones its
/// operations opened they never reached.
///
/// In JSON: `{"reached": {"reuse-before-read": 120, …}, "unreached": ["counter-wrap", …]}`
/// — the counts are the model's moves (edges of the explored graph) or a run's moments;
/// a hazard no operation opened appears in neither.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hazards {
    reached: [u64; Hazard::ALL.len()],
    opened: HazardSet,
    /// For hazards never reached: the setting of the backend that would reach each.
    hints: BTreeMap<Hazard, String>,
}

impl Hazards {
    /// Counts one step: each hazard it reached once, and what its operation opened.
    pub fn add(&mut self, m: HazardMarks) {
        for h in m.reached.iter() {
            self.reached[h as usize] += 1;
        }
        self.opened.0 |= m.opened.0 | m.reached.0;
    }

    /// Counts `n` moments of `h` (a backend that counts in bulk), opening it.
    pub fn add_count(&mut self, h: Hazard, n: u64) {
        self.reached[h as usize] += n;
        self.opened.insert(h);
    }

    /// Opens `h` without reaching it: the run could have met it.
    pub fn open(&mut self, h: Hazard) {
        self.opened.insert(h);
    }

    /// Forgets hazards the socket cannot produce ([`crate::SocketKind::unreachable`]), so
    /// that a run on it lists no gap it could never have closed.
    pub fn on_socket(&mut self, socket: crate::SocketKind) {
        for &h in socket.unreachable() {
            self.reached[h as usize] = 0;
            self.opened.0 &= !h.bit();
        }
    }

    /// Both runs' counts together.
    pub fn merge(&mut self, other: &Hazards) {
        for (a, b) in self.reached.iter_mut().zip(other.reached) {
            *a += b;
        }
        self.opened.0 |= other.opened.0;
    }

    /// How often `h` was reached.
    pub fn count(&self, h: Hazard) -> u64 {
        self.reached[h as usize]
    }

    /// The hazards reached, with their counts, in [`Hazard::ALL`] order.
    pub fn reached(&self) -> impl Iterator<Item = (Hazard, u64)> + '_ {
        Hazard::ALL
            .into_iter()
            .map(|h| (h, self.count(h)))
            .filter(|(_, n)| *n > 0)
    }

    /// The hazards the run's operations opened and it never reached. Rewriting and
    /// giving back are two ways of letting go of a page: a policy that only ever gives
    /// pages back (fresh pages, a new file) has met the moment once it released one, so
    /// a reuse it never makes is no gap, and the other way round.
    pub fn unreached(&self) -> impl Iterator<Item = Hazard> + '_ {
        let met = |h: Hazard| {
            self.count(h) > 0
                || match h {
                    Hazard::Reuse => self.count(Hazard::Release) > 0,
                    Hazard::Release => self.count(Hazard::Reuse) > 0,
                    Hazard::ReuseBeforeRead => self.count(Hazard::ReleaseBeforeRead) > 0,
                    Hazard::ReleaseBeforeRead => self.count(Hazard::ReuseBeforeRead) > 0,
                    _ => false,
                }
        };
        self.opened.iter().filter(move |h| !met(*h))
    }

    /// No hazard was opened: the run handed the kernel no page it could reuse.
    pub fn is_empty(&self) -> bool {
        self.opened.is_empty()
    }

    /// These hazards with `hint(h)` — the backend's setting that would reach `h` —
    /// recorded for each one never reached.
    /// A reuse before read never reached although pages were reused means the policy
    /// waits for the reader (an application-level acknowledgement): no setting reaches
    /// it, and the hint says so instead of the backend's.
    pub fn with_hints(mut self, hint: impl Fn(Hazard) -> &'static str) -> Hazards {
        const WAITS: &str = "unreachable here: every reuse came after the receiver had read \
                             the page, so the policy waits for the reader";
        let waits = self.count(Hazard::Reuse) + self.count(Hazard::Release) > 0;
        self.hints = (self.unreached())
            .map(|h| match h {
                Hazard::ReuseBeforeRead | Hazard::ReleaseBeforeRead if waits => (h, WAITS),
                _ => (h, hint(h)),
            })
            .map(|(h, t)| (h, t.to_string()))
            .collect();
        self
    }

    /// The setting that would reach `h`, if [`Hazards::with_hints`] recorded one.
    pub fn hint(&self, h: Hazard) -> Option<&str> {
        self.hints.get(&h).map(String::as_str)
    }

    /// Each hazard never reached, with its hint: `copied (try -t local: …)`.
    pub fn gaps(&self) -> Vec<String> {
        self.unreached()
            .map(|h| match self.hint(h) {
                Some(t) => format!("{h} ({t})"),
                None => h.name().to_string(),
            })
            .collect()
    }

    /// The clause a verdict's detail ends with: the hazards reached with their counts,
    /// then — loudly — each one opened and never reached, with its hint.
    pub fn clause(&self) -> String {
        if self.is_empty() {
            return "no hazard opened: nothing was handed to the kernel zero-copy".into();
        }
        let reached: Vec<String> = self.reached().map(|(h, n)| format!("{h} ×{n}")).collect();
        let mut s = match reached.is_empty() {
            true => "no hazard reached".to_string(),
            false => format!("hazards reached: {}", reached.join(", ")),
        };
        let unreached = self.gaps();
        if !unreached.is_empty() {
            s.push_str(&format!("; NEVER REACHED: {}", unreached.join(", ")));
        }
        s
    }
}

/// The hazards a backend that sees only the policy's calls and their answers can tell
/// apart — COPIED, ENOBUFS, completions out of order — and the ones each call opens.
/// The kernel backends feed it every call; the model sees the same moments inside its
/// kernel state.
#[derive(Clone, Debug, Default)]
pub struct Observer {
    hazards: Hazards,
    /// The `MSG_ZEROCOPY` id of the oldest send not yet notified, and the ids above it
    /// already notified (out of order). Only sends that queued bytes take an id
    /// (`tcp_sendmsg_locked` → `msg_zerocopy_realloc`).
    oldest: u32,
    next_id: u32,
    notified: std::collections::BTreeSet<u32>,
    /// `SEND_ZC` requests submitted and not yet notified, oldest first.
    uring_pending: std::collections::VecDeque<crate::op::UserData>,
    /// Sends with a linked timeout whose send CQE has not come, and their lengths: a send
    /// CQE with `F_MORE` counting fewer (but some) bytes was cancelled after it queued
    /// them (with `MSG_WAITALL` nothing else completes a send short).
    linked: BTreeMap<crate::op::UserData, u64>,
}

impl Observer {
    /// Records one call and its answer.
    pub fn call(&mut self, op: &Op, outcome: &crate::Outcome) {
        use crate::outcome::{Errno, Outcome};
        Hazard::opened_by(op)
            .iter()
            .filter(|h| **h != Hazard::CounterWrap)
            .for_each(|h| self.hazards.open(*h));
        match (op, outcome) {
            (Op::Send { zerocopy: true, .. }, Outcome::Done(n)) if *n > 0 => {
                self.next_id = self.next_id.wrapping_add(1);
            }
            (Op::Send { zerocopy: true, .. }, Outcome::Err(Errno::NoBufs)) => {
                self.hazards.add_count(Hazard::Enobufs, 1);
            }
            (
                Op::UringSendZc {
                    user_data,
                    link_timeout,
                    buf,
                    ..
                },
                Outcome::Ok,
            ) => {
                self.uring_pending.push_back(*user_data);
                if link_timeout.is_some() {
                    self.linked.insert(*user_data, buf.len);
                }
            }
            (_, Outcome::Cqe(c)) if !c.notif && self.linked.contains_key(&c.user_data) => {
                let len = self.linked.remove(&c.user_data).unwrap_or_default();
                if c.more && c.res > 0 && (c.res as u64) < len {
                    self.hazards.add_count(Hazard::CancelAfterQueued, 1);
                }
            }
            (_, Outcome::Zc(Some(n))) => {
                if n.copied {
                    self.hazards.add_count(Hazard::Copied, 1);
                }
                if n.lo != self.oldest {
                    self.hazards.add_count(Hazard::OutOfOrderCompletion, 1);
                }
                let mut id = n.lo;
                loop {
                    self.notified.insert(id);
                    if id == n.hi {
                        break;
                    }
                    id = id.wrapping_add(1);
                }
                while self.oldest != self.next_id && self.notified.remove(&self.oldest) {
                    self.oldest = self.oldest.wrapping_add(1);
                }
            }
            (_, Outcome::Cqe(c)) if c.notif => {
                if c.copied {
                    self.hazards.add_count(Hazard::Copied, 1);
                }
                if self.uring_pending.front() != Some(&c.user_data) {
                    self.hazards.add_count(Hazard::OutOfOrderCompletion, 1);
                }
                if let Some(i) = self.uring_pending.iter().position(|u| *u == c.user_data) {
                    self.uring_pending.remove(i);
                }
            }
            _ => {}
        }
    }

    /// What the calls showed. The `MSG_ZEROCOPY` counter is 32 bits wide on a kernel, so
    /// a run never wraps it and it is not opened: the model covers the wrap.
    pub fn hazards(&self) -> &Hazards {
        &self.hazards
    }
}

/// The JSON shape of [`Hazards`].
#[derive(Serialize, Deserialize)]
struct HazardsJson {
    reached: BTreeMap<Hazard, u64>,
    #[serde(default)]
    unreached: Vec<Hazard>,
    /// The setting that would reach each unreached hazard.
    #[serde(default, rename = "try", skip_serializing_if = "BTreeMap::is_empty")]
    hints: BTreeMap<Hazard, String>,
}

impl Serialize for Hazards {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        HazardsJson {
            reached: self.reached().collect(),
            unreached: self.unreached().collect(),
            hints: self.hints.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Hazards {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = HazardsJson::deserialize(d)?;
        let mut h = Hazards::default();
        for (k, n) in j.reached {
            h.add_count(k, n);
        }
        j.unreached.into_iter().for_each(|k| h.open(k));
        h.hints = j.hints;
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Region;

    #[test]
    fn a_copying_send_opens_nothing_and_msg_zerocopy_opens_the_counter() {
        let buf = Region { offset: 0, len: 1 };
        assert!(Hazard::opened_by(&Op::Send {
            buf,
            zerocopy: false
        })
        .is_empty());
        let zc = Hazard::opened_by(&Op::Send {
            buf,
            zerocopy: true,
        });
        assert!(zc.contains(&Hazard::CounterWrap) && zc.contains(&Hazard::ReuseBeforeRead));
        assert!(!Hazard::opened_by(&Op::Splice { len: 1 }).contains(&Hazard::CounterWrap));
    }

    #[test]
    fn unreached_is_what_was_opened_and_never_counted() {
        let mut h = Hazards::default();
        let mut m = HazardMarks::default();
        m.opened.extend(&[Hazard::Reuse, Hazard::CounterWrap]);
        m.reached.insert(Hazard::Reuse);
        h.add(m);
        h.add(m);
        assert_eq!(h.count(Hazard::Reuse), 2);
        assert_eq!(h.unreached().collect::<Vec<_>>(), vec![Hazard::CounterWrap]);
        assert_eq!(
            h.clone().with_hints(|_| "try a longer stream").clause(),
            "hazards reached: reuse ×2; NEVER REACHED: counter-wrap (try a longer stream)"
        );
    }

    #[test]
    fn the_observer_sees_an_out_of_order_notification_and_copied() {
        use crate::outcome::{Outcome, ZcNotification};
        let send = Op::Send {
            buf: Region { offset: 0, len: 1 },
            zerocopy: true,
        };
        let mut o = Observer::default();
        for _ in 0..3 {
            o.call(&send, &Outcome::Done(1));
        }
        let read = Op::ReadErrqueue { block: true };
        let note = |lo, hi, copied| Outcome::Zc(Some(ZcNotification { lo, hi, copied }));
        o.call(&read, &note(1, 1, false));
        assert_eq!(o.hazards().count(Hazard::OutOfOrderCompletion), 1);
        o.call(&read, &note(0, 0, true));
        o.call(&read, &note(2, 2, false));
        assert_eq!(
            o.hazards().count(Hazard::OutOfOrderCompletion),
            1,
            "0 then 2 are in order"
        );
        assert_eq!(o.hazards().count(Hazard::Copied), 1);
        assert!(o.hazards().unreached().any(|h| h == Hazard::Enobufs));
        assert!(!o.hazards().unreached().any(|h| h == Hazard::CounterWrap));
    }

    #[test]
    fn the_json_round_trips_and_names_hazards_in_kebab_case() {
        let mut h = Hazards::default();
        h.add_count(Hazard::ReuseBeforeRead, 3);
        h.open(Hazard::OutOfOrderCompletion);
        let j = serde_json::to_string(&h).unwrap();
        assert_eq!(
            j,
            r#"{"reached":{"reuse-before-read":3},"unreached":["out-of-order-completion"]}"#
        );
        assert_eq!(serde_json::from_str::<Hazards>(&j).unwrap(), h);
        let hinted = h.with_hints(|_| "try --spurious-rto 1");
        let j = serde_json::to_string(&hinted).unwrap();
        assert!(
            j.ends_with(r#""try":{"out-of-order-completion":"try --spurious-rto 1"}}"#),
            "{j}"
        );
        assert_eq!(serde_json::from_str::<Hazards>(&j).unwrap(), hinted);
    }
}
