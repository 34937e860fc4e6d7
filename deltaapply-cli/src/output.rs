//! How much both tools say on stderr. `-q/--quiet`: errors and warnings only (a warning
//! that a patch's origin was not verified is never silenced), no progress bars. The
//! default: one summary line per job, progress bars when stderr is a terminal.
//! `-v/--verbose`: also each step as it starts, with the time since the start.
//! Standard output (`inspect`'s report, `--json`) is the same at every level.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

/// The `-q` / `-v` flags, global to every subcommand.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Verbosity {
    /// Print only errors and warnings on stderr (no summary, no progress bar).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Also print each step as it starts, with the time since the start.
    #[arg(short, long, global = true)]
    verbose: bool,
}

const QUIET: u8 = 0;
const NORMAL: u8 = 1;
const VERBOSE: u8 = 2;

static LEVEL: AtomicU8 = AtomicU8::new(NORMAL);
static STARTED: OnceLock<Instant> = OnceLock::new();

impl Verbosity {
    /// Makes these flags the process's level.
    pub fn install(self) {
        let level = if self.quiet {
            QUIET
        } else if self.verbose {
            VERBOSE
        } else {
            NORMAL
        };
        LEVEL.store(level, Ordering::Relaxed);
        STARTED.get_or_init(Instant::now);
    }
}

/// Whether `-q` was given.
pub fn is_quiet() -> bool {
    LEVEL.load(Ordering::Relaxed) == QUIET
}

/// Whether `-v` was given.
pub fn is_verbose() -> bool {
    LEVEL.load(Ordering::Relaxed) == VERBOSE
}

/// Prints a summary line on stderr, unless `-q`.
pub fn info(line: impl std::fmt::Display) {
    if !is_quiet() {
        eprintln!("{line}");
    }
}

/// Prints a step on stderr with the seconds since the start, only with `-v`.
pub fn step(line: impl std::fmt::Display) {
    if is_verbose() {
        let t = STARTED.get_or_init(Instant::now).elapsed().as_secs_f64();
        eprintln!("[{t:8.3}s] {line}");
    }
}
