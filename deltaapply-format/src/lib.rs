//! The formats of the deltapack toolchain, without I/O: every byte `deltapack` writes
//! and `deltaapply` reads, parsed and validated from memory (or from a reader the
//! caller supplies). The patch container and its header (`format-spec/patch-v1.md`),
//! the bsdiff control stream, SHA-256 digests, ed25519 public keys and signature
//! checks (`keys.md`, `signatures.md`), the release manifest (`manifest-v1.md`), and
//! the tree listing and tree-patch index (`tree-v1.md`), and the foreign formats the
//! applier also takes: BSDIFF40, the zstd frame header (`foreign.md`) and VCDIFF (`vcdiff.md`).
//!
//! Nothing here opens a file, touches the network or knows about a command line: this
//! is the part fuzz targets aim at, and what every other crate of the applier builds
//! on. `deltaapply` re-exports it; depend on `deltaapply` unless you need the formats
//! alone.

#![forbid(unsafe_code)]

pub mod bsdiff40;
pub mod codec;
pub mod container;
pub mod control;
pub mod digest;
pub mod exe;
pub mod key;
pub mod manifest;
pub mod method;
pub mod relpath;
pub mod rotation;
pub mod signature;
pub mod tree;
pub mod vcdiff;
pub mod zstd_frame;

pub use container::{AnyHeader, FileId, FormatError, Header, TreeHeader};
pub use digest::{Hasher, Sha256Digest, hash_reader};
pub use key::{KeyId, PublicKey, TrustedKeys};
pub use method::{Method, PatchKind};
pub use signature::Origin;
