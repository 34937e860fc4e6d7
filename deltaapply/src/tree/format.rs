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
use crate::container::FileId;
use crate::digest::{Hasher, Sha256Digest};
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
        let mut encoded = Writer::with_capacity(64 * self.entries.len() + 64);
        encoded.u64(self.entries.len() as u64);
        for entry in &self.entries {
            encode_entry(&mut encoded, entry);
        }
        let mut hasher = Hasher::new();
        hasher.update(LISTING_CONTEXT);
        hasher.update(encoded.as_slice());
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
    /// the index, which the blobs must fill exactly.
    pub fn decode(bytes: &[u8], blobs_len: u64) -> Result<TreeIndex, TreeFormatError> {
        let mut r = Reader::new(bytes);
        let old_count = r.u64("old_count").map_err(truncated)?;
        let new_count = r.u64("new_count").map_err(truncated)?;
        let blob_count = r.u64("blob_count").map_err(truncated)?;
        for count in [old_count, new_count] {
            if count > MAX_ENTRIES {
                return Err(TreeFormatError::TooManyEntries { count });
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
            )));
        }
        let mut old = Vec::with_capacity(old_count as usize);
        for _ in 0..old_count {
            old.push(decode_entry(&mut r)?);
        }
        let old = Listing::from_sorted(old)?;
        let mut new = Vec::with_capacity(new_count as usize);
        let mut recipes = Vec::with_capacity(new_count as usize);
        let mut next_blob = 0usize;
        for _ in 0..new_count {
            let entry = decode_entry(&mut r)?;
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
                                )));
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
                            )));
                        }
                    };
                    Some(recipe)
                }
                _ => None,
            };
            new.push(entry);
            recipes.push(recipe);
        }
        let new = Listing::from_sorted(new)?;
        if next_blob as u64 != blob_count {
            return Err(malformed(format!(
                "{blob_count} blobs declared, the recipes use {next_blob}"
            )));
        }
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
            )));
        }
        Ok(TreeIndex {
            old,
            new,
            recipes,
            blobs,
        })
    }
}

/// Running out of index bytes (or having some left over) is a malformed index; the
/// message names the field and its offset in the index.
fn truncated(e: CodecError) -> TreeFormatError {
    malformed(e.to_string())
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

fn decode_entry(r: &mut Reader<'_>) -> Result<Entry, TreeFormatError> {
    let code = r.u8("kind").map_err(truncated)?;
    let mode = u32::from(r.u16("mode").map_err(truncated)?);
    let path = TreePath::new(text(r, "path_len", "path", "path")?)?;
    let kind = match code {
        1 => EntryKind::File {
            size: r.u64("size").map_err(truncated)?,
            sha256: Sha256Digest(r.array::<32>("sha256").map_err(truncated)?),
        },
        2 => EntryKind::Dir,
        3 => EntryKind::Symlink {
            target: text(r, "target_len", "target", "link target")?.to_string(),
        },
        _ => return Err(malformed(format!("entry {path} has unknown kind {code}"))),
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
