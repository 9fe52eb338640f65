//! The timeline as an SVG sequence diagram, for documents.
//!
//! Lifelines for the application, pipe, write queue, wire/device and peer run down the
//! left; each step is an arrow between them (or a dot on one). To the right, one column
//! per buffer page shows what the page holds and who references it (green: free, amber:
//! held), then the step in words, the model's note and the plain sentence. The row
//! where the application rewrites a held page is tinted, the row where the receiver
//! reads wrong bytes more so.
//!
//! Output is plain SVG 1.1 with no scripts or external resources, and byte-for-byte
//! deterministic, so figures can be committed and checked for staleness.

use crate::lanes::Lane;
use crate::timeline::{Row, Timeline};
use std::fmt::Write;
use zcsafe_policy::{Flag, Trace};

const MARGIN: i64 = 16;
const NUM_W: i64 = 32;
const LANE_W: i64 = 84;
const PAGE_W: i64 = 86;
const TEXT_W: i64 = 480;
/// Characters per wrapped line in the text column (11 px sans-serif).
const WRAP: usize = 78;
const HEAD_H: i64 = 96;
const LINE_H: i64 = 14;

/// Renders `trace` as an SVG document.
pub fn render(trace: &Trace) -> String {
    render_timeline(&Timeline::new(trace))
}

struct Layout {
    lanes_x: i64,
    pages_x: i64,
    text_x: i64,
    width: i64,
}

impl Layout {
    fn new(pages: usize) -> Layout {
        let lanes_x = MARGIN + NUM_W;
        let pages_x = lanes_x + LANE_W * Lane::ALL.len() as i64 + 12;
        let text_x = pages_x + PAGE_W * pages as i64 + 12;
        Layout {
            lanes_x,
            pages_x,
            text_x,
            width: text_x + TEXT_W + MARGIN,
        }
    }

    fn lane_x(&self, l: Lane) -> i64 {
        self.lanes_x + LANE_W * l.index() as i64 + LANE_W / 2
    }
}

/// A row, its top y and its text lines.
type PlacedRow<'a> = (i64, &'a Row, Vec<(&'static str, String)>);

/// The text lines of a row: action, note, sentence (wrapped).
fn row_lines(r: &Row) -> Vec<(&'static str, String)> {
    let when = r.time.as_ref().map_or(String::new(), |t| format!("{t} "));
    let mut v = vec![("act", format!("{when}{}: {}", r.actor.name(), r.action))];
    for l in wrap(&r.note, WRAP) {
        v.push(("note", l));
    }
    for l in wrap(&r.sentence, WRAP) {
        v.push(("say", l));
    }
    v
}

/// Renders an already laid-out timeline.
pub fn render_timeline(t: &Timeline) -> String {
    let lay = Layout::new(t.pages.len());
    let rows: Vec<PlacedRow<'_>> = {
        let mut y = HEAD_H;
        t.rows
            .iter()
            .map(|r| {
                let lines = row_lines(r);
                let top = y;
                y += 10 + LINE_H * lines.len() as i64;
                (top, r, lines)
            })
            .collect()
    };
    let body_end = rows
        .last()
        .map_or(HEAD_H, |(y, _, l)| y + 10 + LINE_H * l.len() as i64);
    let outcome = wrap(&t.outcome, 130);
    let height = body_end + 20 + 16 * outcome.len() as i64 + MARGIN;

    let mut s = String::new();
    let w = lay.width;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" viewBox="0 0 {w} {height}" font-family="DejaVu Sans, Verdana, sans-serif" role="img">"#
    );
    let _ = writeln!(s, "<title>{}</title>", esc(&t.title));
    s.push_str(concat!(
        "<defs><marker id=\"head\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">",
        "<path d=\"M0,0 L10,5 L0,10 z\" fill=\"#333\"/></marker></defs>\n",
        "<style>text{font-size:11px;fill:#222}.title{font-size:16px;font-weight:bold}",
        ".sub{fill:#555}.lane{font-weight:bold;text-anchor:middle}.act{font-family:DejaVu Sans Mono,monospace}",
        ".note{fill:#7a4b00;font-style:italic}.say{fill:#335}.num{fill:#888;text-anchor:end}",
        ".cell{font-size:10px;font-family:DejaVu Sans Mono,monospace}.outcome{font-size:13px;font-weight:bold}</style>\n"
    ));
    let _ = writeln!(
        s,
        r##"<rect x="0" y="0" width="{w}" height="{height}" fill="#fff"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text class="title" x="{MARGIN}" y="28">{}</text>"#,
        esc(&t.title)
    );
    let _ = writeln!(
        s,
        r#"<text class="sub" x="{MARGIN}" y="48">{}</text>"#,
        esc(&t.subtitle)
    );
    // Row backgrounds first, so lifelines and arrows stay visible on tinted rows.
    for (y, r, lines) in &rows {
        let h = 10 + LINE_H * lines.len() as i64;
        let tint = match r.flag {
            None if r.number % 2 == 0 => Some("#f6f6f6"),
            None => None,
            Some(Flag::ReuseWhileHeld) => Some("#fde2c4"),
            Some(Flag::WrongBytes) => Some("#f6c6c6"),
        };
        if let Some(fill) = tint {
            let _ = writeln!(
                s,
                r#"<rect class="row {}" x="{MARGIN}" y="{y}" width="{}" height="{h}" fill="{fill}"/>"#,
                mark_class(r.flag),
                w - 2 * MARGIN
            );
        }
    }
    // Headers and lifelines.
    for l in Lane::ALL {
        let x = lay.lane_x(l);
        let _ = writeln!(
            s,
            r#"<text class="lane" x="{x}" y="80">{}</text>"#,
            esc(l.title())
        );
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{HEAD_H}" x2="{x}" y2="{body_end}" stroke="#bbb" stroke-dasharray="4 3"/>"##
        );
    }
    for (i, p) in t.pages.iter().enumerate() {
        let x = lay.pages_x + PAGE_W * i as i64 + PAGE_W / 2;
        let _ = writeln!(
            s,
            r#"<text class="lane" x="{x}" y="80">{}</text>"#,
            esc(&p.to_string())
        );
    }
    let _ = writeln!(
        s,
        r#"<text class="lane" x="{}" y="80" style="text-anchor:start">step · note · who holds the pages</text>"#,
        lay.text_x
    );
    // Rows.
    for (y, r, lines) in &rows {
        let mid = y + 15;
        let _ = writeln!(s, r#"<g class="step {}">"#, mark_class(r.flag));
        let _ = writeln!(
            s,
            r#"<text class="num" x="{}" y="{}">{}</text>"#,
            lay.lanes_x - 6,
            mid + 4,
            r.number
        );
        let (x1, x2) = (lay.lane_x(r.arrow.from), lay.lane_x(r.arrow.to));
        let color = match r.flag {
            None => "#333",
            _ => "#b00020",
        };
        if x1 == x2 {
            let _ = writeln!(s, r#"<circle cx="{x1}" cy="{mid}" r="5" fill="{color}"/>"#);
        } else {
            let end = if x2 > x1 { x2 - 6 } else { x2 + 6 };
            let _ = writeln!(
                s,
                r#"<circle cx="{x1}" cy="{mid}" r="3" fill="{color}"/><line x1="{x1}" y1="{mid}" x2="{end}" y2="{mid}" stroke="{color}" stroke-width="1.6" marker-end="url(#head)"/>"#
            );
        }
        for (i, c) in r.cells.iter().enumerate() {
            let x = lay.pages_x + PAGE_W * i as i64 + 3;
            let fill = if c.holders.is_empty() {
                "#e6f4e6"
            } else {
                "#ffe2a8"
            };
            let _ = writeln!(
                s,
                r##"<rect x="{x}" y="{}" width="{}" height="18" rx="3" fill="{fill}" stroke="#999" stroke-width="0.5"/><text class="cell" x="{}" y="{}">{}</text>"##,
                mid - 10,
                PAGE_W - 6,
                x + 4,
                mid + 3,
                esc(&c.label())
            );
        }
        for (i, (class, line)) in lines.iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<text class="{class}" x="{}" y="{}">{}</text>"#,
                lay.text_x,
                y + 18 + LINE_H * i as i64,
                esc(line)
            );
        }
        s.push_str("</g>\n");
    }
    for (i, l) in outcome.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text class="outcome" x="{MARGIN}" y="{}">{}</text>"#,
            body_end + 24 + 16 * i as i64,
            esc(l)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn mark_class(m: Option<Flag>) -> &'static str {
    match m {
        None => "normal",
        Some(Flag::ReuseWhileHeld) => "reuse",
        Some(Flag::WrongBytes) => "wrong",
    }
}

/// Greedy word wrap; words longer than `width` stay whole.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// XML text and attribute escaping.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_and_width() {
        let w = wrap("aa bb cc dd", 5);
        assert_eq!(w, vec!["aa bb", "cc dd"]);
        assert!(wrap("", 5).is_empty());
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(esc(r#"a<b & "c">"#), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}
