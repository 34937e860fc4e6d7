//! Diffing whole release directories into tree patches (`PatchKind::Tree`): reading a
//! directory into a validated [`Listing`](deltaapply::tree::Listing) ([`scan`]) and
//! choosing, for every file of the new tree, whether it is unchanged, a rename or copy
//! of an old file, a per-file patch, or shipped in full ([`diff`]).
//!
//! ```
//! use deltapack::Settings;
//! use deltapack::tree::diff_trees;
//!
//! let (old, new) = (tempfile::tempdir()?, tempfile::tempdir()?);
//! std::fs::write(old.path().join("app.bin"), b"version 1 ".repeat(500))?;
//! std::fs::write(new.path().join("app.bin"), b"version 2 ".repeat(500))?;
//! std::fs::write(new.path().join("README"), b"hello")?;
//! let made = diff_trees(Some(old.path()), new.path(), &Settings::default(), None)?;
//! assert_eq!(made.stats.full.files + made.stats.bsdiff.files + made.stats.zstd.files, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod diff;
pub mod scan;

pub use diff::{FileStats, ShippedStats, TreeDiff, TreeDiffError, TreeStats, diff_trees};
pub use scan::{ScannedTree, TreeScanError, scan_tree};
