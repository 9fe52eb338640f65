//! The one column-aligned text table every zcsafe table is printed with (the CLI's
//! verdict tables, `zcsafe policies`, the bench blocks, the timing section).
//!
//! It lives here, in the crate every other crate already depends on, so that the CLI and
//! the bench renderer share one printer instead of each padding with `{:<8}` — which a
//! `Display` impl that does not call [`Formatter::pad`](std::fmt::Formatter::pad)
//! silently ignores: that is how `zcsafe policies` once printed unpadded verdict columns. Widths are measured in `char`s, not bytes, so `…`, `×` and `±`
//! line up.

/// How a column's cells sit in its width.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Align {
    /// Text (the default: names and verdicts read from the left).
    #[default]
    Left,
    /// Numbers.
    Right,
}

/// Rows of cells under a header; every column as wide as its widest cell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
    indent: String,
}

/// Spaces between two columns.
pub const GAP: usize = 2;

impl Table {
    /// A table with these column titles (all left-aligned until [`Table::align`]).
    #[must_use]
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        let header: Vec<String> = header.into_iter().map(Into::into).collect();
        Table {
            align: vec![Align::Left; header.len()],
            header,
            rows: Vec::new(),
            indent: String::new(),
        }
    }

    /// Sets the alignment of column `col`.
    #[must_use]
    pub fn align(mut self, col: usize, align: Align) -> Table {
        if let Some(a) = self.align.get_mut(col) {
            *a = align;
        }
        self
    }

    /// Starts every line with `indent`.
    #[must_use]
    pub fn indent(mut self, indent: &str) -> Table {
        self.indent = indent.to_string();
        self
    }

    /// Appends a row; missing cells are empty, extra cells widen the table.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The number of rows (the header not counted).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The width of each column in `char`s: its widest cell or title.
    pub fn widths(&self) -> Vec<usize> {
        let mut w: Vec<usize> = Vec::new();
        for line in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in line.iter().enumerate() {
                let n = cell.chars().count();
                match w.get_mut(i) {
                    Some(x) => *x = (*x).max(n),
                    None => w.push(n),
                }
            }
        }
        w
    }

    /// One line of cells laid out in `widths` (no trailing blanks, no newline). For
    /// printing rows as they come, with widths known in advance.
    pub fn line<S: AsRef<str>>(&self, widths: &[usize], cells: &[S]) -> String {
        let mut out = self.indent.clone();
        for (i, cell) in cells.iter().enumerate() {
            let cell = cell.as_ref();
            if i > 0 {
                out.push_str(&" ".repeat(GAP));
            }
            let pad = widths
                .get(i)
                .copied()
                .unwrap_or(0)
                .saturating_sub(cell.chars().count());
            match self.align.get(i).copied().unwrap_or_default() {
                Align::Left => {
                    out.push_str(cell);
                    out.push_str(&" ".repeat(pad));
                }
                Align::Right => {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                }
            }
        }
        out.truncate(out.trim_end().len());
        out
    }

    /// The header and every row, each line ending in a newline.
    pub fn render(&self) -> String {
        let widths = self.widths();
        let mut out = String::new();
        for line in std::iter::once(&self.header).chain(&self.rows) {
            out.push_str(&self.line(&widths, line));
            out.push('\n');
        }
        out
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The char offset of column `col` in `line`, given the table's widths.
    fn starts(widths: &[usize]) -> Vec<usize> {
        let mut at = 0;
        widths
            .iter()
            .map(|w| {
                let s = at;
                at += w + GAP;
                s
            })
            .collect()
    }

    #[test]
    fn columns_start_at_the_same_char_offsets_with_non_ascii_cells() {
        let mut t = Table::new(["policy", "×copy", "note"]).align(1, Align::Right);
        t.row(["copy", "1.00", "plain send(), buffer reused at once"]);
        t.row(["vmsplice-double-buffer", "0.15", "two halves… of the pipe"]);
        t.row(["±", "12.50", "é"]);
        let text = t.render();
        let widths = t.widths();
        let at = starts(&widths);
        for line in text.lines().skip(1) {
            let chars: Vec<char> = line.chars().collect();
            // The note column starts right after the gap, whatever the bytes before it.
            assert_ne!(chars[at[2]], ' ', "{line:?}");
            assert_eq!(chars[at[2] - 1], ' ', "{line:?}");
            // Right-aligned numbers end at the same offset.
            assert_ne!(chars[at[1] + widths[1] - 1], ' ', "{line:?}");
        }
        assert_eq!(
            text,
            "policy                  ×copy  note\n\
             copy                     1.00  plain send(), buffer reused at once\n\
             vmsplice-double-buffer   0.15  two halves… of the pipe\n\
             ±                       12.50  é\n"
        );
    }

    #[test]
    fn no_trailing_blanks_and_short_rows() {
        let mut t = Table::new(["a", "b"]).indent("  ");
        t.row(["long cell", ""]);
        t.row(["x"]);
        assert_eq!(t.render(), "  a          b\n  long cell\n  x\n");
    }
}
