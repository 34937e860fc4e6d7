//! Progress on stderr, drawn only when stderr is a terminal and `--json` and `--quiet`
//! are off. Byte and item counts are one line redrawn in place by this module (the
//! applier's bars need nothing more, and indicatif cost the stripped applier 24 KB);
//! the spinner for work of unknown length, which only `deltapack` shows, is indicatif's.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{human_bytes, output};

/// Width of the bar between its brackets, in characters.
const WIDTH: usize = 30;
/// Least time between two redraws (the last state is always drawn by `finish`).
const REDRAW: Duration = Duration::from_millis(100);

/// A progress bar on stderr, shown only when stderr is a terminal and `--json` is off.
pub struct Bar {
    inner: Option<Inner>,
}

enum Inner {
    Line(Mutex<Line>),
    Spinner(indicatif::ProgressBar),
}

/// What a drawn line counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Bytes,
    Items,
}

/// The state of a line drawn by hand.
struct Line {
    unit: Unit,
    msg: String,
    done: u64,
    total: u64,
    /// When the current message began (for the rate and the elapsed time).
    since: Instant,
    drawn: Option<Instant>,
}

impl Line {
    fn bar(unit: Unit, msg: &str) -> Bar {
        Bar {
            inner: Some(Inner::Line(Mutex::new(Line {
                unit,
                msg: msg.to_string(),
                done: 0,
                total: 0,
                since: Instant::now(),
                drawn: None,
            }))),
        }
    }

    /// The line as it is now.
    fn render(&self) -> String {
        let filled = if self.total == 0 {
            0
        } else {
            (self.done.min(self.total) as u128 * WIDTH as u128 / self.total as u128) as usize
        };
        let mut bar = "=".repeat(filled);
        if filled < WIDTH {
            bar.push('>');
            bar.push_str(&" ".repeat(WIDTH - filled - 1));
        }
        let secs = self.since.elapsed().as_secs_f64();
        match self.unit {
            Unit::Bytes => {
                // A rate over less than a fifth of a second says nothing yet.
                let rate = if secs >= 0.2 {
                    format!("{}/s", human_bytes((self.done as f64 / secs) as u64))
                } else {
                    String::new()
                };
                format!(
                    "{:>17} [{bar}] {}/{} {rate}",
                    self.msg,
                    human_bytes(self.done),
                    human_bytes(self.total)
                )
            }
            Unit::Items => {
                let s = secs as u64;
                format!(
                    "{:>10} [{bar}] {}/{} {:02}:{:02}:{:02}",
                    self.msg,
                    self.done,
                    self.total,
                    s / 3600,
                    s / 60 % 60,
                    s % 60
                )
            }
        }
    }

    /// Redraws the line, at most every [`REDRAW`] unless `force`.
    fn draw(&mut self, force: bool) {
        let now = Instant::now();
        if !force && self.drawn.is_some_and(|at| now - at < REDRAW) {
            return;
        }
        self.drawn = Some(now);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}", self.render());
        let _ = err.flush();
    }

    /// Clears the line if it was drawn.
    fn clear(&mut self) {
        if self.drawn.take().is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

/// Whether progress may be drawn at all.
fn shown(enabled: bool) -> bool {
    enabled && !output::is_quiet() && std::io::stderr().is_terminal()
}

impl Bar {
    /// A byte-counting bar, or a hidden one when not on a terminal.
    pub fn bytes(enabled: bool) -> Self {
        if !shown(enabled) {
            return Bar { inner: None };
        }
        Line::bar(Unit::Bytes, "")
    }

    /// A spinner for work of unknown length.
    pub fn spinner(enabled: bool, msg: &str) -> Self {
        if !shown(enabled) {
            return Bar { inner: None };
        }
        let bar = indicatif::ProgressBar::new_spinner().with_message(msg.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar {
            inner: Some(Inner::Spinner(bar)),
        }
    }

    /// A bar counting items (e.g. patches made), or a hidden one when not on a terminal.
    pub fn count(enabled: bool, what: &str) -> Self {
        if !shown(enabled) {
            return Bar { inner: None };
        }
        Line::bar(Unit::Items, what)
    }

    /// Whether the bar is drawn (stderr is a terminal and it was enabled).
    pub fn is_visible(&self) -> bool {
        self.inner.is_some()
    }

    fn with_line(&self, f: impl FnOnce(&mut Line)) {
        if let Some(Inner::Line(line)) = &self.inner {
            let mut line = line.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut line);
        }
    }

    /// Sets the number of items.
    pub fn set_length(&self, len: u64) {
        self.with_line(|l| {
            l.total = len;
            l.draw(false);
        });
    }

    /// Counts one item done.
    pub fn inc(&self) {
        self.with_line(|l| {
            l.done += 1;
            let last = l.done >= l.total;
            l.draw(last);
        });
    }

    /// Prints a line on stderr above the bar (or plainly without one), unless `quiet`.
    pub fn println(&self, line: &str, quiet: bool) {
        match &self.inner {
            Some(Inner::Spinner(b)) => b.println(line),
            Some(Inner::Line(_)) => self.with_line(|l| {
                let was_drawn = l.drawn.is_some();
                l.clear();
                eprintln!("{line}");
                if was_drawn {
                    l.draw(true);
                }
            }),
            None if !quiet => eprintln!("{line}"),
            None => {}
        }
    }

    /// Sets what the bar shows.
    pub fn set(&self, msg: &'static str, done: u64, total: u64) {
        self.with_line(|l| {
            if l.msg != msg {
                l.msg = msg.to_string();
                l.since = Instant::now();
            }
            l.total = total;
            l.done = done;
            l.draw(done >= total);
        });
    }

    /// Removes the bar.
    pub fn finish(&self) {
        match &self.inner {
            Some(Inner::Spinner(b)) => b.finish_and_clear(),
            Some(Inner::Line(_)) => self.with_line(Line::clear),
            None => {}
        }
    }
}
