//! `deltaapply` applies deltapack patches. It is the small, embeddable half of the
//! toolchain: the patch format, verification and apply, and no diffing code. This crate
//! is a facade over `deltaapply-format` (the formats, no I/O), `deltaapply-apply`,
//! `deltaapply-fetch` and `deltaapply-update`; depend on it alone.
//!
//! Every patch is checked before it is trusted: the header is validated field by
//! field (with a checksum), its ed25519 signature must be by a key the caller trusts,
//! the old file's size and SHA-256 must match, the payload's SHA-256 must match before
//! any decoder sees it, and the output's SHA-256 must match before it is renamed over
//! the destination. The payload is read through the handle that was hashed, and what the
//! decoders read is hashed again: a patch file replaced or rewritten after its check
//! (or storage that reads differently the second time) cannot get unverified bytes into
//! the output. On any failure the destination is untouched and no temporary file
//! remains. One applier at a time holds a destination ([`lock::TargetLock`]), and it
//! removes the temporary files a killed applier of that destination left.
//!
//! ```no_run
//! use deltaapply::{apply_file, Limits, PublicKey, TrustedKeys};
//! use std::path::Path;
//!
//! // The publisher's key, as `deltapack keygen` prints it (an installer embeds it).
//! let key = PublicKey::parse(
//!     "ed25519:3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
//! )
//! .expect("a valid key");
//! let report = apply_file(
//!     Some(Path::new("app-1.0.bin")),
//!     Path::new("1.0-to-1.1.dpatch"),
//!     Path::new("app-1.1.bin"),
//!     &Limits { max_apply_memory: 32 << 20 },
//!     Some(&TrustedKeys::single(key)),
//!     &mut |_progress| {},
//! )?;
//! println!("wrote {} bytes, sha256 {}", report.target.size, report.target.sha256);
//! # Ok::<(), deltaapply::Error>(())
//! ```

#![forbid(unsafe_code)]

// The crates behind the facade, under the paths installers have always used.
pub use deltaapply_apply::{cancel, foreign, key, lock, read, stage, tree};
pub use deltaapply_fetch::{fetch, source};
pub use deltaapply_format::{
    bsdiff40, container, control, exe, manifest, rotation, signature, vcdiff, zstd_frame,
};
pub use deltaapply_update as update;

pub use deltaapply_apply::{
    AnyPatch, ApplyReport, Error, ErrorKind, KeyFile, Limits, Patch, Phase, Progress, apply_file,
    apply_patch,
};
pub use deltaapply_fetch::{FetchError, Fetched, Fetcher, Mirror, Source, SourceError};
pub use deltaapply_format::{
    AnyHeader, FileId, FormatError, Hasher, Header, KeyId, Method, Origin, PatchKind, PublicKey,
    Sha256Digest, TreeHeader, TrustedKeys, hash_reader,
};
pub use deltaapply_update::{UpdateError, Updater};
