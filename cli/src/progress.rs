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
