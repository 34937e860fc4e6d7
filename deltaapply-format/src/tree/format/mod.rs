//! The tree patch's index and the canonical listing of a release tree
//! (`format-spec/tree-v1.md` §3-§5). A tree patch is a patch-v1 container of kind
//! [`PatchKind::Tree`](crate::method::PatchKind::Tree), with a
//! [`TreeHeader`](crate::container::TreeHeader): its header (signed, checksummed)
//! names the old and new trees by
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

mod budget;
mod index;
mod listing;

use crate::tree::path::{TreeListError, TreePathError};

pub use budget::{MemoryBudget, OverBudget, cost};
pub use index::{Blob, Recipe, TreeIndex};
pub use index::{INDEX_MEMORY_FACTOR, IndexError};
pub use listing::{Entry, EntryKind, Listing};

/// Most entries a listing may have (files, directories and links together). A tree
/// this large would be a firmware image of a million files; anything above is refused
/// before memory is reserved for it.
pub const MAX_ENTRIES: u64 = 1_000_000;

/// Largest index a tree patch may carry.
pub const MAX_INDEX_LEN: u64 = 256 << 20;

/// Permission bits a listing records: read, write and execute for owner, group and
/// others. Set-id and sticky bits are never carried.
pub const MODE_MASK: u32 = 0o777;

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
#[cfg(test)]
mod tests {
    use super::listing::encode_entry;
    use super::*;
    use crate::codec::Writer;
    use crate::digest::Sha256Digest;
    use crate::tree::path::TreePath;

    fn file(path: &str, content: &[u8], mode: u32) -> Entry {
        Entry {
            path: TreePath::new(path).unwrap(),
            mode,
            kind: EntryKind::File {
                size: content.len() as u64,
                sha256: Sha256Digest::of(content),
                recipe: (),
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
        let new = new.with_recipes(|_, e| match e.path.as_str() {
            "b" => Recipe::Copy { from: 0 },
            "bin/tool" => Recipe::Patch { from: 2, blob: 0 },
            "c" => Recipe::Full { blob: 1 },
            other => panic!("{other} is not a file of the new tree"),
        });
        let mut index = TreeIndex {
            old,
            new,
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
            .map(|e| std::mem::size_of::<Entry<Recipe>>() as u64 + e.path.as_str().len() as u64)
            .sum::<u64>();
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
