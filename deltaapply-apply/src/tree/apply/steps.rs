//! Durable steps: the counter that numbers them and, in a build with the test-only
//! `crash-hook` feature, aborts after the one `DELTAAPPLY_CRASH_AT` names.

/// The environment variable that makes the process abort after a durable step, read
/// only in builds with the test-only `crash-hook` feature.
pub const CRASH_ENV: &str = "DELTAAPPLY_CRASH_AT";

/// Counts durable steps and aborts after the one `DELTAAPPLY_CRASH_AT` names.
pub(super) struct Steps {
    pub(super) done: u64,
    crash_at: Option<u64>,
}

impl Steps {
    pub(super) fn new() -> Steps {
        // Never in a build as shipped: only the test suite turns the feature on.
        #[cfg(feature = "crash-hook")]
        let crash_at = std::env::var(CRASH_ENV).ok().and_then(|v| v.parse().ok());
        #[cfg(not(feature = "crash-hook"))]
        let crash_at = None;
        Steps { done: 0, crash_at }
    }

    pub(super) fn step(&mut self) {
        self.done += 1;
        if self.crash_at == Some(self.done) {
            std::process::abort();
        }
    }
}
