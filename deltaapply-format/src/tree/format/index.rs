//! The tree patch's index (§4): recipes, blobs, and encoding and decoding the index
//! within a memory budget.

use super::budget::{MemoryBudget, OverBudget, cost};
use super::listing::encode_entry;
use super::{Entry, EntryKind, Listing, MAX_ENTRIES, TreeFormatError, malformed};
use crate::codec::{CodecError, Reader, Writer};
use crate::container::{BASE_APPLY_MEMORY, FileId, HEADER_LEN, Header, MIN_WINDOW_LOG, TreeHeader};
use crate::digest::Sha256Digest;
use crate::tree::path::TreePath;

/// Smallest encoding of one index entry (kind, mode, a one-byte path, no data), used
/// to refuse counts the index cannot hold before reserving memory for them.
const MIN_ENTRY_LEN: u64 = 1 + 2 + 2 + 1;
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
    /// The tree applying produces, each file with its recipe.
    pub new: Listing<Recipe>,
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
        for entry in &self.new.entries {
            encode_entry(&mut w, entry);
            if let EntryKind::File { recipe, .. } = entry.kind {
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
        let mut next_blob = 0usize;
        for _ in 0..new_count {
            let entry = decode_entry(&mut r, budget)?;
            let entry = entry.try_with(|path, file| -> Result<Recipe, IndexError> {
                let code = r.u8("recipe").map_err(truncated)?;
                let mut from = || -> Result<usize, TreeFormatError> {
                    let i = r.u64("from").map_err(truncated)?;
                    match old.entries.get(usize::try_from(i).unwrap_or(usize::MAX)) {
                        Some(Entry {
                            kind: EntryKind::File { .. },
                            ..
                        }) => Ok(i as usize),
                        _ => Err(malformed(format!(
                            "file {path} is made from old entry {i}, which is not a file"
                        ))),
                    }
                };
                Ok(match code {
                    1 => {
                        let from = from()?;
                        if old.entries[from].kind.file() != Some(file) {
                            return Err(malformed(format!(
                                "file {path} is a copy of {}, which has other content",
                                old.entries[from].path
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
                        return Err(
                            malformed(format!("file {path} has unknown recipe {code}")).into()
                        );
                    }
                })
            })?;
            new.push(entry);
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
        Ok(TreeIndex { old, new, blobs })
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
            recipe: (),
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
    pub fn assemble(mut self, blobs: &[Vec<u8>]) -> (TreeHeader, Vec<u8>) {
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
        let payload_id = FileId {
            size: payload.len() as u64,
            sha256: Sha256Digest::of(&payload),
        };
        let header = TreeHeader::tree(
            source,
            window_log,
            self.new.id(),
            payload_id,
            blob_memory + index_len * INDEX_MEMORY_FACTOR,
        );
        (header, payload)
    }
}
