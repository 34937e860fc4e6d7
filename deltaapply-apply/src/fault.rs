//! Fault points on the durable steps of a single-file install: every write into the
//! temporary file, its fsync, the rename over the destination and the directory's
//! fsync. In a build with the test-only `crash-hook` feature, `DELTAAPPLY_FAULT_AT=N`
//! makes the Nth of them (counted across the process, from 1) fail as
//! `DELTAAPPLY_FAULT` says: `crash` (the process aborts, as on a power cut), `eio`,
//! `enospc` or `eacces` (the step returns that error). `DELTAAPPLY_FAULT_TRACE=1`
//! prints each point on stderr as it is reached, so a test learns how many there are.
//! In a build without the feature, every build that ships, these are no-ops and the
//! variables are never read. (Tree updates number their own steps: `tree::apply`.)

use std::io::{self, Write};

/// The environment variable naming the step that fails (test builds only).
pub const FAULT_AT_ENV: &str = "DELTAAPPLY_FAULT_AT";
/// The environment variable naming how it fails (test builds only).
pub const FAULT_KIND_ENV: &str = "DELTAAPPLY_FAULT";
/// The environment variable that traces every fault point (test builds only).
pub const FAULT_TRACE_ENV: &str = "DELTAAPPLY_FAULT_TRACE";

/// A durable step of a single-file install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// A write into the temporary file.
    Write,
    /// The temporary file's fsync.
    Fsync,
    /// The rename of the temporary file over the destination.
    Rename,
    /// The fsync of the destination's directory.
    DirFsync,
}

/// Reaches `point`: in a test build, fails if it is the one `DELTAAPPLY_FAULT_AT` names.
#[cfg(feature = "crash-hook")]
pub fn reach(point: Point) -> io::Result<()> {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Plan {
        at: Option<u64>,
        kind: String,
        trace: bool,
    }
    static PLAN: OnceLock<Plan> = OnceLock::new();
    static REACHED: AtomicU64 = AtomicU64::new(0);
    let plan = PLAN.get_or_init(|| Plan {
        at: std::env::var(FAULT_AT_ENV)
            .ok()
            .and_then(|v| v.parse().ok()),
        kind: std::env::var(FAULT_KIND_ENV).unwrap_or_else(|_| "crash".into()),
        trace: std::env::var_os(FAULT_TRACE_ENV).is_some(),
    });
    let n = REACHED.fetch_add(1, Ordering::SeqCst) + 1;
    if plan.trace {
        eprintln!("fault point {n}: {point:?}");
    }
    if plan.at != Some(n) {
        return Ok(());
    }
    let kind = match plan.kind.as_str() {
        "eio" => io::Error::from_raw_os_error(5),
        "enospc" => io::Error::from_raw_os_error(28),
        "eacces" => io::Error::from_raw_os_error(13),
        _ => std::process::abort(),
    };
    Err(kind)
}

/// Reaches `point`: nothing, in a build without the test-only `crash-hook` feature.
#[cfg(not(feature = "crash-hook"))]
#[inline(always)]
pub fn reach(_point: Point) -> io::Result<()> {
    Ok(())
}

/// A writer whose every write is a [`Point::Write`].
#[derive(Debug)]
pub struct Checked<W>(pub W);

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        reach(Point::Write)?;
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
