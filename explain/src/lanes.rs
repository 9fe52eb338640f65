//! The lanes of a timeline, and the plain sentence for every step.
//!
//! A step is drawn as an arrow between two lanes (the syscall goes from the application
//! into the pipe, a transmission from the write queue onto the wire, an ACK from the peer
//! back to the write queue …) or as a mark on one lane. Beside the lanes sits one column
//! per buffer page, saying what the page holds and which kernel objects reference it.
//!
//! Lanes are derived from the step's actor and the words of its action, which are the
//! same on every backend (policies print their operations with `Op`'s `Display`), so a
//! kernel recording gets the same picture as a model counterexample — minus the page
//! holders, which only the model and the simulator can see.

use crate::meaning;
use std::collections::BTreeSet;
use zcsafe_policy::{Actor, Holder, PageHolders, Step, Trace};

/// The fixed lanes, left to right.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    App,
    Pipe,
    WriteQueue,
    Wire,
    Peer,
}

impl Lane {
    pub const ALL: [Lane; 5] = [
        Lane::App,
        Lane::Pipe,
        Lane::WriteQueue,
        Lane::Wire,
        Lane::Peer,
    ];

    /// Column header.
    pub fn title(self) -> &'static str {
        match self {
            Lane::App => "application",
            Lane::Pipe => "pipe",
            Lane::WriteQueue => "write queue",
            Lane::Wire => "wire/device",
            Lane::Peer => "peer",
        }
    }

    /// Narrow header for the terminal.
    pub fn short(self) -> &'static str {
        match self {
            Lane::App => "app",
            Lane::Pipe => "pipe",
            Lane::WriteQueue => "wq",
            Lane::Wire => "wire",
            Lane::Peer => "peer",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where a step happens: from one lane to another, or on one lane (`from == to`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrow {
    pub from: Lane,
    pub to: Lane,
}

impl Arrow {
    fn on(l: Lane) -> Arrow {
        Arrow { from: l, to: l }
    }
    fn new(from: Lane, to: Lane) -> Arrow {
        Arrow { from, to }
    }
}

/// How a step matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Normal,
    /// The application wrote a page the kernel still references.
    ReuseWhileHeld,
    /// The receiver read bytes that are not the stream's.
    WrongBytes,
}

/// One page column in one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// Stream offset the page holds (`None`: zeroes or not stream bytes).
    pub content: Option<u64>,
    pub holders: Vec<Holder>,
}

impl Cell {
    /// `s2 wq+rtx`, `s0`, `·` for an untouched free page.
    pub fn label(&self) -> String {
        let c = self.content.map_or("·".to_string(), |c| format!("s{c}"));
        if self.holders.is_empty() {
            c
        } else {
            format!("{c} {}", short_holders(&self.holders))
        }
    }
}

/// One step, placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub number: usize,
    pub actor: Actor,
    pub action: String,
    pub note: String,
    pub arrow: Arrow,
    pub mark: Mark,
    /// One cell per [`Timeline::pages`] entry; empty when the backend cannot see holders.
    pub cells: Vec<Cell>,
    /// Who still holds the pages and why, in one plain sentence.
    pub sentence: String,
}

/// A trace laid out on lanes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    pub title: String,
    pub subtitle: String,
    /// Page names (`buf[0]`, `file0[1]`), in order of first appearance.
    pub pages: Vec<String>,
    pub rows: Vec<Row>,
    /// Verdict and summary.
    pub outcome: String,
    /// The backend records page holders.
    pub sees_holders: bool,
}

impl Timeline {
    /// Lays out `trace`.
    pub fn new(trace: &Trace) -> Timeline {
        let mut pages: Vec<String> = Vec::new();
        for s in &trace.steps {
            for p in &s.holders {
                if !pages.contains(&p.page) {
                    pages.push(p.page.clone());
                }
            }
        }
        let sees_holders = !pages.is_empty();
        let mut rows = Vec::with_capacity(trace.steps.len());
        let mut prev: Vec<Cell> = pages
            .iter()
            .map(|_| Cell {
                content: None,
                holders: Vec::new(),
            })
            .collect();
        for (i, s) in trace.steps.iter().enumerate() {
            let cells: Vec<Cell> = if sees_holders {
                pages
                    .iter()
                    .zip(&prev)
                    .map(|(name, before)| cell(&s.holders, name, before))
                    .collect()
            } else {
                Vec::new()
            };
            let sentence = if sees_holders {
                sentence(&pages, &prev, &cells)
            } else {
                blind_sentence(trace, s)
            };
            rows.push(Row {
                number: i + 1,
                actor: s.actor,
                action: s.action.clone(),
                note: s.note.clone(),
                arrow: arrow(s),
                mark: mark(s),
                cells: cells.clone(),
                sentence,
            });
            if sees_holders {
                prev = cells;
            }
        }
        let policy = if trace.policy.is_empty() {
            "(unnamed policy)"
        } else {
            &trace.policy
        };
        let g = &trace.geometry;
        let unit = if g.page == 1 { "pages" } else { "bytes" };
        Timeline {
            title: format!("{policy} on {}", trace.transport),
            subtitle: format!(
                "{} backend, kernel profile {}; {unit}: chunk {}, buffer {}, pipe {}, stream {}",
                trace.backend, trace.profile, g.chunk, g.buffer, g.pipe, g.stream
            ),
            pages,
            rows,
            outcome: outcome(trace),
            sees_holders,
        }
    }
}

/// Verdict and summary; for `stuck`, also the sender's last completed call, right after
/// which it blocked (a trace records what happened, not the call that never returned).
fn outcome(trace: &Trace) -> String {
    let mut o = format!("{}: {}", trace.verdict, trace.summary);
    if trace.verdict == zcsafe_policy::Verdict::Stuck {
        if let Some(last) = trace.steps.iter().rev().find(|s| s.actor == Actor::App) {
            o.push_str(&format!(" (its last completed call: {})", last.action));
        }
    }
    o
}

/// A page's cell after a step. A step that lists no holders for a page it listed before
/// (a recorder that only lists changed pages) keeps the previous content.
fn cell(holders: &[PageHolders], name: &str, before: &Cell) -> Cell {
    match holders.iter().find(|p| p.page == name) {
        Some(p) => Cell {
            content: p.content,
            holders: p.holders.clone(),
        },
        None => before.clone(),
    }
}

fn mark(s: &Step) -> Mark {
    // Model and simulator say WRONG; the kernel's receiver reports a count.
    let kernel_corrupt = s.actor == Actor::Receiver
        && s.action.contains(" corrupt word")
        && !s.action.contains("; 0 corrupt word");
    if s.note.contains("WRONG") || s.action.contains("WRONG") || kernel_corrupt {
        Mark::WrongBytes
    } else if s.note.contains("WHILE HELD") {
        Mark::ReuseWhileHeld
    } else {
        Mark::Normal
    }
}

/// Which lanes a step connects.
pub fn arrow(s: &Step) -> Arrow {
    let a = without_time(&s.action);
    let starts = |p: &str| a.starts_with(p);
    let has = |p: &str| a.contains(p);
    use Lane::*;
    match s.actor {
        Actor::App => {
            if starts("vmsplice") {
                Arrow::new(App, Pipe)
            } else if starts("splice") {
                Arrow::new(Pipe, WriteQueue)
            } else if starts("send") || starts("io_uring SEND_ZC") {
                Arrow::new(App, WriteQueue)
            } else if starts("ioctl(SIOCOUTQ)")
                || starts("recvmsg(MSG_ERRQUEUE)")
                || starts("io_uring wait CQE")
            {
                Arrow::new(WriteQueue, App)
            } else if starts("wait app-ack") {
                Arrow::new(Peer, App)
            } else {
                Arrow::on(App)
            }
        }
        Actor::Tcp => {
            if has("retransmit") || has("transmit") {
                Arrow::new(WriteQueue, Wire)
            } else if starts("ACK") {
                Arrow::new(Peer, WriteQueue)
            } else if has("io_uring runs") {
                Arrow::new(App, WriteQueue)
            } else if has("io_uring") {
                // A failure or a notification: io_uring answers the application.
                Arrow::new(WriteQueue, App)
            } else {
                Arrow::on(WriteQueue)
            }
        }
        Actor::Device | Actor::Wire => Arrow::on(Wire),
        Actor::Peer => Arrow::new(Wire, Peer),
        Actor::Receiver => {
            if has("pipe") {
                Arrow::new(Pipe, Peer)
            } else {
                Arrow::on(Peer)
            }
        }
    }
}

/// The action without a simulator's leading timestamp (`  12ms transmit seq 0`).
fn without_time(action: &str) -> &str {
    let a = action.trim_start();
    match a.split_once(' ') {
        Some((t, rest))
            if t.len() > 2
                && t.ends_with("ms")
                && t[..t.len() - 2].chars().all(|c| c.is_ascii_digit()) =>
        {
            rest.trim_start()
        }
        _ => a,
    }
}

/// Why a holder keeps a page, in words.
pub fn why(h: Holder) -> &'static str {
    match h {
        Holder::Pipe => "vmsplice put a reference in the pipe; it leaves when splice moves it on or a reader drains the pipe",
        Holder::WriteQueue => "queued and not yet transmitted",
        Holder::Retransmit => "sent but not yet acknowledged, so a retransmission would read it again",
        Holder::DeviceRing => "the NIC has not finished reading it",
        Holder::Wire => "a clone that references it is on its way to the peer",
        Holder::PeerQueue => "the peer socket queued the skb with its page references, until the receiving application reads it",
        Holder::UringSubmission => "io_uring has the submission but has not run it yet",
    }
}

/// A holder as a noun that reads well after "the".
pub fn holder_name(h: Holder) -> &'static str {
    match h {
        Holder::Wire => "clone in flight",
        h => h.name(),
    }
}

fn short_holders(h: &[Holder]) -> String {
    h.iter()
        .map(|h| match h {
            Holder::Pipe => "pipe",
            Holder::WriteQueue => "wq",
            Holder::Retransmit => "rtx",
            Holder::DeviceRing => "ring",
            Holder::Wire => "wire",
            Holder::PeerQueue => "peer",
            Holder::UringSubmission => "sq",
        })
        .collect::<Vec<_>>()
        .join("+")
}

fn page_with(name: &str, c: &Cell) -> String {
    match c.content {
        Some(s) => format!("{name} (stream page {s})"),
        None => name.to_string(),
    }
}

/// "buf[0] (stream page 2) is held by the write queue (queued and not yet
/// transmitted); buf[1] is free again." — holders new to a page get their reason.
fn sentence(pages: &[String], before: &[Cell], after: &[Cell]) -> String {
    let mut parts = Vec::new();
    for ((name, b), a) in pages.iter().zip(before).zip(after) {
        if a.holders.is_empty() {
            if !b.holders.is_empty() {
                parts.push(format!(
                    "{name} is free again: nothing in the kernel references it"
                ));
            }
            continue;
        }
        let old: BTreeSet<Holder> = b.holders.iter().copied().collect();
        let held: Vec<String> = a
            .holders
            .iter()
            .map(|h| {
                if old.contains(h) {
                    format!("the {}", holder_name(*h))
                } else {
                    format!("the {} ({})", holder_name(*h), why(*h))
                }
            })
            .collect();
        let still = if b.holders.is_empty() { "" } else { "still " };
        parts.push(format!(
            "{} is {still}held by {}",
            page_with(name, a),
            join_and(&held)
        ));
    }
    if parts.is_empty() {
        return "No kernel object holds any buffer page: every page may be rewritten.".into();
    }
    // Page names start the sentence as they are (`buf[0]`): they are identifiers.
    let mut s = parts.join("; ");
    s.push('.');
    s
}

/// For backends that cannot see page references (a real kernel): what the call's answer
/// means for the pages ([`meaning`]), and the receiver's report in its own words.
fn blind_sentence(trace: &Trace, s: &Step) -> String {
    let note = s.note.trim();
    // Recordings put the answer in the note; older ones appended it to the action.
    let returned = note
        .strip_prefix('→')
        .or_else(|| s.action.rsplit_once(" → ").map(|(_, r)| r))
        .map(str::trim);
    match (s.actor, meaning::of_action(&s.action)) {
        (Actor::Receiver, _) if !note.is_empty() => {
            format!("The receiver reports: {} ({note}).", s.action)
        }
        (Actor::Receiver, _) => format!("The receiver reports: {}.", s.action),
        (_, Some(m)) => match returned {
            Some(r) => format!("Returned {r}: {m}."),
            None => format!("{}{}.", m[..1].to_uppercase(), &m[1..]),
        },
        (_, None) => format!(
            "Page holders are not visible on the {} backend; only the receiver's check shows an early reuse.",
            trace.backend
        ),
    }
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(actor: Actor, action: &str) -> Step {
        Step {
            actor,
            action: action.into(),
            note: String::new(),
            holders: vec![],
        }
    }

    #[test]
    fn arrows_follow_the_data() {
        let a = |actor, action| arrow(&step(actor, action));
        assert_eq!(
            a(Actor::App, "vmsplice buf[0..1) → 1"),
            Arrow::new(Lane::App, Lane::Pipe)
        );
        assert_eq!(
            a(Actor::App, "splice 1 pipe→socket → 1"),
            Arrow::new(Lane::Pipe, Lane::WriteQueue)
        );
        assert_eq!(
            a(Actor::Tcp, "retransmit seq 0"),
            Arrow::new(Lane::WriteQueue, Lane::Wire)
        );
        assert_eq!(
            a(Actor::Tcp, "ACK 1 (window 2)"),
            Arrow::new(Lane::Peer, Lane::WriteQueue)
        );
        assert_eq!(a(Actor::App, "fill buf[0..1)"), Arrow::on(Lane::App));
        assert_eq!(
            a(Actor::App, "  12ms vmsplice buf[0..1) → 1"),
            Arrow::new(Lane::App, Lane::Pipe),
            "simulator timestamps are skipped"
        );
        assert_eq!(
            a(Actor::Receiver, "read stream page 0"),
            Arrow::on(Lane::Peer)
        );
    }

    #[test]
    fn sentences_give_reasons_for_new_holders_only() {
        let pages = vec!["buf[0]".to_string()];
        let free = Cell {
            content: Some(0),
            holders: vec![],
        };
        let wq = Cell {
            content: Some(0),
            holders: vec![Holder::WriteQueue],
        };
        let both = Cell {
            content: Some(0),
            holders: vec![Holder::WriteQueue, Holder::Retransmit],
        };
        let s = sentence(
            &pages,
            std::slice::from_ref(&free),
            std::slice::from_ref(&wq),
        );
        assert_eq!(
            s,
            "buf[0] (stream page 0) is held by the write queue (queued and not yet transmitted)."
        );
        let s = sentence(
            &pages,
            std::slice::from_ref(&wq),
            std::slice::from_ref(&both),
        );
        assert!(s.contains("still held by the write queue and the retransmit queue (sent"));
        let s = sentence(
            &pages,
            std::slice::from_ref(&both),
            std::slice::from_ref(&free),
        );
        assert!(s.contains("free again"));
        let s = sentence(
            &pages,
            std::slice::from_ref(&free),
            std::slice::from_ref(&free),
        );
        assert!(s.starts_with("No kernel object"));
    }
}
