//! Whole release directories (`format-spec/tree-v1.md`): validated tree paths, the
//! canonical listing of a tree and its digest, and the index of a tree patch.

pub mod format;
pub mod path;

pub use format::{Blob, Entry, EntryKind, Listing, Recipe, TreeFormatError, TreeIndex};
pub use path::{TreeListError, TreePath, TreePathError, check_tree_paths};
