//! What a decoded index costs in memory, and the budget its decoder charges it to
//! (tree-v1 §4.3).

use super::index::{Blob, IndexError, Recipe};
use super::{Entry, Listing};
use crate::tree::path::TreePath;

/// What the decoded index costs in memory, in bytes, as the decoder charges it to its
/// [`MemoryBudget`]. A decoded index costs far more than its encoding: a directory with
/// a one-byte name is 6 bytes in the index (the smallest entry, `MIN_ENTRY_LEN`) and
/// more than a hundred in memory. The costs are derived from the types' sizes on the
/// target (`size_of`, so they follow the build) and from how a general-purpose
/// allocator rounds a request (glibc's malloc: 8 bytes of header, 16-byte granularity,
/// 32 bytes at least; other allocators are as lean or leaner).
///
/// On x86-64: an entry 80 bytes in its vector, plus 32 or more for its path's
/// allocation; a new entry 24 more for its recipe; a blob 48; and, while a listing is checked for
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

    /// An element of the old listing's vector, reserved at its exact length (the
    /// path's allocation is charged apart, with [`heap`]).
    pub const ENTRY: u64 = size_of::<Entry>() as u64;
    /// What an element of the new listing's vector is charged beyond [`ENTRY`], for
    /// a file's recipe: an optional recipe's size (24 bytes on x86-64), which bounds
    /// what the recipe adds to an entry (16), so that a limit refuses exactly the
    /// indexes it refused when the recipes were a vector of their own.
    pub const RECIPE: u64 = size_of::<Option<Recipe>>() as u64;

    const _: () = assert!(size_of::<Entry<Recipe>>() as u64 <= ENTRY + RECIPE);
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
    pub(super) fn checked_listing<R>(
        &mut self,
        entries: Vec<Entry<R>>,
    ) -> Result<Listing<R>, IndexError> {
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
