//! Patches in the formats the field already runs, applied with the same discipline as
//! our own container (`format-spec/foreign.md`): BSDIFF40 from bsdiff 4.x or qbsdiff,
//! zstd frames from `zstd --patch-from`, and VCDIFF from xdelta3 (without secondary
//! compression). [`Format::detect`] tells them (and our container) apart by their
//! first bytes.
//!
//! A foreign patch names neither the old file it was made from nor a digest of the
//! file it makes, so the caller says what the result must be ([`Check`]): its SHA-256,
//! or an explicit [`Check::Unverified`]. The result is written as everything here is:
//! under the destination's [`TargetLock`], into a temporary file beside it, checked,
//! synced and renamed; on any failure the destination is untouched and the temporary
//! file removed. Memory is bounded before anything is decoded, against the caller's
//! limit: BSDIFF40 streams over the old file (three bzip2 decoders, whose block size
//! each stream's header gives), a zstd frame holds the old file plus the window its
//! header declares, VCDIFF its largest window's target and sections.

mod bsdiff40;
mod vcdiff;
mod zstd_frame;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::apply::{Progress, Sink, read_at};
use crate::bsdiff40::Bsdiff40Error;
use crate::container::FileId;
use crate::lock::{LockError, TargetLock};
use crate::stage::{Staged, inherit_permissions};
use crate::vcdiff::VcdiffError;
use crate::zstd_frame::FrameError;
use crate::{Error, ErrorKind};
use deltaapply_format::Sha256Digest;

/// How many first bytes [`Format::detect`] needs (fewer are enough for the shorter
/// magics).
pub const DETECT_LEN: usize = 8;

/// A patch format, as recognised by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// deltapack's own container (`format-spec/patch-v1.md`): apply it with
    /// [`crate::apply_file`], which checks its signature and digests.
    Deltapack,
    /// bsdiff 4.x: "BSDIFF40", three bzip2 streams.
    Bsdiff40,
    /// A zstd frame, as `zstd --patch-from=OLD` writes it.
    ZstdFrame,
    /// VCDIFF (RFC 3284): bytes `D6 C3 C4` and a version byte.
    Vcdiff,
}

impl Format {
    /// The format `head` (a patch file's first bytes, [`DETECT_LEN`] of them if the
    /// file has that many) is in, if it is one of these.
    pub fn detect(head: &[u8]) -> Option<Format> {
        if head.starts_with(&crate::container::MAGIC) {
            Some(Format::Deltapack)
        } else if head.starts_with(&crate::bsdiff40::MAGIC) {
            Some(Format::Bsdiff40)
        } else if head.starts_with(&crate::zstd_frame::MAGIC)
            || crate::zstd_frame::is_skippable(head)
        {
            // A skippable frame is a zstd file too: its decoder refuses it, by name.
            Some(Format::ZstdFrame)
        } else if head.len() >= 4 && head[..3] == [0xD6, 0xC3, 0xC4] {
            Some(Format::Vcdiff)
        } else {
            None
        }
    }

    /// The format's name, as messages and `--json` show it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Deltapack => "deltapack",
            Format::Bsdiff40 => "BSDIFF40",
            Format::ZstdFrame => "zstd frame",
            Format::Vcdiff => "VCDIFF",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the result of a foreign patch is checked against before it is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The result must have this SHA-256; otherwise nothing is installed.
    Sha256(Sha256Digest),
    /// Install whatever the patch produces. The patch carries no digest, so nothing
    /// says the result is the intended file: callers should tell their user so.
    Unverified,
}

/// A foreign patch to apply.
#[derive(Debug, Clone, Copy)]
pub struct ForeignApply<'a> {
    /// The file the patch was made from.
    pub old: &'a Path,
    /// The patch file.
    pub patch: &'a Path,
    /// Where to write the result (may be `old`: updated in place, atomically).
    pub dest: &'a Path,
    /// What the result must be.
    pub check: Check,
    /// The result's size, if known: refused early if the patch declares another, and
    /// the bound on a zstd frame that declares none.
    pub expected_size: Option<u64>,
    /// The most memory applying may take (the decoders' declared needs are checked
    /// against it before anything is decoded).
    pub max_memory: u64,
}

/// What a successful foreign apply did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ForeignReport {
    /// The patch's format.
    pub format: Format,
    /// The file written.
    pub target: FileId,
    /// Where it was written.
    pub dest: PathBuf,
    /// Whether its SHA-256 was checked against the caller's ([`Check::Sha256`]).
    pub verified: bool,
    /// The memory bound that was checked against the caller's limit.
    pub apply_memory: u64,
}

/// A foreign patch's header, for `inspect`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "format", rename_all = "kebab-case")]
pub enum Described {
    /// A BSDIFF40 header and the memory its streams need to decode.
    Bsdiff40 {
        /// The header.
        header: crate::bsdiff40::Header,
        /// Memory applying needs, from the streams' bzip2 block sizes.
        apply_memory: u64,
    },
    /// A zstd frame header.
    ZstdFrame {
        /// The header.
        header: crate::zstd_frame::FrameHeader,
    },
    /// A VCDIFF file header and its windows.
    Vcdiff {
        /// The file header.
        header: crate::vcdiff::FileHeader,
        /// How many windows the patch has.
        window_count: u64,
        /// The size of the file it makes.
        target_size: u64,
        /// Memory applying needs: the largest window's target and sections (stored and
        /// uncompressed) and the LZMA decoders.
        apply_memory: u64,
        /// The first windows' headers (at most 1000).
        windows: Vec<crate::vcdiff::WindowHeader>,
    },
}

/// Reads and validates the header of the foreign patch at `path` (nothing is
/// decoded).
pub fn describe(path: &Path) -> Result<Described, ForeignError> {
    let patch = PatchFile::open(path)?;
    match patch.format()? {
        Format::Bsdiff40 => {
            let header = bsdiff40::header(&patch)?;
            let apply_memory = bsdiff40::memory(&patch, &header)?;
            Ok(Described::Bsdiff40 {
                header,
                apply_memory,
            })
        }
        Format::ZstdFrame => Ok(Described::ZstdFrame {
            header: zstd_frame::header(&patch)?,
        }),
        Format::Vcdiff => {
            let plan = vcdiff::plan(&patch, None, true)?;
            Ok(Described::Vcdiff {
                header: plan.header,
                window_count: plan.windows,
                target_size: plan.target_size,
                apply_memory: plan.memory,
                windows: plan.listed,
            })
        }
        Format::Deltapack => Err(ForeignError::NotForeign { path: patch.path }),
    }
}

/// Applies a foreign patch (see the module documentation). Holds `dest`'s
/// [`TargetLock`] while it runs.
pub fn apply_foreign(
    req: &ForeignApply<'_>,
    progress: &mut dyn FnMut(Progress),
) -> Result<ForeignReport, ForeignError> {
    let _lock = TargetLock::acquire(req.dest)?;
    let patch = PatchFile::open(req.patch)?;
    let format = patch.format()?;
    let old = OldFile::open(req.old)?;
    let decoder = match format {
        Format::Bsdiff40 => Decoder::Bsdiff40(bsdiff40::plan(&patch)?),
        Format::ZstdFrame => Decoder::ZstdFrame(zstd_frame::plan(&patch, old.size)?),
        Format::Vcdiff => Decoder::Vcdiff(vcdiff::plan(&patch, Some(old.size), false)?),
        Format::Deltapack => return Err(ForeignError::NotForeign { path: patch.path }),
    };
    let (declared, apply_memory) = match &decoder {
        Decoder::Bsdiff40(p) => (Some(p.header.new_size), p.memory),
        Decoder::ZstdFrame(p) => (p.header.content_size, p.memory),
        Decoder::Vcdiff(p) => (Some(p.target_size), p.memory),
    };
    let target_size = match (declared, req.expected_size) {
        (Some(d), Some(e)) if d != e => {
            return Err(ForeignError::SizeMismatch {
                path: patch.path,
                declared: d,
                expected: e,
            });
        }
        (Some(size), _) | (None, Some(size)) => size,
        (None, None) => return Err(ForeignError::UnknownSize { path: patch.path }),
    };
    if apply_memory > req.max_memory {
        return Err(ForeignError::MemoryLimit {
            path: patch.path,
            format,
            needed: apply_memory,
            limit: req.max_memory,
        });
    }

    let staged = Staged::beside(req.dest, inherit_permissions(req.dest, Some(req.old)))?;
    // No free-space preflight: the size is the unsigned header's word, and a wrong one
    // must be reported as a bad patch (a full disk still fails the write, cleanly).
    let mut sink = Sink::new(&staged, target_size, progress);
    match &decoder {
        Decoder::Bsdiff40(p) => bsdiff40::decode(&patch, p, &old, &mut sink)?,
        Decoder::ZstdFrame(p) => zstd_frame::decode(&patch, p, &old, target_size, &mut sink)?,
        Decoder::Vcdiff(p) => vcdiff::decode(&patch, p, &old, &mut sink)?,
    }
    let (size, sha256) = sink.finish()?;
    if size != target_size {
        return Err(patch.corrupt(format!(
            "it produces {size} bytes, the {} size is {target_size}",
            if declared.is_some() {
                "declared"
            } else {
                "expected"
            }
        )));
    }
    if let Check::Sha256(expected) = req.check
        && sha256 != expected
    {
        return Err(ForeignError::Mismatch {
            path: patch.path,
            expected,
            got_size: size,
            got: sha256,
        });
    }
    staged.commit()?;
    Ok(ForeignReport {
        format,
        target: FileId { size, sha256 },
        dest: req.dest.to_path_buf(),
        verified: matches!(req.check, Check::Sha256(_)),
        apply_memory,
    })
}

/// A planned decoder: the header read, the memory it needs known.
enum Decoder {
    Bsdiff40(bsdiff40::Plan),
    ZstdFrame(zstd_frame::Plan),
    Vcdiff(vcdiff::Plan),
}

/// The patch file, opened once and read through that handle with positioned reads.
struct PatchFile {
    path: PathBuf,
    file: File,
    len: u64,
}

impl PatchFile {
    fn open(path: &Path) -> Result<PatchFile, ForeignError> {
        let io_err = |source| ForeignError::PatchIo {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        Ok(PatchFile {
            path: path.to_path_buf(),
            file,
            len,
        })
    }

    /// Up to `n` bytes from `offset` (fewer only at the end of the file).
    fn head(&self, offset: u64, n: usize) -> Result<Vec<u8>, ForeignError> {
        let n = n.min(usize::try_from(self.len.saturating_sub(offset)).unwrap_or(n));
        let mut buf = vec![0u8; n];
        let mut filled = 0;
        while filled < n {
            match read_at(&self.file, &mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(k) => filled += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(self.io(source)),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    fn format(&self) -> Result<Format, ForeignError> {
        Format::detect(&self.head(0, DETECT_LEN)?).ok_or_else(|| ForeignError::Unrecognised {
            path: self.path.clone(),
        })
    }

    fn io(&self, source: io::Error) -> ForeignError {
        ForeignError::PatchIo {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, problem: impl Into<String>) -> ForeignError {
        ForeignError::Corrupt {
            path: self.path.clone(),
            problem: problem.into(),
        }
    }
}

/// The old file, opened once; its size as it was when opened.
struct OldFile {
    path: PathBuf,
    file: File,
    size: u64,
}

impl OldFile {
    fn open(path: &Path) -> Result<OldFile, ForeignError> {
        let io_err = |source| ForeignError::SourceIo {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        Ok(OldFile {
            path: path.to_path_buf(),
            file,
            size,
        })
    }

    fn io(&self, source: io::Error) -> ForeignError {
        ForeignError::SourceIo {
            path: self.path.clone(),
            source,
        }
    }
}

/// Why a foreign patch was not applied. In every case the destination is untouched.
#[derive(Debug, thiserror::Error)]
pub enum ForeignError {
    /// Another applier holds the destination, or its lock cannot be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Staging or writing the result failed.
    #[error(transparent)]
    Output(#[from] Error),
    /// The patch file cannot be read.
    #[error("cannot read patch {}", path.display())]
    PatchIo {
        /// The patch file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The old file cannot be read.
    #[error("cannot read old file {}", path.display())]
    SourceIo {
        /// The old file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file's first bytes are no known format's magic.
    #[error(
        "{} is not a patch in a format this applier knows (deltapack, BSDIFF40, zstd frame, \
         VCDIFF): its first bytes match none of their magic numbers",
        path.display()
    )]
    Unrecognised {
        /// The patch file.
        path: PathBuf,
    },
    /// A deltapack patch was given to the foreign applier.
    #[error("{} is a deltapack patch, not a foreign one: apply it as such", path.display())]
    NotForeign {
        /// The patch file.
        path: PathBuf,
    },
    /// A format recognised but not decoded by this applier.
    #[error("{} is a {format} patch, which this applier cannot apply yet", path.display())]
    Unsupported {
        /// The patch file.
        path: PathBuf,
        /// Its format.
        format: Format,
    },
    /// The BSDIFF40 header or a control record is invalid.
    #[error("{} is not a valid BSDIFF40 patch", path.display())]
    Bsdiff40 {
        /// The patch file.
        path: PathBuf,
        /// What is wrong, naming the field.
        #[source]
        source: Bsdiff40Error,
    },
    /// The zstd frame header is invalid.
    #[error("{} is not a valid zstd frame", path.display())]
    ZstdFrame {
        /// The patch file.
        path: PathBuf,
        /// What is wrong, naming the field.
        #[source]
        source: FrameError,
    },
    /// A VCDIFF header, window or instruction is invalid.
    #[error("{} is not a valid VCDIFF patch", path.display())]
    Vcdiff {
        /// The patch file.
        path: PathBuf,
        /// What is wrong, naming the window and the field.
        #[source]
        source: VcdiffError,
    },
    /// A stream does not decode, or decodes to the wrong amount.
    #[error("patch {} is corrupt: {problem}", path.display())]
    Corrupt {
        /// The patch file.
        path: PathBuf,
        /// What went wrong, naming the stream.
        problem: String,
    },
    /// Applying would need more memory than the caller allows.
    #[error(
        "applying {} ({format}) needs up to {needed} bytes of memory, above the limit of \
         {limit}; raise the limit if this machine has the memory",
        path.display()
    )]
    MemoryLimit {
        /// The patch file.
        path: PathBuf,
        /// Its format.
        format: Format,
        /// What its header says decoding needs.
        needed: u64,
        /// The caller's limit.
        limit: u64,
    },
    /// The patch declares a result size other than the expected one.
    #[error(
        "{} makes a {declared}-byte file, but a {expected}-byte file is expected; nothing was written",
        path.display()
    )]
    SizeMismatch {
        /// The patch file.
        path: PathBuf,
        /// The size the patch declares.
        declared: u64,
        /// The size the caller expects.
        expected: u64,
    },
    /// A zstd frame that does not declare its content size, and no expected size.
    #[error(
        "{} does not declare the size of the file it makes, and no expected size was given \
         to bound it",
        path.display()
    )]
    UnknownSize {
        /// The patch file.
        path: PathBuf,
    },
    /// The result does not have the expected SHA-256. Nothing was installed.
    #[error(
        "applying {} produced {got_size} bytes with sha256 {got}, expected sha256 {expected}; \
         nothing was written (the old file may not be the one the patch was made from)",
        path.display()
    )]
    Mismatch {
        /// The patch file.
        path: PathBuf,
        /// The SHA-256 the caller expects.
        expected: Sha256Digest,
        /// Bytes produced.
        got_size: u64,
        /// Their SHA-256.
        got: Sha256Digest,
    },
}

impl ForeignError {
    /// What kind of failure this is ([`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            ForeignError::Lock(e) => e.kind(),
            ForeignError::Output(e) => e.kind(),
            ForeignError::PatchIo { .. } | ForeignError::SourceIo { .. } => ErrorKind::Failure,
            ForeignError::NotForeign { .. } | ForeignError::UnknownSize { .. } => ErrorKind::Usage,
            ForeignError::MemoryLimit { .. } => ErrorKind::Limit,
            ForeignError::Unrecognised { .. }
            | ForeignError::Unsupported { .. }
            | ForeignError::Bsdiff40 { .. }
            | ForeignError::ZstdFrame { .. }
            | ForeignError::Vcdiff { .. }
            | ForeignError::Corrupt { .. }
            | ForeignError::SizeMismatch { .. }
            | ForeignError::Mismatch { .. } => ErrorKind::BadInput,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_apart_by_their_magic() {
        let cases: [(&[u8], Option<Format>); 8] = [
            (b"\x89DPATCH\n\x01\x00", Some(Format::Deltapack)),
            (b"BSDIFF40\0\0", Some(Format::Bsdiff40)),
            (&[0x28, 0xB5, 0x2F, 0xFD, 0x04], Some(Format::ZstdFrame)),
            (
                &[0x50, 0x2A, 0x4D, 0x18, 0, 0, 0, 0],
                Some(Format::ZstdFrame),
            ),
            (&[0xD6, 0xC3, 0xC4, 0x00, 0x00], Some(Format::Vcdiff)),
            (&[0xD6, 0xC3, 0xC4], None),
            (b"BSDIFF4", None),
            (b"", None),
        ];
        for (head, want) in cases {
            assert_eq!(Format::detect(head), want, "{head:02x?}");
        }
    }
}
