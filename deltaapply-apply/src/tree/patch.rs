//! Opening a tree patch (and assembling one, for the producer): the patch-v1 header
//! of a tree patch ([`TreeHeader`]), then the payload `index_len | index | blobs`
//! (`format-spec/tree-v1.md` §2).
//!
//! [`TreePatch::open`] checks, in order and before anything is written: the header,
//! its origin against the trusted keys, its memory figure against the caller's limit,
//! the whole payload's SHA-256, the index (paths, links, counts, recipes) and that the
//! trees it lists are the ones the header names. Each blob is hashed again when it is
//! opened, so a file changed after opening is caught.
//!
//! Everything is read through the one handle the header was read from: the index is
//! kept from the very pass that hashes the payload (it is decoded from the bytes that
//! were hashed, not read again), and the blobs are read through that handle, so a
//! patch renamed over the path after opening changes nothing. The index is decoded
//! within the caller's memory limit, charged entry by entry as it is decoded
//! ([`crate::tree::format`]'s memory budget), whatever the header declares.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::apply::{AnyPatch, Limits, Patch, Progress};
use crate::codec::Reader;
use crate::container::{FileId, HEADER_LEN, TreeHeader};
use crate::digest::hash_reader;
use crate::key::TrustedKeys;
use crate::signature::Origin;
use crate::tree::format::{IndexError, MAX_INDEX_LEN, MemoryBudget, OverBudget, TreeIndex, cost};
use crate::{Error, Method};

pub use crate::tree::format::INDEX_MEMORY_FACTOR;

/// An opened, verified tree patch.
#[derive(Debug)]
pub struct TreePatch {
    path: PathBuf,
    file: File,
    header: TreeHeader,
    index: TreeIndex,
    origin: Origin,
}

impl TreePatch {
    /// Opens and verifies the tree patch at `path` (see the module documentation).
    pub fn open(
        path: &Path,
        limits: &Limits,
        trusted: Option<&TrustedKeys>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<TreePatch, Error> {
        let patch = match AnyPatch::open(path)? {
            AnyPatch::Tree(patch) => patch,
            AnyPatch::File(patch) => {
                return Err(Error::NotTreePatch {
                    path: path.to_path_buf(),
                    method: patch.header().method(),
                });
            }
        };
        let header = patch.header().clone();
        let origin = patch.check_origin(trusted)?;
        if header.apply_memory > limits.max_apply_memory {
            return Err(Error::MemoryLimit {
                path: path.to_path_buf(),
                needed: header.apply_memory,
                limit: limits.max_apply_memory,
            });
        }
        let corrupt = |problem: String| Error::Corrupt {
            path: path.to_path_buf(),
            problem,
        };
        let over = |e: OverBudget| Error::MemoryLimit {
            path: path.to_path_buf(),
            needed: e.needed,
            limit: e.limit,
        };
        // The index is what this charges: the caller's limit, not the header's figure,
        // bounds it (T8).
        let mut budget = MemoryBudget::new(limits.max_apply_memory);
        let mut capture = IndexCapture::new(&header, &mut budget);
        patch.verify_sections(progress, &mut |chunk| capture.feed(chunk))?;
        let (index_len, bytes) = capture.finish().map_err(|e| match e {
            Refusal::Corrupt(problem) => corrupt(problem),
            Refusal::Memory(e) => over(e),
        })?;
        let room = header.payload.size - 8;
        let decoded = TreeIndex::decode_within(&bytes, room - index_len, &mut budget);
        drop(bytes);
        budget.release(cost::heap(index_len));
        let index = decoded.map_err(|e| match e {
            IndexError::Format(source) => Error::TreeFormat {
                path: path.to_path_buf(),
                source,
            },
            IndexError::Memory(e) => over(e),
        })?;
        let old_id = index.old.id();
        let expected_old = header.source().unwrap_or(TreeIndex::empty_id());
        if old_id != expected_old {
            return Err(corrupt(format!(
                "its index lists an old tree {} that is not the header's {}",
                old_id.sha256, expected_old.sha256
            )));
        }
        if index.new.id() != header.target {
            return Err(corrupt(format!(
                "its index lists a new tree {} that is not the header's {}",
                index.new.id().sha256,
                header.target.sha256
            )));
        }
        Ok(TreePatch {
            path: path.to_path_buf(),
            file: patch.into_file(),
            header,
            index,
            origin,
        })
    }

    /// The patch file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its validated header.
    pub fn header(&self) -> &TreeHeader {
        &self.header
    }

    /// Its validated index.
    pub fn index(&self) -> &TreeIndex {
        &self.index
    }

    /// Who signed it, as far as the trusted keys given could tell.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// Opens blob `k` as a patch-v1 container after checking its bytes against the
    /// index, and checks that its header is what the index needs: method full with
    /// `target`, or a file method from `source` to `target`, within this patch's
    /// memory figure.
    pub fn blob(&self, k: usize, source: Option<FileId>, target: FileId) -> Result<Patch, Error> {
        let blob = self.index.blobs[k];
        let start = HEADER_LEN as u64 + blob.offset;
        let io_err = |source| Error::PatchIo {
            path: self.path.clone(),
            source,
        };
        let corrupt = |problem: String| Error::Corrupt {
            path: self.path.clone(),
            problem: format!("blob {k}: {problem}"),
        };
        let file = self.file.try_clone().map_err(io_err)?;
        let section = crate::apply::Section::new(&file, start, blob.len);
        // The container's header is kept from the pass that hashes it (B1), and
        // decoded from those bytes (B2); its payload is hashed again, and checked again
        // as it is decoded, when it is applied.
        let mut head = Vec::with_capacity(HEADER_LEN);
        let (len, sha256) = hash_reader(section, &mut |chunk| {
            let take = chunk.len().min(HEADER_LEN - head.len());
            head.extend_from_slice(&chunk[..take]);
        })
        .map_err(io_err)?;
        if len != blob.len || sha256 != blob.sha256 {
            return Err(corrupt(format!(
                "its bytes hash to {sha256}, the index says {}",
                blob.sha256
            )));
        }
        let patch = match AnyPatch::with_head(&self.path, file, start, blob.len, &head)? {
            AnyPatch::File(patch) => patch,
            AnyPatch::Tree(_) => {
                return Err(corrupt(
                    "a tree container that does not make the file the index lists".into(),
                ));
            }
        };
        let h = patch.header();
        let expected_method = match source {
            None => h.method() == Method::Full,
            Some(_) => matches!(h.method(), Method::Bsdiff | Method::ZstdRef),
        };
        if !expected_method || h.source() != source || h.target != target {
            return Err(corrupt(format!(
                "a {} container that does not make the file the index lists",
                h.method()
            )));
        }
        if h.apply_memory > self.header.apply_memory {
            return Err(corrupt(format!(
                "needs {} bytes of memory, above the {} the tree patch declares",
                h.apply_memory, self.header.apply_memory
            )));
        }
        Ok(patch)
    }
}

/// Why the payload's index could not be kept.
enum Refusal {
    Corrupt(String),
    Memory(OverBudget),
}

/// Keeps a tree patch's index from the pass that hashes the payload: the 8-byte
/// `index_len`, checked (T5, T6) and charged to the budget before any memory is
/// reserved for the index, then the index's bytes. A refusal is reported by
/// [`IndexCapture::finish`], after the payload hash (T4), which comes first.
struct IndexCapture<'b> {
    payload_size: u64,
    apply_memory: u64,
    budget: &'b mut MemoryBudget,
    prefix: Vec<u8>,
    index_len: u64,
    index: Vec<u8>,
    refused: Option<Refusal>,
}

impl<'b> IndexCapture<'b> {
    fn new(header: &TreeHeader, budget: &'b mut MemoryBudget) -> IndexCapture<'b> {
        IndexCapture {
            payload_size: header.payload.size,
            apply_memory: header.apply_memory,
            budget,
            prefix: Vec::with_capacity(8),
            index_len: 0,
            index: Vec::new(),
            refused: None,
        }
    }

    fn feed(&mut self, mut chunk: &[u8]) {
        if self.refused.is_some() {
            return;
        }
        if self.prefix.len() < 8 {
            let take = chunk.len().min(8 - self.prefix.len());
            self.prefix.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.prefix.len() < 8 {
                return;
            }
            let index_len = Reader::new(&self.prefix)
                .u64("index_len")
                .expect("eight bytes");
            match self.admit(index_len) {
                Ok(()) => {
                    self.index_len = index_len;
                    // Bounded by T5, T6 and the budget, just checked.
                    self.index = Vec::with_capacity(index_len as usize);
                }
                Err(refusal) => {
                    self.refused = Some(refusal);
                    return;
                }
            }
        }
        let left = self.index_len - self.index.len() as u64;
        let take = (chunk.len() as u64).min(left) as usize;
        self.index.extend_from_slice(&chunk[..take]);
    }

    /// T5 and T6, then the budget for the index's bytes.
    fn admit(&mut self, index_len: u64) -> Result<(), Refusal> {
        let room = self.payload_size - 8;
        if index_len > room {
            return Err(Refusal::Corrupt(format!(
                "index of {index_len} bytes does not fit in a payload of {} bytes",
                self.payload_size
            )));
        }
        if index_len > MAX_INDEX_LEN
            || index_len.saturating_mul(INDEX_MEMORY_FACTOR) > self.apply_memory
        {
            return Err(Refusal::Corrupt(format!(
                "index of {index_len} bytes is larger than the header's memory figure \
                 ({} bytes) allows",
                self.apply_memory
            )));
        }
        self.budget
            .charge(cost::heap(index_len))
            .map_err(Refusal::Memory)
    }

    /// The index's length and bytes.
    fn finish(self) -> Result<(u64, Vec<u8>), Refusal> {
        if let Some(refusal) = self.refused {
            return Err(refusal);
        }
        if self.prefix.len() < 8 {
            return Err(Refusal::Corrupt(format!(
                "a payload of {} bytes cannot hold the 8-byte index length",
                self.payload_size
            )));
        }
        // The payload hash passed over exactly `payload_size` bytes, which hold the
        // index (T5): all of it was kept.
        debug_assert_eq!(self.index.len() as u64, self.index_len);
        Ok((self.index_len, self.index))
    }
}
