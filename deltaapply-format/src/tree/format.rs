//! The tree patch's index and the canonical listing of a release tree
//! (`format-spec/tree-v1.md` §3-§5). A tree patch is a patch-v1 container of method
//! [`Method::Tree`]: its header (signed, checksummed) names the old and new trees by
//! their listing digests, and its payload is
//!
//! ```text
//! index_len: u64 LE | index (index_len bytes) | blob 0 | blob 1 | ...
//! ```
//!
//! where each blob is a complete patch-v1 container of a file method, named in the
//! index by length and SHA-256. Everything here is pure encoding and validation; the
//! producer builds a [`TreeIndex`] and calls [`TreeIndex::encode`], the applier calls
//! [`TreeIndex::decode`] on bytes whose hash the signed header vouches for.

use std::fmt;

use crate::codec::{CodecError, Reader, Writer};
use crate::container::{BASE_APPLY_MEMORY, FileId, HEADER_LEN, Header, MIN_WINDOW_LOG};
use crate::digest::{Hasher, Sha256Digest};
use crate::method::Method;
use crate::tree::path::{TreeListError, TreePath, TreePathError, check_tree_paths};

/// Most entries a listing may have (files, directories and links together). A tree
/// this large would be a firmware image of a million files; anything above is refused
/// before memory is reserved for it.
pub const MAX_ENTRIES: u64 = 1_000_000;

/// Largest index a tree patch may carry.
pub const MAX_INDEX_LEN: u64 = 256 << 20;

/// Permission bits a listing records: read, write and execute for owner, group and
/// others. Set-id and sticky bits are never carried.
pub const MODE_MASK: u32 = 0o777;

/// Domain separation of a listing digest.
const LISTING_CONTEXT: &[u8] = b"deltapack tree listing v1\0";

/// Smallest encoding of one index entry (kind, mode, a one-byte path, no data), used
/// to refuse counts the index cannot hold before reserving memory for them.
const MIN_ENTRY_LEN: u64 = 1 + 2 + 2 + 1;

/// What an entry of a tree is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum EntryKind {
    /// A regular file.
    File {
        /// Its length.
        size: u64,
        /// Its SHA-256.
        sha256: Sha256Digest,
    },
    /// A directory (listed whether or not it is empty).
    Dir,
    /// A symbolic link whose target is relative and stays inside the tree.
    Symlink {
        /// The link's text.
        target: String,
    },
}

impl EntryKind {
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
            EntryKind::File { size, sha256 } => Some(FileId { size, sha256 }),
            _ => None,
        }
    }
}

/// One entry of a release tree.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// Where it is.
    pub path: TreePath,
    /// Its permission bits (within [`MODE_MASK`]; 0 for a symbolic link).
    pub mode: u32,
    /// What it is.
    #[serde(flatten)]
    pub kind: EntryKind,
}

/// Why a listing or an index was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeFormatError {
    /// A path that is not a valid tree path.
    #[error(transparent)]
    Path(#[from] TreePathError),
    /// Two paths that cannot both exist.
    #[error(transparent)]
    Paths(#[from] TreeListError),
    /// Entries out of order.
    #[error("entry {path:?} is out of order: entries are sorted by path bytes")]
    Unsorted {
        /// The entry found out of place.
        path: String,
    },
    /// An entry whose parent directory is not listed as a directory.
    #[error("entry {path:?} has no directory entry for its parent")]
    NoParent {
        /// The entry.
        path: String,
    },
    /// A symbolic link that could lead out of the tree.
    #[error("symbolic link {path:?} -> {target:?} {problem}")]
    BadLink {
        /// The link.
        path: String,
        /// Its target.
        target: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// Permission bits outside [`MODE_MASK`], or set on a link.
    #[error(
        "entry {path:?} has mode {mode:#o}: only the bits {MODE_MASK:#o} are allowed (none on a link)"
    )]
    BadMode {
        /// The entry.
        path: String,
        /// The mode found.
        mode: u32,
    },
    /// More entries than [`MAX_ENTRIES`].
    #[error("{count} entries, more than the {MAX_ENTRIES} a tree may have")]
    TooManyEntries {
        /// The count declared or found.
        count: u64,
    },
    /// The index bytes do not decode.
    #[error("index is malformed: {0}")]
    Malformed(String),
}

fn malformed(problem: impl Into<String>) -> TreeFormatError {
    TreeFormatError::Malformed(problem.into())
}

/// A validated release tree: entries sorted by path, every parent listed as a
/// directory, no two paths that collide on any filesystem, links that stay inside.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    entries: Vec<Entry>,
}

impl Listing {
    /// Sorts `entries` by path and validates them.
    pub fn new(mut entries: Vec<Entry>) -> Result<Listing, TreeFormatError> {
        entries.sort_by(|a, b| a.path.as_str().as_bytes().cmp(b.path.as_str().as_bytes()));
        Listing::from_sorted(entries)
    }

    /// Validates entries that must already be in order (as decoded).
    fn from_sorted(entries: Vec<Entry>) -> Result<Listing, TreeFormatError> {
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
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry at `path`.
    pub fn get(&self, path: &TreePath) -> Option<&Entry> {
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

/// How the applier makes one file of the new tree (§4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "recipe")]
pub enum Recipe {
    /// The content of old entry `from` (the same path when unchanged; otherwise a
    /// rename or a copy).
    Copy {
        /// Index into the old listing.
        from: usize,
    },
    /// A blob (a patch-v1 container of method bsdiff or zstd) applied to old entry
    /// `from`.
    Patch {
        /// Index into the old listing.
        from: usize,
        /// Index into the blobs.
        blob: usize,
    },
    /// A blob of method full.
    Full {
        /// Index into the blobs.
        blob: usize,
    },
}

impl Recipe {
    fn code(self) -> u8 {
        match self {
            Recipe::Copy { .. } => 1,
            Recipe::Patch { .. } => 2,
            Recipe::Full { .. } => 3,
        }
    }

    /// The blob it reads, if any.
    pub fn blob(self) -> Option<usize> {
        match self {
            Recipe::Copy { .. } => None,
            Recipe::Patch { blob, .. } | Recipe::Full { blob } => Some(blob),
        }
    }

    /// The old entry it reads, if any.
    pub fn from(self) -> Option<usize> {
        match self {
            Recipe::Copy { from } | Recipe::Patch { from, .. } => Some(from),
            Recipe::Full { .. } => None,
        }
    }
}

/// A blob's place in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Blob {
    /// Offset from the start of the payload (after the 8-byte index length).
    pub offset: u64,
    /// Length of the container.
    pub len: u64,
    /// SHA-256 of the container's bytes.
    pub sha256: Sha256Digest,
}

/// The decoded index of a tree patch: both trees and how each new file is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeIndex {
    /// The tree the patch applies to (empty for a full tree image).
    pub old: Listing,
    /// The tree applying produces.
    pub new: Listing,
    /// One recipe per entry of `new`: `Some` for files, `None` for the rest.
    pub recipes: Vec<Option<Recipe>>,
    /// The blobs, in payload order; blob `k` is used by exactly one recipe, and blobs
    /// appear in the order of the new entries that use them.
    pub blobs: Vec<Blob>,
}

impl TreeIndex {
    /// Encodes the index (§4). `blobs[k].offset` must be where blob `k` will be in the
    /// payload; [`TreeIndex::payload_offsets`] computes them.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(128 * (self.old.entries.len() + self.new.entries.len()));
        w.u64(self.old.entries.len() as u64);
        w.u64(self.new.entries.len() as u64);
        w.u64(self.blobs.len() as u64);
        for entry in &self.old.entries {
            encode_entry(&mut w, entry);
        }
        for (entry, recipe) in self.new.entries.iter().zip(&self.recipes) {
            encode_entry(&mut w, entry);
            if let Some(recipe) = recipe {
                w.u8(recipe.code());
                if let Some(from) = recipe.from() {
                    w.u64(from as u64);
                }
            }
        }
        for blob in &self.blobs {
            w.u64(blob.len);
            w.bytes(&blob.sha256.0);
        }
        w.into_vec()
    }

    /// Where each blob starts in a payload whose index is `index_len` bytes, given the
    /// blobs' lengths in order.
    pub fn payload_offsets(index_len: u64, lens: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let mut at = 8 + index_len;
        lens.into_iter()
            .map(|len| {
                let offset = at;
                at += len;
                offset
            })
            .collect()
    }

    /// Decodes and validates an index. `blobs_len` is the number of payload bytes after
    /// the index, which the blobs must fill exactly. The memory this takes is not
    /// limited; [`crate::tree::TreePatch::open`] decodes within the caller's limit.
    pub fn decode(bytes: &[u8], blobs_len: u64) -> Result<TreeIndex, TreeFormatError> {
        TreeIndex::decode_within(bytes, blobs_len, &mut MemoryBudget::unlimited()).map_err(|e| {
            match e {
                IndexError::Format(e) => e,
                IndexError::Memory(_) => unreachable!("an unlimited budget is never exceeded"),
            }
        })
    }

    /// [`TreeIndex::decode`], charging `budget` for the memory of the entries, recipes
    /// and blobs before it is reserved, of each path and link target before it is
    /// copied, and of the listings' collision check before it runs (see
    /// [`MemoryBudget`]). What stays charged when it returns is what the index holds.
    pub fn decode_within(
        bytes: &[u8],
        blobs_len: u64,
        budget: &mut MemoryBudget,
    ) -> Result<TreeIndex, IndexError> {
        let mut r = Reader::new(bytes);
        let old_count = r.u64("old_count").map_err(truncated)?;
        let new_count = r.u64("new_count").map_err(truncated)?;
        let blob_count = r.u64("blob_count").map_err(truncated)?;
        for count in [old_count, new_count] {
            if count > MAX_ENTRIES {
                return Err(TreeFormatError::TooManyEntries { count }.into());
            }
        }
        let room = bytes.len() as u64;
        if old_count
            .saturating_add(new_count)
            .saturating_mul(MIN_ENTRY_LEN)
            .saturating_add(blob_count.saturating_mul(40))
            > room
        {
            return Err(malformed(format!(
                "{old_count} old entries, {new_count} new entries and {blob_count} blobs \
                 cannot fit in {room} bytes"
            ))
            .into());
        }
        // The counts are now bounded by the bytes that must hold them (I1, I2); the
        // budget decides whether their memory may be reserved.
        budget.charge(cost::SCRATCH)?;
        budget.charge(old_count * cost::ENTRY)?;
        let mut old = Vec::with_capacity(old_count as usize);
        for _ in 0..old_count {
            old.push(decode_entry(&mut r, budget)?);
        }
        let old = budget.checked_listing(old)?;
        budget.charge(new_count * (cost::ENTRY + cost::RECIPE))?;
        let mut new = Vec::with_capacity(new_count as usize);
        let mut recipes = Vec::with_capacity(new_count as usize);
        let mut next_blob = 0usize;
        for _ in 0..new_count {
            let entry = decode_entry(&mut r, budget)?;
            let recipe = match &entry.kind {
                EntryKind::File { size, sha256 } => {
                    let code = r.u8("recipe").map_err(truncated)?;
                    let mut from = || -> Result<usize, TreeFormatError> {
                        let i = r.u64("from").map_err(truncated)?;
                        match old.entries.get(usize::try_from(i).unwrap_or(usize::MAX)) {
                            Some(Entry {
                                kind: EntryKind::File { .. },
                                ..
                            }) => Ok(i as usize),
                            _ => Err(malformed(format!(
                                "file {} is made from old entry {i}, which is not a file",
                                entry.path
                            ))),
                        }
                    };
                    let recipe = match code {
                        1 => {
                            let from = from()?;
                            let source = old.entries[from].kind.file();
                            if source
                                != Some(FileId {
                                    size: *size,
                                    sha256: *sha256,
                                })
                            {
                                return Err(malformed(format!(
                                    "file {} is a copy of {}, which has other content",
                                    entry.path, old.entries[from].path
                                ))
                                .into());
                            }
                            Recipe::Copy { from }
                        }
                        2 => {
                            let from = from()?;
                            next_blob += 1;
                            Recipe::Patch {
                                from,
                                blob: next_blob - 1,
                            }
                        }
                        3 => {
                            next_blob += 1;
                            Recipe::Full {
                                blob: next_blob - 1,
                            }
                        }
                        _ => {
                            return Err(malformed(format!(
                                "file {} has unknown recipe {code}",
                                entry.path
                            ))
                            .into());
                        }
                    };
                    Some(recipe)
                }
                _ => None,
            };
            new.push(entry);
            recipes.push(recipe);
        }
        let new = budget.checked_listing(new)?;
        if next_blob as u64 != blob_count {
            return Err(malformed(format!(
                "{blob_count} blobs declared, the recipes use {next_blob}"
            ))
            .into());
        }
        budget.charge(blob_count * cost::BLOB)?;
        let mut blobs = Vec::with_capacity(next_blob);
        let mut at = 8 + bytes.len() as u64;
        let mut total = 0u64;
        for _ in 0..blob_count {
            let len = r.u64("blob len").map_err(truncated)?;
            let sha256 = Sha256Digest(r.array::<32>("blob sha256").map_err(truncated)?);
            total = total
                .checked_add(len)
                .ok_or_else(|| malformed("blob lengths overflow"))?;
            blobs.push(Blob {
                offset: at,
                len,
                sha256,
            });
            at = at.saturating_add(len);
        }
        r.expect_end("blob table").map_err(truncated)?;
        if total != blobs_len {
            return Err(malformed(format!(
                "the blobs are {total} bytes, the payload has {blobs_len} after the index"
            ))
            .into());
        }
        budget.release(cost::SCRATCH);
        Ok(TreeIndex {
            old,
            new,
            recipes,
            blobs,
        })
    }
}

/// Why [`TreeIndex::decode_within`] refused an index.
#[derive(Debug)]
pub enum IndexError {
    /// The index is invalid.
    Format(TreeFormatError),
    /// Decoding it would take more memory than the budget allows.
    Memory(OverBudget),
}

impl From<TreeFormatError> for IndexError {
    fn from(e: TreeFormatError) -> Self {
        IndexError::Format(e)
    }
}

impl From<OverBudget> for IndexError {
    fn from(e: OverBudget) -> Self {
        IndexError::Memory(e)
    }
}

/// Running out of index bytes (or having some left over) is a malformed index; the
/// message names the field and its offset in the index.
fn truncated(e: CodecError) -> TreeFormatError {
    malformed(e.to_string())
}

/// What the decoded index costs in memory, in bytes, as the decoder charges it to its
/// [`MemoryBudget`]. A decoded index costs far more than its encoding: a directory with
/// a one-byte name is 6 bytes in the index (the smallest entry, `MIN_ENTRY_LEN`) and
/// more than a hundred in memory. The costs are derived from the types' sizes on the
/// target (`size_of`, so they follow the build) and from how a general-purpose
/// allocator rounds a request (glibc's malloc: 8 bytes of header, 16-byte granularity,
/// 32 bytes at least; other allocators are as lean or leaner).
///
/// On x86-64: an entry 80 bytes in its vector, plus 32 or more for its path's
/// allocation; a recipe slot 24; a blob 48; and, while a listing is checked for
/// collisions (`check_tree_paths`), 172 or more per entry: its case-folded path (32
/// or more), its share of the B-tree of folded paths (116, see `BTREE_KEY`) and its
/// place in the list of paths (24). So a directory with a name of a few bytes, 6 to 9
/// bytes of index, is charged 308 bytes at the peak: a million of them (a 9 MB index)
/// about 317 MB, where four bytes per index byte (the header's `apply_memory`) would
/// have allowed 36 MB. (The decoder's peak resident memory for that index, measured,
/// is about 270 MB: the charges are an upper bound.)
pub mod cost {
    use std::mem::size_of;

    use super::{Blob, Entry, Recipe, TreePath};

    /// What allocating `n` bytes costs, allocator overhead included.
    pub const fn heap(n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let chunk = (n + 8).div_ceil(16) * 16;
        if chunk < 32 { 32 } else { chunk }
    }

    /// An element of the listings' vector, reserved at its exact length (the path's
    /// allocation is charged apart, with [`heap`]).
    pub const ENTRY: u64 = size_of::<Entry>() as u64;
    /// An element of the recipes' vector.
    pub const RECIPE: u64 = size_of::<Option<Recipe>>() as u64;
    /// An element of the blob table.
    pub const BLOB: u64 = size_of::<Blob>() as u64;

    /// One key of `check_tree_paths`' map (`BTreeMap<String, (&TreePath, bool)>`),
    /// besides the key's own allocation. A B-tree node holds up to 11 keys and values,
    /// and every node but the root at least 5; an internal node adds 12 child pointers
    /// and has at least 6 children. So per key: at most a fifth of a leaf, and of the
    /// internal nodes above, a thirtieth of one per level up, which sums to less than
    /// a twenty-fifth.
    const SLOT: u64 = size_of::<(String, (&TreePath, bool))>() as u64;
    const LEAF: u64 = heap(11 * SLOT + 16);
    const INTERNAL: u64 = heap(11 * SLOT + 16 + 12 * size_of::<usize>() as u64);
    /// One key of the map, as the comment above works out.
    pub const BTREE_KEY: u64 = LEAF.div_ceil(5) + INTERNAL.div_ceil(25);
    /// The check's list of every path (`Vec<&TreePath>` grown by doubling: up to
    /// twice its length, and the old buffer alongside the new while it grows).
    const PATH_LIST: u64 = 3 * size_of::<&TreePath>() as u64;

    /// The collision check's transient memory for one path of `len` bytes: its
    /// case-folded copy (lowercasing can lengthen non-ASCII text by half, and the copy
    /// grows by doubling from `len`), its map key and its place in the list.
    pub const fn fold_check(len: u64, ascii: bool) -> u64 {
        let folded = if ascii { heap(len) } else { heap(2 * len) };
        folded + BTREE_KEY + PATH_LIST
    }

    /// Memory used while one entry is decoded or validated and freed before the next
    /// (its path's components, its parent's path, a link's resolution), for paths and
    /// targets of at most 4096 bytes and 128 components: charged once.
    pub const SCRATCH: u64 = 64 << 10;
}

/// The memory a decoder may still spend, charged before it allocates. The decoder of
/// a tree patch's index charges it (tree-v1 §4.3) rather than trusting the header's
/// `apply_memory`, which a hostile patch can understate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryBudget {
    limit: u64,
    charged: u64,
    /// The most ever charged at once.
    peak: u64,
}

/// A charge the budget refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    /// What had been charged, plus the charge refused.
    pub needed: u64,
    /// The budget's limit.
    pub limit: u64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> MemoryBudget {
        MemoryBudget {
            limit,
            charged: 0,
            peak: 0,
        }
    }

    /// A budget no charge exceeds.
    pub fn unlimited() -> MemoryBudget {
        MemoryBudget::new(u64::MAX)
    }

    /// Bytes charged and not released.
    #[cfg(test)]
    pub fn charged(&self) -> u64 {
        self.charged
    }

    /// The most ever charged at once.
    #[cfg(test)]
    pub fn peak(&self) -> u64 {
        self.peak
    }

    /// Charges `bytes`, or refuses (charging nothing) if that would pass the limit.
    pub fn charge(&mut self, bytes: u64) -> Result<(), OverBudget> {
        let total = self.charged.saturating_add(bytes);
        if total > self.limit {
            return Err(OverBudget {
                needed: total,
                limit: self.limit,
            });
        }
        self.charged = total;
        self.peak = self.peak.max(total);
        Ok(())
    }

    /// Gives back `bytes` charged before, once they are freed.
    pub fn release(&mut self, bytes: u64) {
        self.charged = self.charged.saturating_sub(bytes);
    }

    /// Validates decoded entries as a listing, charging the collision check's
    /// transient memory while it runs.
    fn checked_listing(&mut self, entries: Vec<Entry>) -> Result<Listing, IndexError> {
        let transient = entries
            .iter()
            .map(|e| {
                let path = e.path.as_str();
                cost::fold_check(path.len() as u64, path.is_ascii())
            })
            .fold(0u64, u64::saturating_add);
        self.charge(transient)?;
        let listing = Listing::from_sorted(entries);
        self.release(transient);
        Ok(listing?)
    }
}

fn encode_entry(w: &mut Writer, entry: &Entry) {
    w.u8(entry.kind.code());
    w.u16(entry.mode as u16);
    let path = entry.path.as_str().as_bytes();
    w.u16(path.len() as u16);
    w.bytes(path);
    match &entry.kind {
        EntryKind::File { size, sha256 } => {
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

/// Reads a `u16` length and that many bytes of UTF-8 text.
fn text<'a>(
    r: &mut Reader<'a>,
    len_field: &'static str,
    field: &'static str,
    what: &str,
) -> Result<&'a str, TreeFormatError> {
    let len = usize::from(r.u16(len_field).map_err(truncated)?);
    let bytes = r.bytes(len, field).map_err(truncated)?;
    std::str::from_utf8(bytes).map_err(|_| malformed(format!("a {what} is not UTF-8")))
}

/// Decodes one entry, charging `budget` for its path's and link target's memory before
/// they are copied out of the index.
fn decode_entry(r: &mut Reader<'_>, budget: &mut MemoryBudget) -> Result<Entry, IndexError> {
    let code = r.u8("kind").map_err(truncated)?;
    let mode = u32::from(r.u16("mode").map_err(truncated)?);
    let path = text(r, "path_len", "path", "path")?;
    budget.charge(cost::heap(path.len() as u64))?;
    let path = TreePath::new(path).map_err(TreeFormatError::from)?;
    let kind = match code {
        1 => EntryKind::File {
            size: r.u64("size").map_err(truncated)?,
            sha256: Sha256Digest(r.array::<32>("sha256").map_err(truncated)?),
        },
        2 => EntryKind::Dir,
        3 => {
            let target = text(r, "target_len", "target", "link target")?;
            budget.charge(cost::heap(target.len() as u64))?;
            EntryKind::Symlink {
                target: target.to_string(),
            }
        }
        _ => return Err(malformed(format!("entry {path} has unknown kind {code}")).into()),
    };
    Ok(Entry { path, mode, kind })
}

impl fmt::Display for Entry {
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

/// Memory a tree patch's header declares per index byte for the decoded index
/// (`apply_memory` is at least the largest blob's figure plus this many bytes per
/// index byte). It does not bound the decoded index: a directory entry with a short
/// name costs 30 to 40 bytes per index byte, so the applier does not rely on it and
/// charges what it decodes against its own limit instead (tree-v1 §4.3).
pub const INDEX_MEMORY_FACTOR: u64 = 4;

impl TreeIndex {
    /// The identity of the empty tree, which a full tree image applies to.
    pub fn empty_id() -> FileId {
        Listing::default().id()
    }

    /// Assembles an unsigned tree patch header and payload from an index whose blob
    /// table is still empty and the blobs (patch-v1 containers, in recipe order). The
    /// producer signs the header and writes `header.encode()` then the payload.
    pub fn assemble(mut self, blobs: &[Vec<u8>]) -> (Header, Vec<u8>) {
        let blob_table = 40 * blobs.len() as u64;
        let index_len = self.encode().len() as u64 + blob_table;
        let offsets = TreeIndex::payload_offsets(index_len, blobs.iter().map(|b| b.len() as u64));
        self.blobs = blobs
            .iter()
            .zip(offsets)
            .map(|(b, offset)| Blob {
                offset,
                len: b.len() as u64,
                sha256: Sha256Digest::of(b),
            })
            .collect();
        let index = self.encode();
        debug_assert_eq!(index.len() as u64, index_len);
        let mut payload =
            Vec::with_capacity(8 + index.len() + blobs.iter().map(Vec::len).sum::<usize>());
        payload.extend_from_slice(&index_len.to_le_bytes());
        payload.extend_from_slice(&index);
        let mut window_log = MIN_WINDOW_LOG;
        let mut blob_memory = BASE_APPLY_MEMORY;
        for b in blobs {
            if let Ok(h) = Header::decode(&b[..HEADER_LEN.min(b.len())], b.len() as u64) {
                window_log = window_log.max(h.window_log);
                blob_memory = blob_memory.max(h.apply_memory);
            }
            payload.extend_from_slice(b);
        }
        let old = self.old.id();
        let source = (old != TreeIndex::empty_id()).then_some(old);
        let mut header = Header::unsigned(
            Method::Tree,
            window_log,
            source,
            self.new.id(),
            FileId {
                size: payload.len() as u64,
                sha256: Sha256Digest::of(&payload),
            },
            None,
        );
        header.apply_memory = blob_memory + index_len * INDEX_MEMORY_FACTOR;
        (header, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &[u8], mode: u32) -> Entry {
        Entry {
            path: TreePath::new(path).unwrap(),
            mode,
            kind: EntryKind::File {
                size: content.len() as u64,
                sha256: Sha256Digest::of(content),
            },
        }
    }
    fn dir(path: &str) -> Entry {
        Entry {
            path: TreePath::new(path).unwrap(),
            mode: 0o755,
            kind: EntryKind::Dir,
        }
    }
    fn link(path: &str, target: &str) -> Entry {
        Entry {
            path: TreePath::new(path).unwrap(),
            mode: 0,
            kind: EntryKind::Symlink {
                target: target.into(),
            },
        }
    }

    #[test]
    fn index_round_trips_and_digest_is_order_free() {
        let old = Listing::new(vec![
            file("a", b"one", 0o644),
            dir("bin"),
            file("bin/tool", b"tool v1", 0o755),
        ])
        .unwrap();
        let new = Listing::new(vec![
            link("tool", "bin/tool"),
            dir("bin"),
            file("bin/tool", b"tool v2", 0o755),
            file("b", b"one", 0o644),
            dir("empty"),
            file("c", b"fresh", 0o600),
        ])
        .unwrap();
        let shuffled = Listing::new(new.entries().iter().rev().cloned().collect()).unwrap();
        assert_eq!(shuffled.id(), new.id());
        assert_ne!(old.id(), new.id());
        let recipes = new
            .entries()
            .iter()
            .map(|e| match e.path.as_str() {
                "b" => Some(Recipe::Copy { from: 0 }),
                "bin/tool" => Some(Recipe::Patch { from: 2, blob: 0 }),
                "c" => Some(Recipe::Full { blob: 1 }),
                _ => None,
            })
            .collect();
        let mut index = TreeIndex {
            old,
            new,
            recipes,
            blobs: vec![],
        };
        let index_len = index.encode().len() as u64 + 2 * 40;
        let offsets = TreeIndex::payload_offsets(index_len, [10, 20]);
        index.blobs = vec![
            Blob {
                offset: offsets[0],
                len: 10,
                sha256: Sha256Digest([1; 32]),
            },
            Blob {
                offset: offsets[1],
                len: 20,
                sha256: Sha256Digest([2; 32]),
            },
        ];
        let bytes = index.encode();
        assert_eq!(bytes.len() as u64, index_len);
        assert_eq!(TreeIndex::decode(&bytes, 30).unwrap(), index);
        assert!(TreeIndex::decode(&bytes, 31).is_err());
        for cut in 0..bytes.len() {
            assert!(
                TreeIndex::decode(&bytes[..cut], 30).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn refuses_bad_listings() {
        let bad = |entries: Vec<Entry>| Listing::new(entries).unwrap_err().to_string();
        assert!(bad(vec![file("a/b", b"", 0o644)]).contains("no directory entry"));
        assert!(bad(vec![file("a", b"", 0o644), file("A", b"", 0o644)]).contains("case"));
        assert!(bad(vec![file("a", b"", 0o644), file("a", b"x", 0o644)]).contains("twice"));
        assert!(bad(vec![file("a", b"", 0o4755)]).contains("mode"));
        assert!(bad(vec![link("l", "../x")]).contains("out of the tree"));
        assert!(bad(vec![dir("d"), link("d/l", "../../x")]).contains("out of the tree"));
        assert!(bad(vec![link("l", "/etc/passwd")]).contains("absolute"));
        assert!(
            bad(vec![link("a", "."), link("b", "a/../../x")]).contains("another symbolic link")
        );
        assert!(bad(vec![link("l", "x"), file("l/f", b"", 0o644)]).contains("directory"));
        // Links inside the tree are fine, dangling or not.
        Listing::new(vec![dir("d"), link("d/l", "../x"), link("up", "d/./l")]).unwrap();
    }

    /// An index of `dirs` directories with the shortest distinct names (`0`-`9`,
    /// `a`-`z`, then two characters), in the new listing of a full tree image.
    fn directories_index(dirs: usize) -> Vec<u8> {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut names: Vec<String> = ALPHABET.iter().map(|&c| (c as char).to_string()).collect();
        for &a in ALPHABET {
            for &b in ALPHABET {
                names.push(format!("{}{}", a as char, b as char));
            }
        }
        names.truncate(dirs);
        names.sort();
        let mut w = Writer::with_capacity(24 + 8 * dirs);
        w.u64(0);
        w.u64(dirs as u64);
        w.u64(0);
        for name in &names {
            encode_entry(&mut w, &dir(name));
        }
        w.into_vec()
    }

    #[test]
    fn the_budget_refuses_before_memory_is_reserved() {
        // 100,000 new entries fit in 600,000 bytes (I2), so the counts pass; the
        // entries are zeros, which would be refused as an empty path if decoded. The
        // budget refuses first: before the vectors are reserved, before any entry.
        let mut w = Writer::with_capacity(600_024);
        w.u64(0);
        w.u64(100_000);
        w.u64(0);
        w.zeros(600_000);
        let bytes = w.into_vec();
        let mut budget = MemoryBudget::new(1 << 20);
        let err = TreeIndex::decode_within(&bytes, 0, &mut budget).unwrap_err();
        let IndexError::Memory(over) = err else {
            panic!("expected the budget to refuse, got {err:?}");
        };
        assert_eq!(over.limit, 1 << 20);
        assert!(
            over.needed >= 100_000 * (cost::ENTRY + cost::RECIPE),
            "{over:?}"
        );
        assert_eq!(
            budget.charged(),
            cost::SCRATCH,
            "the refused charge was not made"
        );
        // With room, the same bytes are decoded, and refused for what they hold.
        let err = TreeIndex::decode_within(&bytes, 0, &mut MemoryBudget::unlimited());
        assert!(
            matches!(err, Err(IndexError::Format(TreeFormatError::Path(_)))),
            "{err:?}"
        );
    }

    #[test]
    fn the_budget_is_charged_entry_by_entry() {
        let bytes = directories_index(1000);
        let mut budget = MemoryBudget::unlimited();
        let index = TreeIndex::decode_within(&bytes, 0, &mut budget).unwrap();
        assert_eq!(index.new.entries().len(), 1000);
        let peak = budget.peak();
        // What stays charged is at least what the index holds.
        let held: u64 = index
            .new
            .entries()
            .iter()
            .map(|e| std::mem::size_of::<Entry>() as u64 + e.path.as_str().len() as u64)
            .sum::<u64>()
            + index.recipes.capacity() as u64 * std::mem::size_of::<Option<Recipe>>() as u64;
        assert!(budget.charged() >= held, "{} < {held}", budget.charged());
        // A short directory name is 6 to 7 bytes of index and over a hundred in
        // memory at the peak (the collision check): far above the four bytes per
        // index byte the header declares.
        let per_entry = (peak - cost::SCRATCH) / 1000;
        assert!(per_entry > 20 * 7, "{per_entry} bytes an entry");
        // Exactly the peak is enough; a byte less is refused, part-way through the
        // entries (after the vectors were reserved), not with a garbled index.
        let mut budget = MemoryBudget::new(peak);
        TreeIndex::decode_within(&bytes, 0, &mut budget).unwrap();
        for limit in [
            peak - 1,
            peak - 5000,
            cost::SCRATCH + 1000 * (cost::ENTRY + cost::RECIPE) + 100,
        ] {
            let mut budget = MemoryBudget::new(limit);
            let err = TreeIndex::decode_within(&bytes, 0, &mut budget).unwrap_err();
            assert!(
                matches!(err, IndexError::Memory(OverBudget { needed, limit: l }) if needed > l && l == limit),
                "{err:?}"
            );
            assert!(budget.peak() <= limit);
        }
    }

    #[test]
    fn refuses_absurd_counts_before_allocating() {
        let mut w = Writer::with_capacity(24);
        w.u64(MAX_ENTRIES + 1);
        w.u64(0);
        w.u64(0);
        let err = TreeIndex::decode(w.as_slice(), 0).unwrap_err();
        assert!(
            matches!(err, TreeFormatError::TooManyEntries { .. }),
            "{err}"
        );
        let mut w = Writer::with_capacity(24);
        w.u64(0);
        w.u64(500_000);
        w.u64(0);
        let err = TreeIndex::decode(w.as_slice(), 0).unwrap_err();
        assert!(err.to_string().contains("cannot fit"), "{err}");
    }
}
