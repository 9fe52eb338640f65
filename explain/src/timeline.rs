//! A trace laid out for a person: one row per step, its lanes, its page cells, its words.
//!
//! [`Timeline::new`] is the one layout both renderers draw ([`text`](crate::text) for a
//! terminal, [`svg`](crate::svg) for documents), so `check`, `sim`, `run`, `replay` and
//! `explain` show a trace the same way.

use crate::lanes::{arrow, Arrow};
use crate::sentence::{self, Cell};
use crate::words;
use zcsafe_policy::{Actor, Flag, Page, PageHolders, Trace, Verdict};

/// One step, placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// 1-based step number.
    pub number: usize,
    /// Who acted.
    pub actor: Actor,
    /// When, if the backend has a clock (`12 ms`).
    pub time: Option<String>,
    /// What happened ([`words::action`]).
    pub action: String,
    /// Why it matters in kernel terms ([`words::note`]; may be empty).
    pub note: String,
    /// The lanes it connects.
    pub arrow: Arrow,
    /// One of the two moments of a reuse bug, if it is one.
    pub flag: Option<Flag>,
    /// One cell per [`Timeline::pages`] entry; empty when the backend cannot see holders.
    pub cells: Vec<Cell>,
    /// Who still holds the pages and why, in one plain sentence.
    pub sentence: String,
}

/// A trace laid out on lanes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    /// `policy on transport`.
    pub title: String,
    /// Backend, profile and sizes.
    pub subtitle: String,
    /// Pages, in order of first appearance.
    pub pages: Vec<Page>,
    /// One per step.
    pub rows: Vec<Row>,
    /// Verdict and summary.
    pub outcome: String,
    /// The backend records page holders.
    pub sees_holders: bool,
}

impl Timeline {
    /// Lays out `trace`.
    pub fn new(trace: &Trace) -> Timeline {
        let mut pages: Vec<Page> = Vec::new();
        for p in trace.steps.iter().flat_map(|s| &s.holders) {
            if !pages.contains(&p.page) {
                pages.push(p.page);
            }
        }
        let sees_holders = !pages.is_empty();
        let class = trace.transport.class();
        let mut prev: Vec<Cell> = vec![Cell::FREE; pages.len()];
        let mut rows = Vec::with_capacity(trace.steps.len());
        for (i, s) in trace.steps.iter().enumerate() {
            let cells: Vec<Cell> = pages
                .iter()
                .zip(&prev)
                .map(|(page, before)| cell(&s.holders, *page, before))
                .collect();
            let sentence = if sees_holders {
                sentence::of_holders(&pages, &prev, &cells)
            } else {
                sentence::blind(trace.backend, s)
            };
            rows.push(Row {
                number: i + 1,
                actor: s.actor(),
                time: s.at_us.map(words::time),
                action: words::action(&s.event),
                note: words::note(s, class, trace.device),
                arrow: arrow(&s.event),
                flag: s.flag(),
                cells: cells.clone(),
                sentence,
            });
            prev = cells;
        }
        let policy = if trace.policy.is_empty() {
            "(unnamed policy)"
        } else {
            &trace.policy
        };
        let g = &trace.geometry;
        let unit = if g.page == 1 { "pages" } else { "bytes" };
        Timeline {
            title: match trace.device {
                zcsafe_policy::RemoteDevice::Nic => format!("{policy} on {}", trace.transport),
                d => format!("{policy} on {}, device {d}", trace.transport),
            },
            subtitle: format!(
                "{} backend, kernel profile {}; {unit}: chunk {}, buffer {}, pipe {}, stream {}",
                trace.backend, trace.profile, g.chunk, g.buffer, g.pipe, g.stream
            ),
            pages,
            outcome: outcome(trace, &rows),
            rows,
            sees_holders,
        }
    }
}

/// Verdict and summary; for `stuck`, also the sender's last completed call, right after
/// which it blocked (a trace records what happened, not the call that never returned).
fn outcome(trace: &Trace, rows: &[Row]) -> String {
    let mut o = format!("{}: {}", trace.verdict, trace.summary);
    if trace.verdict == Verdict::Stuck {
        if let Some(last) = rows.iter().rev().find(|r| r.actor == Actor::App) {
            o.push_str(&format!(" (its last completed call: {})", last.action));
        }
    }
    o
}

/// A page's cell after a step. A step that lists no holders for a page it listed before
/// (a recorder that only lists changed pages) keeps the previous content.
fn cell(holders: &[PageHolders], page: Page, before: &Cell) -> Cell {
    match holders.iter().find(|p| p.page == page) {
        Some(p) => Cell {
            content: p.content,
            holders: p.holders.clone(),
        },
        None => before.clone(),
    }
}
