//! `deltapack` makes patches for `deltaapply`: a suffix-array (bsdiff-class) matcher
//! whose output applies in bounded memory, zstd with the old file as reference, and
//! the full image, with `auto` choosing the smallest that fits the device's memory
//! budget. Output is deterministic: the same inputs and settings give the same bytes.
//!
//! ```
//! use deltapack::{make_patch, MethodChoice, Settings};
//!
//! let old = b"hello world, hello patch".repeat(100);
//! let mut new = old.clone();
//! new[50] = b'J';
//! let made = make_patch(&old, &new, MethodChoice::Auto, &Settings::default())?;
//! assert!(made.bytes.len() < new.len());
//! # Ok::<(), deltapack::DiffError>(())
//! ```

#![forbid(unsafe_code)]

pub mod build;
pub mod config;
pub mod exe;
pub mod formats;
pub mod keys;
mod make;
pub mod matcher;
pub mod methods;
pub mod prune;
pub mod rotation;
pub mod store;
pub mod suffix;
pub mod tree;
pub mod verify;

use std::io;

use deltaapply::Method;

pub use make::{Candidate, MadePatch, make_one, make_patch, max_window_log};

/// Tuning shared by every method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// zstd compression level (1..=22).
    pub level: i32,
    /// Threads for suffix sorting, compression, and trying methods side by side.
    /// The output does not depend on it.
    pub threads: usize,
    /// Largest memory, in bytes, applying the patch may need (beyond the applier's
    /// baseline): methods and windows are chosen to fit.
    pub max_apply_memory: u64,
    /// Whether the bsdiff method transforms executables' branch targets
    /// (`format-spec/patch-v1.md` §5.2.6).
    pub transform: exe::TransformChoice,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            level: 19,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_apply_memory: 32 << 20,
            transform: exe::TransformChoice::Auto,
        }
    }
}

impl Settings {
    /// Sets zstd's worker threads. Workers are always at least one, because zstd's
    /// output is the same for any number of workers but differs from single-threaded
    /// mode: this keeps patches independent of `threads`.
    pub(crate) fn configure_workers<W: io::Write>(
        &self,
        enc: &mut zstd::stream::write::Encoder<'_, W>,
    ) -> io::Result<()> {
        enc.multithread(self.threads.max(1) as u32)
    }
}

/// Which method to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodChoice {
    /// Try every method that fits the memory budget and keep the smallest.
    Auto,
    /// Use this method (an error if it cannot fit the memory budget).
    Only(Method),
}

/// Why no patch could be made.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// The requested method cannot apply within the memory budget.
    #[error(
        "the {method} method needs at least {needed} bytes to apply, above --max-apply-memory {budget}"
    )]
    OverBudget {
        /// The method.
        method: Method,
        /// Its smallest possible need.
        needed: u64,
        /// The budget.
        budget: u64,
    },
    /// The suffix index cannot be built (old file too large for the bsdiff method).
    #[error(transparent)]
    Index(#[from] suffix::IndexError),
    /// `auto` found no method that could make a patch.
    #[error("no method can make this patch: {}", reasons.iter().map(|(m, why)| format!("{m}: {why}")).collect::<Vec<_>>().join("; "))]
    NoMethod {
        /// Each method with why it failed.
        reasons: Vec<(Method, String)>,
        /// True when every method failed only for the memory budget.
        over_budget: bool,
    },
    /// Compression failed.
    #[error("compression failed")]
    Compress(#[from] io::Error),
}

impl DiffError {
    /// True when the error is the memory budget's (exit code 5 at the command line).
    pub fn is_over_budget(&self) -> bool {
        match self {
            DiffError::OverBudget { .. } => true,
            DiffError::NoMethod { over_budget, .. } => *over_budget,
            _ => false,
        }
    }
}
