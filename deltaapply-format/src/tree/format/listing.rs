//! The canonical listing of a release tree: its entries, their validation, and the
//! listing digest that identifies the tree (§3).

use std::convert::Infallible;
use std::fmt;

use super::{MAX_ENTRIES, MODE_MASK, TreeFormatError};
use crate::codec::Writer;
use crate::container::FileId;
use crate::digest::{Hasher, Sha256Digest};
use crate::tree::path::{TreeListError, TreePath, check_tree_paths};

/// Domain separation of a listing digest.
const LISTING_CONTEXT: &[u8] = b"deltapack tree listing v1\0";
/// What an entry of a tree is. `R` is what a file carries besides its content: nothing
/// in a plain listing, its [`Recipe`](super::Recipe) in a tree patch's new tree.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum EntryKind<R = ()> {
    /// A regular file.
    File {
        /// Its length.
        size: u64,
        /// Its SHA-256.
        sha256: Sha256Digest,
        /// How it is made (in a tree patch's new tree).
        #[serde(skip)]
        recipe: R,
    },
    /// A directory (listed whether or not it is empty).
    Dir,
    /// A symbolic link whose target is relative and stays inside the tree.
    Symlink {
        /// The link's text.
        target: String,
    },
}

impl<R> EntryKind<R> {
    fn code(&self) -> u8 {
        match self {
            EntryKind::File { .. } => 1,
            EntryKind::Dir => 2,
            EntryKind::Symlink { .. } => 3,
        }
    }

    /// The file's size and hash, if it is a file.
    pub fn file(&self) -> Option<FileId> {
        match *self {
            EntryKind::File { size, sha256, .. } => Some(FileId { size, sha256 }),
            _ => None,
        }
    }
}

/// One entry of a release tree (`R`: see [`EntryKind`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry<R = ()> {
    /// Where it is.
    pub path: TreePath,
    /// Its permission bits (within [`MODE_MASK`]; 0 for a symbolic link).
    pub mode: u32,
    /// What it is.
    #[serde(flatten)]
    pub kind: EntryKind<R>,
}

impl<R> Entry<R> {
    /// The same entry with, if it is a file, what `recipe` makes of its path and
    /// content.
    pub(super) fn try_with<S, E>(
        self,
        recipe: impl FnOnce(&TreePath, FileId) -> Result<S, E>,
    ) -> Result<Entry<S>, E> {
        let kind = match self.kind {
            EntryKind::File { size, sha256, .. } => EntryKind::File {
                size,
                sha256,
                recipe: recipe(&self.path, FileId { size, sha256 })?,
            },
            EntryKind::Dir => EntryKind::Dir,
            EntryKind::Symlink { target } => EntryKind::Symlink { target },
        };
        Ok(Entry {
            path: self.path,
            mode: self.mode,
            kind,
        })
    }
}
/// A validated release tree: entries sorted by path, every parent listed as a
/// directory, no two paths that collide on any filesystem, links that stay inside.
/// `Listing<Recipe>` is a tree patch's new tree, each file with how it is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing<R = ()> {
    pub(super) entries: Vec<Entry<R>>,
}

/// The empty tree.
impl Default for Listing {
    fn default() -> Self {
        Listing {
            entries: Vec::new(),
        }
    }
}

impl<R> Listing<R> {
    /// Sorts `entries` by path and validates them.
    pub fn new(mut entries: Vec<Entry<R>>) -> Result<Listing<R>, TreeFormatError> {
        entries.sort_by(|a, b| a.path.as_str().as_bytes().cmp(b.path.as_str().as_bytes()));
        Listing::from_sorted(entries)
    }

    /// Validates entries that must already be in order (as decoded).
    pub(super) fn from_sorted(entries: Vec<Entry<R>>) -> Result<Listing<R>, TreeFormatError> {
        if entries.len() as u64 > MAX_ENTRIES {
            return Err(TreeFormatError::TooManyEntries {
                count: entries.len() as u64,
            });
        }
        for pair in entries.windows(2) {
            if pair[0].path.as_str().as_bytes() >= pair[1].path.as_str().as_bytes() {
                return Err(if pair[0].path == pair[1].path {
                    TreeListError::Duplicate(pair[1].path.to_string()).into()
                } else {
                    TreeFormatError::Unsorted {
                        path: pair[1].path.to_string(),
                    }
                });
            }
        }
        check_tree_paths(
            entries
                .iter()
                .map(|e| (&e.path, matches!(e.kind, EntryKind::Dir))),
        )?;
        let listing = Listing { entries };
        for entry in &listing.entries {
            let mode_ok = match entry.kind {
                EntryKind::Symlink { .. } => entry.mode == 0,
                _ => entry.mode & !MODE_MASK == 0,
            };
            if !mode_ok {
                return Err(TreeFormatError::BadMode {
                    path: entry.path.to_string(),
                    mode: entry.mode,
                });
            }
            if let Some(parent) = entry.path.parent()
                && !matches!(listing.get(&parent).map(|e| &e.kind), Some(EntryKind::Dir))
            {
                return Err(TreeFormatError::NoParent {
                    path: entry.path.to_string(),
                });
            }
            if let EntryKind::Symlink { target } = &entry.kind {
                listing.check_link(&entry.path, target)?;
            }
        }
        Ok(listing)
    }

    /// The entries, sorted by path bytes.
    pub fn entries(&self) -> &[Entry<R>] {
        &self.entries
    }

    /// The same tree, each file given `recipe(its position, itself)`.
    pub fn with_recipes<S>(&self, mut recipe: impl FnMut(usize, &Entry<R>) -> S) -> Listing<S>
    where
        R: Clone,
    {
        let entries = self.entries.iter().enumerate().map(|(i, e)| {
            let made = e.clone().try_with(|_, _| Ok::<S, Infallible>(recipe(i, e)));
            match made {
                Ok(entry) => entry,
                Err(never) => match never {},
            }
        });
        Listing {
            entries: entries.collect(),
        }
    }

    /// The same tree without what its files carry.
    pub fn plain(&self) -> Listing
    where
        R: Clone,
    {
        self.with_recipes(|_, _| ())
    }

    /// The entry at `path`.
    pub fn get(&self, path: &TreePath) -> Option<&Entry<R>> {
        self.position(path).map(|i| &self.entries[i])
    }

    /// The index of the entry at `path`.
    pub fn position(&self, path: &TreePath) -> Option<usize> {
        self.entries
            .binary_search_by(|e| e.path.as_str().as_bytes().cmp(path.as_str().as_bytes()))
            .ok()
    }

    /// Total bytes of its regular files.
    pub fn total_size(&self) -> u64 {
        self.entries
            .iter()
            .filter_map(|e| e.kind.file())
            .map(|f| f.size)
            .sum()
    }

    /// Number of regular files.
    pub fn file_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.kind.file().is_some())
            .count()
    }

    /// The tree's identity: total file bytes and the listing digest (§3). Two trees
    /// with the same identity have the same paths, kinds, modes, contents and links.
    pub fn id(&self) -> FileId {
        // Hashed entry by entry: no copy of the whole encoding is held (for a large
        // listing it would be several times the index's size).
        let mut hasher = Hasher::new();
        hasher.update(LISTING_CONTEXT);
        hasher.update(&(self.entries.len() as u64).to_le_bytes());
        let mut encoded = Writer::with_capacity(64);
        for entry in &self.entries {
            encoded.clear();
            encode_entry(&mut encoded, entry);
            hasher.update(encoded.as_slice());
        }
        FileId {
            size: self.total_size(),
            sha256: hasher.finish(),
        }
    }

    /// Checks that the link at `path` with `target` resolves inside the tree without
    /// passing through another link (§3.3).
    fn check_link(&self, path: &TreePath, target: &str) -> Result<(), TreeFormatError> {
        let refuse = |problem| {
            Err(TreeFormatError::BadLink {
                path: path.to_string(),
                target: target.to_string(),
                problem,
            })
        };
        if target.is_empty() {
            return refuse("is empty");
        }
        if target.len() > crate::tree::path::MAX_TREE_PATH {
            return refuse("is too long");
        }
        if target.starts_with('/') {
            return refuse("is absolute");
        }
        if target.contains(['\0', '\\']) || target.chars().any(char::is_control) {
            return refuse("has a NUL, backslash or control character");
        }
        // Walk from the link's directory, one component at a time.
        let mut at: Vec<&str> = path.components().collect();
        at.pop();
        let components: Vec<&str> = target.split('/').collect();
        let last = components.len() - 1;
        for (i, c) in components.into_iter().enumerate() {
            match c {
                "" | "." => {}
                ".." => {
                    if at.pop().is_none() {
                        return refuse("points out of the tree");
                    }
                }
                name => {
                    at.push(name);
                    let so_far = at.join("/");
                    let Ok(so_far) = TreePath::new(&so_far) else {
                        return refuse("names a path that is not a valid tree path");
                    };
                    if i != last
                        && matches!(
                            self.get(&so_far).map(|e| &e.kind),
                            Some(EntryKind::Symlink { .. })
                        )
                    {
                        return refuse("passes through another symbolic link");
                    }
                }
            }
        }
        Ok(())
    }
}
pub(super) fn encode_entry<R>(w: &mut Writer, entry: &Entry<R>) {
    w.u8(entry.kind.code());
    w.u16(entry.mode as u16);
    let path = entry.path.as_str().as_bytes();
    w.u16(path.len() as u16);
    w.bytes(path);
    match &entry.kind {
        EntryKind::File { size, sha256, .. } => {
            w.u64(*size);
            w.bytes(&sha256.0);
        }
        EntryKind::Dir => {}
        EntryKind::Symlink { target } => {
            w.u16(target.len() as u16);
            w.bytes(target.as_bytes());
        }
    }
}
impl<R> fmt::Display for Entry<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EntryKind::File { size, .. } => {
                write!(f, "{} ({size} bytes, mode {:o})", self.path, self.mode)
            }
            EntryKind::Dir => write!(f, "{}/ (mode {:o})", self.path, self.mode),
            EntryKind::Symlink { target } => write!(f, "{} -> {target}", self.path),
        }
    }
}
