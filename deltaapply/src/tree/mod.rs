//! Whole release directories (`format-spec/tree-v1.md`): validated tree paths, the
//! canonical listing of a tree and its digest, and the index of a tree patch.

pub mod format;
pub mod patch;
pub mod path;
pub mod probe;

pub use format::{Blob, Entry, EntryKind, Listing, Recipe, TreeFormatError, TreeIndex};
pub use patch::TreePatch;
pub use path::{TreeListError, TreePath, TreePathError, check_tree_paths};
pub use probe::{Difference, Mismatch, Prober};
