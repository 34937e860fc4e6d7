//! Whole release directories (`format-spec/tree-v1.md`): validated tree paths, the
//! canonical listing of a tree and its digest, the index of a tree patch, and applying
//! one to a directory (out of place, or in place with a journal).

pub mod apply;
pub mod format;
pub mod journal;
pub mod patch;
pub mod path;
pub mod probe;

pub use apply::{TreeApply, TreeApplyError, TreePhase, TreeProgress, TreeReport, apply_tree};
pub use format::{Blob, Entry, EntryKind, Listing, Recipe, TreeFormatError, TreeIndex};
pub use patch::TreePatch;
pub use path::{TreeListError, TreePath, TreePathError, check_tree_paths};
pub use probe::{Difference, Mismatch, Prober};
