//! Whole release directories (`format-spec/tree-v1.md`): validated tree paths, the
//! canonical listing of a tree and its digest, the index of a tree patch, and applying
//! one to a directory (out of place, or in place with a journal).

pub mod apply;
pub mod journal;
pub mod patch;
pub mod probe;

pub use deltaapply_format::tree::{format, path};

pub use apply::{TreeApply, TreeApplyError, TreePhase, TreeProgress, TreeReport, apply_tree};
pub use deltaapply_format::tree::format::{
    Blob, Entry, EntryKind, Listing, Recipe, TreeFormatError, TreeIndex,
};
pub use deltaapply_format::tree::path::{TreeListError, TreePath, TreePathError, check_tree_paths};
pub use patch::TreePatch;
pub use probe::{Difference, Mismatch, Prober};
