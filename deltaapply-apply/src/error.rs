//! The applier's error type. Every variant names the file concerned and carries the
//! values a caller can act on; [`Error::kind`] classifies them ([`ErrorKind`]).

use std::io;
use std::path::PathBuf;

use crate::container::{FileId, FormatError};
use crate::signature::SignatureError;

/// Everything that can go wrong opening or applying a patch.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another applier holds the destination, or its lock cannot be taken.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
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
    /// The patch's signature block fails the origin check: unsigned or signed by an
    /// untrusted key while trusted keys are configured, or a signature that does not
    /// verify (with or without trusted keys). Found before the old file or the payload
    /// is read.
    #[error(
        "patch {} failed its origin check, nothing was written ({})",
        path.display(),
        untrusted_advice(source)
    )]
    Untrusted {
        /// The patch file.
        path: PathBuf,
        /// Why the signature check failed.
        #[source]
        source: SignatureError,
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
        got_sha256: Option<deltaapply_format::Sha256Digest>,
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
         raise the limit if this machine has the memory, or use a patch made for a smaller \
         apply-memory budget",
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
        got_sha256: deltaapply_format::Sha256Digest,
    },
    /// A tree patch was given where a file patch belongs.
    #[error(
        "{} is a tree patch: apply it to a directory (deltaapply apply OLD_DIR PATCH -o NEW_DIR)",
        path.display()
    )]
    TreePatch {
        /// The patch file.
        path: PathBuf,
    },
    /// A file patch was given where a tree patch belongs.
    #[error(
        "{} is a patch of method {method}, not a tree patch: apply it to a file",
        path.display()
    )]
    NotTreePatch {
        /// The patch file.
        path: PathBuf,
        /// Its method.
        method: crate::Method,
    },
    /// A tree patch's index is invalid (a bad path, a link out of the tree, a
    /// collision, an absurd count...). Found before anything is written.
    #[error("{} is not a valid tree patch", path.display())]
    TreeFormat {
        /// The patch file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: crate::tree::TreeFormatError,
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
    /// The caller cancelled the job ([`crate::cancel`]) before the output was
    /// installed: the destination is untouched and the temporary file removed.
    #[error("cancelled by the caller; nothing was installed")]
    Cancelled,
    /// The output's filesystem has no room for it: found before anything was written.
    #[error(
        "no room for the {needed} bytes of the new file beside the target: {free} bytes free \
         for {} (No space left on device)",
        path.display()
    )]
    NoSpace {
        /// The temporary file that would hold the new file.
        path: PathBuf,
        /// The bytes the new file needs.
        needed: u64,
        /// The bytes free on its filesystem.
        free: u64,
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

/// An error and its sources, joined with `: ` on one line (as `{:#}` prints an
/// `anyhow::Error`).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// What kind of failure an error is: what a caller can act on without matching every
/// variant (retry later, ask for another patch, raise a limit, tell the user the
/// origin check failed...). The `deltaapply` binary maps each to its exit code
/// (`deltaapply_cli::exit_code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An I/O error, or anything not listed below.
    Failure,
    /// The request itself is wrong (a tree patch given as a file patch, an artifact
    /// that cannot be chosen).
    Usage,
    /// The patch, or for an update the signed manifest or a file it lists, is invalid
    /// or corrupt, or does not produce its target.
    BadInput,
    /// The old file is not the one the patch was made for.
    WrongSource,
    /// Applying or downloading would exceed a limit the caller set.
    Limit,
    /// An origin check failed: unsigned or signed by an untrusted key while trusted
    /// keys are configured, or a signature that does not verify.
    Untrusted,
    /// A manifest was refused although its signature verifies: a rollback, expired, or
    /// for another product or channel.
    Refused,
    /// No route is allowed: only the full image would do and the policy forbids it.
    NoRoute,
    /// A file could not be downloaded from any mirror.
    Network,
    /// Another applier is updating the same target now.
    Busy,
    /// The caller cancelled the job ([`crate::cancel`]); nothing was installed.
    Cancelled,
}

/// What to do about a failed origin check (the reason itself is the error's source).
fn untrusted_advice(source: &SignatureError) -> &'static str {
    match source {
        SignatureError::Unsigned => "ask the publisher for a signed patch",
        SignatureError::UntrustedPatchKey { .. } => {
            "if you trust its signer, add that public key to the trusted keys; \
             otherwise discard the patch"
        }
        SignatureError::BadPatchSignature { .. } => {
            "it was altered after it was signed: fetch it again from the publisher"
        }
        _ => "check the trusted keys configured",
    }
}

impl Error {
    /// A read error of `path` as `variant` makes it, or [`Error::Cancelled`] when the
    /// read stopped because the job was cancelled ([`crate::cancel::Reader`]).
    pub(crate) fn read(source: io::Error, variant: impl FnOnce(io::Error) -> Error) -> Error {
        if crate::cancel::is_cancelled(&source) {
            Error::Cancelled
        } else {
            variant(source)
        }
    }

    /// What kind of failure this is ([`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Format { .. } | Error::Corrupt { .. } | Error::TargetMismatch { .. } => {
                ErrorKind::BadInput
            }
            Error::WrongSource { .. } | Error::MissingSource { .. } => ErrorKind::WrongSource,
            Error::TreePatch { .. } | Error::NotTreePatch { .. } => ErrorKind::Usage,
            Error::TreeFormat { .. } => ErrorKind::BadInput,
            Error::MemoryLimit { .. } => ErrorKind::Limit,
            Error::Untrusted { .. } => ErrorKind::Untrusted,
            Error::PatchIo { .. }
            | Error::SourceIo { .. }
            | Error::OutputIo { .. }
            | Error::NoSpace { .. } => ErrorKind::Failure,
            Error::Lock(e) => e.kind(),
            Error::Cancelled => ErrorKind::Cancelled,
        }
    }
}
