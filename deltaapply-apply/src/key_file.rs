//! Public keys from files and command lines, and where the `deltaapply` binary finds
//! the keys it trusts. The key format itself is in [`crate::key`].

use std::path::{Path, PathBuf};

use crate::key::{KeyFileError, MAX_KEY_FILE, PUBLIC_KEY_PREFIX, PublicKey};

/// The environment variable `deltaapply` reads trusted keys from when `--key` is not
/// given: one or more one-line public keys separated by commas or whitespace.
pub const KEY_ENV: &str = "DELTAAPPLY_KEY";

/// Keys baked into the binary at build time: set `DELTAAPPLY_BUILTIN_KEY` (same syntax
/// as [`KEY_ENV`]) when running `cargo build`.
pub const BUILTIN_KEYS: Option<&str> = option_env!("DELTAAPPLY_BUILTIN_KEY");

/// Loading a [`PublicKey`] from a file (`use deltaapply::KeyFile` to call these as
/// `PublicKey::from_file`).
pub trait KeyFile: Sized {
    /// Reads a public key file: one key line; blank lines and lines starting with `#`
    /// are ignored.
    fn from_file(path: &Path) -> Result<Self, KeyFileError>;

    /// Reads a key given on a command line: the one-line form itself, or a file
    /// holding it.
    fn from_arg(arg: &str) -> Result<Self, KeyFileError>;
}

impl KeyFile for PublicKey {
    fn from_file(path: &Path) -> Result<PublicKey, KeyFileError> {
        let content = |problem: String| KeyFileError::Content {
            path: path.to_path_buf(),
            problem,
        };
        let bytes =
            crate::read::read_capped(path, MAX_KEY_FILE).map_err(|source| KeyFileError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let Some(bytes) = bytes else {
            return Err(content(format!("larger than {MAX_KEY_FILE} bytes")));
        };
        PublicKey::from_file_content(bytes).map_err(content)
    }

    fn from_arg(arg: &str) -> Result<PublicKey, KeyFileError> {
        if arg.trim_start().starts_with(PUBLIC_KEY_PREFIX) {
            PublicKey::parse(arg).map_err(|e| KeyFileError::Content {
                path: PathBuf::from("(command line)"),
                problem: e.to_string(),
            })
        } else {
            PublicKey::from_file(Path::new(arg))
        }
    }
}
