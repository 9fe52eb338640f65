//! The timeline for a terminal: one row per step with its lanes and page cells, then the
//! step itself, the model's note (`↳`) and the plain sentence (`=`).
//!
//! ```text
//!   #  app  pipe wq   wire peer │ buf[0]      buf[1]      │
//!   3  ●─────────▶              │ s0 wq       ·           │ app: send buf[0..1) → 1
//!      = buf[0] (stream page 0) is held by the write queue (queued and not yet transmitted).
//! ```

use crate::lanes::{Arrow, Lane};
use crate::timeline::Timeline;
use zcsafe_policy::{Flag, Trace};

/// Width of one lane column.
const LANE: usize = 5;
/// Width of one page column.
const CELL: usize = 12;

/// Renders `trace` as an annotated text timeline.
pub fn render(trace: &Trace) -> String {
    render_timeline(&Timeline::new(trace))
}

/// Renders the first `max` steps of `trace`, and says how many more there are: for
/// reports that show a long kernel recording beside other findings.
pub fn render_first(trace: &Trace, max: usize) -> String {
    let mut t = Timeline::new(trace);
    let more = t.rows.len().saturating_sub(max);
    t.rows.truncate(max);
    let mut out = render_timeline(&t);
    if more > 0 {
        out.push_str(&format!("… {more} more steps (--json has them all)\n"));
    }
    out
}

/// Renders an already laid-out timeline.
pub fn render_timeline(t: &Timeline) -> String {
    let mut out = String::new();
    out.push_str(&format!("{}\n{}\n\n", t.title, t.subtitle));
    let mut head = format!("{:>3}   ", "#");
    for l in Lane::ALL {
        head.push_str(&pad(l.short(), LANE));
    }
    head.push('│');
    for p in &t.pages {
        head.push(' ');
        head.push_str(&pad(&p.to_string(), CELL));
    }
    if !t.pages.is_empty() {
        head.push('│');
    }
    out.push_str(head.trim_end());
    out.push('\n');
    for r in &t.rows {
        let flag = match r.flag {
            None => ' ',
            Some(Flag::ReuseWhileHeld) => '!',
            Some(Flag::WrongBytes) => '✗',
        };
        let mut line = format!("{:>3}{flag}  {}│", r.number, lanes(r.arrow));
        for c in &r.cells {
            line.push(' ');
            line.push_str(&pad(&c.label(), CELL));
        }
        if !r.cells.is_empty() {
            line.push('│');
        }
        if let Some(t) = &r.time {
            line.push_str(&format!(" {t:>10}"));
        }
        line.push_str(&format!(" {}: {}", r.actor.name(), r.action));
        out.push_str(line.trim_end());
        out.push('\n');
        let indent = " ".repeat(6);
        if !r.note.is_empty() {
            out.push_str(&format!("{indent}↳ {}\n", r.note));
        }
        out.push_str(&format!("{indent}= {}\n", r.sentence));
    }
    out.push_str(&format!("\n=> {}\n", t.outcome));
    out
}

/// The lane columns of one row: `●` where the step starts, `▶`/`◀` where it arrives.
fn lanes(a: Arrow) -> String {
    let mut cols: Vec<char> = vec![' '; LANE * Lane::ALL.len()];
    let at = |l: Lane| l.index() * LANE;
    let (f, t) = (at(a.from), at(a.to));
    if f == t {
        cols[f] = '●';
    } else {
        let (lo, hi) = (f.min(t), f.max(t));
        for c in cols.iter_mut().take(hi).skip(lo + 1) {
            *c = '─';
        }
        cols[f] = '●';
        cols[t] = if t > f { '▶' } else { '◀' };
    }
    cols.into_iter().collect()
}

fn pad(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n >= w {
        let mut t: String = s.chars().take(w - 1).collect();
        t.push(' ');
        t
    } else {
        format!("{s}{}", " ".repeat(w - n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrows_point_the_right_way() {
        assert_eq!(
            lanes(Arrow {
                from: Lane::App,
                to: Lane::Pipe
            })
            .trim_end(),
            "●────▶"
        );
        assert_eq!(
            lanes(Arrow {
                from: Lane::Peer,
                to: Lane::WriteQueue
            })
            .trim_end(),
            "          ◀─────────●"
        );
    }
}
