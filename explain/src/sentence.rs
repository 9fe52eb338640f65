//! The plain sentence under every step: who still holds the pages and why, or — on a
//! backend that cannot see page references — what the call's answer means for them.

use crate::{meaning, words};
use std::collections::BTreeSet;
use zcsafe_policy::{Answer, Backend, Event, Holder, Page, Step};

/// One page column in one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// Stream offset the page holds (`None`: zeroes or not stream bytes).
    pub content: Option<u64>,
    /// Who references the page.
    pub holders: Vec<Holder>,
}

impl Cell {
    /// An untouched page nobody holds.
    pub const FREE: Cell = Cell {
        content: None,
        holders: Vec::new(),
    };

    /// `s2 wq+rtx`, `s0`, `·` for an untouched free page.
    pub fn label(&self) -> String {
        let c = self.content.map_or("·".to_string(), |c| format!("s{c}"));
        if self.holders.is_empty() {
            c
        } else {
            let h: Vec<&str> = self.holders.iter().map(|h| h.short()).collect();
            format!("{c} {}", h.join("+"))
        }
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

/// "`buf[0]` (stream page 2) is held by the write queue (queued and not yet
/// transmitted); `buf[1]` is free again." — holders new to a page get their reason.
pub fn of_holders(pages: &[Page], before: &[Cell], after: &[Cell]) -> String {
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
        let page = match a.content {
            Some(s) => format!("{name} (stream page {s})"),
            None => name.to_string(),
        };
        parts.push(format!("{page} is {still}held by {}", join_and(&held)));
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
pub fn blind(backend: Backend, step: &Step) -> String {
    match &step.event {
        Event::Accepted { .. } | Event::Checked { .. } | Event::Ended { .. } => {
            format!("The receiver reports: {}.", words::action(&step.event))
        }
        Event::Call { op, answer, .. } => match (meaning::of(op), answer) {
            (Some(m), Answer::Returned(o)) => format!("Returned {o}: {m}."),
            (Some(m), _) => format!("{}{}.", m[..1].to_uppercase(), &m[1..]),
            (None, _) => unseen(backend),
        },
        _ => unseen(backend),
    }
}

fn unseen(backend: Backend) -> String {
    format!(
        "Page holders are not visible on the {backend} backend; only the receiver's check shows an early reuse."
    )
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

    #[test]
    fn sentences_give_reasons_for_new_holders_only() {
        let pages = vec![Page::Buf(0)];
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
        let s = of_holders(
            &pages,
            std::slice::from_ref(&free),
            std::slice::from_ref(&wq),
        );
        assert_eq!(
            s,
            "buf[0] (stream page 0) is held by the write queue (queued and not yet transmitted)."
        );
        let s = of_holders(
            &pages,
            std::slice::from_ref(&wq),
            std::slice::from_ref(&both),
        );
        assert!(s.contains("still held by the write queue and the retransmit queue (sent"));
        let s = of_holders(
            &pages,
            std::slice::from_ref(&both),
            std::slice::from_ref(&free),
        );
        assert!(s.contains("free again"));
        let s = of_holders(
            &pages,
            std::slice::from_ref(&free),
            std::slice::from_ref(&free),
        );
        assert!(s.starts_with("No kernel object"));
    }
}
