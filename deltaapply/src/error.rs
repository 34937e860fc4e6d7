//! The applier's error type. Every variant names the file concerned and carries the
//! values a caller can act on; [`Error::exit_code`] maps them to the documented exit codes.

use std::io;
use std::path::PathBuf;

use crate::container::{FileId, FormatError};

/// Everything that can go wrong opening or applying a patch.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The patch file cannot be read.
    #[error("cannot read patch {}", path.display())]
    PatchIo {
        /// The patch file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The patch's header or length is invalid.
    #[error("{} is not a valid patch", path.display())]
    Format {
        /// The patch file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: FormatError,
    },
    /// The payload passed its hash check but does not decode (or decodes to the wrong
    /// size): the producer wrote a bad patch, or the file was forged.
    #[error("patch {} is corrupt: {problem}", path.display())]
    Corrupt {
        /// The patch file.
        path: PathBuf,
        /// What went wrong while decoding.
        problem: String,
    },
    /// The old file is not the one the patch was made from.
    #[error(
        "{} is not the file this patch was made for: the patch expects {} bytes with sha256 {}, \
         the file has {} bytes{}; apply a patch made for this file, or the full image",
        path.display(), expected.size, expected.sha256, got_size,
        got_sha256.map(|h| format!(" with sha256 {h}")).unwrap_or_default()
    )]
    WrongSource {
        /// The old file.
        path: PathBuf,
        /// What the patch expects.
        expected: FileId,
        /// The old file's size.
        got_size: u64,
        /// Its hash, when the size matched and it was computed.
        got_sha256: Option<crate::Sha256Digest>,
    },
    /// The method needs an old file and none was given.
    #[error("patch {} needs the old file it was made from", path.display())]
    MissingSource {
        /// The patch file.
        path: PathBuf,
    },
    /// Applying would need more memory than the caller allows.
    #[error(
        "applying {} needs up to {needed} bytes of memory, above the limit of {limit}; \
         raise the limit (--max-memory) if this machine has the memory, or use a patch made \
         with a smaller --max-apply-memory",
        path.display()
    )]
    MemoryLimit {
        /// The patch file.
        path: PathBuf,
        /// What the header says applying needs.
        needed: u64,
        /// The caller's limit.
        limit: u64,
    },
    /// The bytes produced do not hash to the target digest. Nothing was installed.
    #[error(
        "applying {} produced {got_size} bytes with sha256 {got_sha256}, expected {} bytes with sha256 {}; \
         nothing was written",
        path.display(), expected.size, expected.sha256
    )]
    TargetMismatch {
        /// The patch file.
        path: PathBuf,
        /// What the header promises.
        expected: FileId,
        /// Bytes produced.
        got_size: u64,
        /// Their hash.
        got_sha256: crate::Sha256Digest,
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
    /// The output cannot be written or swapped in.
    #[error("cannot write {}", path.display())]
    OutputIo {
        /// The file being written (the destination, or its temporary file).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Exit codes of the `deltaapply` binary, also useful to installers that embed the library.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// An I/O error, or anything not listed below.
    pub const FAILURE: i32 = 1;
    /// Bad command-line usage.
    pub const USAGE: i32 = 2;
    /// The patch is invalid or corrupt, or does not produce its target.
    pub const BAD_PATCH: i32 = 3;
    /// The old file is not the one the patch was made for.
    pub const WRONG_SOURCE: i32 = 4;
    /// Applying would exceed a resource limit.
    pub const LIMIT: i32 = 5;
    /// A signature is missing, invalid, or by a key that is not trusted.
    pub const UNTRUSTED: i32 = 6;
}

impl Error {
    /// The process exit code the `deltaapply` binary uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Format { .. } | Error::Corrupt { .. } | Error::TargetMismatch { .. } => {
                exit::BAD_PATCH
            }
            Error::WrongSource { .. } | Error::MissingSource { .. } => exit::WRONG_SOURCE,
            Error::MemoryLimit { .. } => exit::LIMIT,
            Error::PatchIo { .. } | Error::SourceIo { .. } | Error::OutputIo { .. } => {
                exit::FAILURE
            }
        }
    }
}
