//! Progress on stderr for long commands.
//!
//! Every event is a permanent line (CI logs keep them); on a terminal a bar under them is
//! redrawn after each line: `[######------] 12/168 cells · 1m 05s · about 3m left`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const WIDTH: usize = 28;

/// Counts finished units of work out of a known total.
pub struct ProgressBar {
    unit: &'static str,
    started: Instant,
    done: usize,
    total: usize,
    /// Redraw a bar line (stderr is a terminal).
    bar: bool,
}

impl ProgressBar {
    pub fn new(unit: &'static str) -> Self {
        ProgressBar {
            unit,
            started: Instant::now(),
            done: 0,
            total: 0,
            bar: std::io::stderr().is_terminal(),
        }
    }

    /// Prints `line` permanently, then the bar for `done` of `total`.
    pub fn line(&mut self, line: &str, done: usize, total: usize) {
        self.done = done;
        self.total = total;
        let mut err = std::io::stderr().lock();
        let clear = if self.bar { "\r\x1b[K" } else { "" };
        let _ = writeln!(err, "{clear}{line}");
        if self.bar && self.total > 0 {
            let _ = write!(err, "{}", self.render(self.started.elapsed()));
        }
        let _ = err.flush();
    }

    /// Prints `line` permanently without changing the count.
    pub fn note(&mut self, line: &str) {
        let (done, total) = (self.done, self.total);
        self.line(line, done, total);
    }

    fn render(&self, elapsed: Duration) -> String {
        let filled = (WIDTH * self.done)
            .checked_div(self.total)
            .unwrap_or(0)
            .min(WIDTH);
        let mut s = format!(
            "[{}{}] {}/{} {} · {}",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            self.done,
            self.total,
            self.unit,
            clock(elapsed)
        );
        if self.done > 0 && self.done < self.total {
            let left = elapsed.mul_f64((self.total - self.done) as f64 / self.done as f64);
            s += &format!(" · about {} left", clock(left));
        }
        s
    }
}

impl Drop for ProgressBar {
    /// Leaves the terminal as it was: the bar line is erased.
    fn drop(&mut self) {
        if self.bar && self.total > 0 {
            eprint!("\r\x1b[K");
        }
    }
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// The line `zcsafe check` redraws on a terminal while a cell's search runs:
/// `zc-completion / remote: 1.2M states · 410k states/s · depth 57 · 33 MiB`.
pub struct SearchProgress {
    /// Draw at all: stderr is a terminal and the caller did not ask for quiet output.
    on: bool,
    last: Option<Instant>,
    drawn: bool,
}

/// Redraws at most this often: the line is for reading, not for flicker.
const REDRAW: Duration = Duration::from_millis(200);

impl SearchProgress {
    /// Progress that draws only if `wanted` and stderr is a terminal.
    pub fn new(wanted: bool) -> Self {
        SearchProgress {
            on: wanted && std::io::stderr().is_terminal(),
            last: None,
            drawn: false,
        }
    }

    /// Redraws the line for `cell` at `p` (throttled).
    pub fn show(&mut self, cell: &str, p: &zcsafe_model::Progress) {
        if !self.on || self.last.is_some_and(|t| t.elapsed() < REDRAW) {
            return;
        }
        self.last = Some(Instant::now());
        let rate = p.states as f64 / p.elapsed.as_secs_f64().max(1e-6);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[K{cell}: {} states · {} states/s · depth {} · {} · {}",
            count(p.states as f64),
            count(rate),
            p.depth,
            zcsafe_model::checker::human_bytes(p.held_bytes),
            clock(p.elapsed)
        );
        let _ = err.flush();
        self.drawn = true;
    }

    /// Erases the line (before the next cell, or the results).
    pub fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[K");
            self.drawn = false;
        }
        self.last = None;
    }
}

impl Drop for SearchProgress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// `950`, `12.3k`, `4.5M`.
fn count(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if n >= 1e4 {
        format!("{:.0}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(done: usize, total: usize) -> ProgressBar {
        ProgressBar {
            unit: "cells",
            started: Instant::now(),
            done,
            total,
            bar: true,
        }
    }

    #[test]
    fn the_bar_fills_in_proportion_and_estimates_what_is_left() {
        assert_eq!(
            bar(0, 4).render(Duration::from_secs(3)),
            "[----------------------------] 0/4 cells · 3s"
        );
        assert_eq!(
            bar(1, 4).render(Duration::from_secs(65)),
            "[#######---------------------] 1/4 cells · 1m 05s · about 3m 15s left"
        );
        assert_eq!(
            bar(4, 4).render(Duration::from_secs(9)),
            "[############################] 4/4 cells · 9s"
        );
        assert_eq!(
            bar(5, 4).render(Duration::ZERO),
            "[############################] 5/4 cells · 0s",
            "an over-count never overflows the bar"
        );
    }
}
