//! The apply half of `deltaapply`: opening and checking a patch, the method decoders,
//! staging the output beside its destination, one applier per target, and trees (the
//! tree patch, probing an installed tree, the journal, the one writer of installed
//! trees). No network: downloading is `deltaapply-fetch`, the update flow
//! `deltaapply-update`. Installers depend on the `deltaapply` facade, which re-exports
//! this crate under the paths it always had.

#![forbid(unsafe_code)]

mod apply;
pub mod cancel;
mod error;
mod exe;
pub mod fault;
pub mod foreign;
mod key_file;
pub mod lock;
mod platform;
mod posread;
pub mod read;
pub mod stage;
pub mod tree;
mod verified;

// The format core under the short paths the modules of this crate use.
pub(crate) use deltaapply_format::{
    bsdiff40, codec, container, control, digest, signature, vcdiff, zstd_frame,
};

/// Public keys and the set of keys an applier trusts ([`deltaapply_format::key`]), and
/// loading keys from files ([`KeyFile`]).
pub mod key {
    pub use crate::key_file::{BUILTIN_KEYS, KEY_ENV, KeyFile};
    pub use deltaapply_format::key::*;
}

pub use apply::{
    AnyPatch, ApplyReport, Limits, Patch, Phase, Progress, apply_file, apply_patch, apply_unlocked,
};
pub use deltaapply_format::{Method, PatchKind, hash_reader};
pub use error::{Error, ErrorKind, error_chain};
pub use key_file::KeyFile;
