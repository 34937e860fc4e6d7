//! The publish directory as a store: the signed manifest, and content-addressed
//! patch and full-image files (`patches/<sha256>.dpatch`, `full/<sha256>.dpatch`,
//! named by the SHA-256 of the file itself). Everything is written through a
//! temporary file and a rename, so a reader (a web server, a sync to a CDN) never
//! sees half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use deltaapply::manifest::{MANIFEST_FILE, MAX_MANIFEST_SIZE, RelPath, SIGNATURE_FILE};
use deltaapply::signature::MAX_SIGNATURE_FILE;
use deltaapply::{Limits, Sha256Digest, TrustedKeys};

/// Subdirectory of patch files.
pub const PATCH_DIR: &str = "patches";

/// Subdirectory of full images.
pub const FULL_DIR: &str = "full";

/// The extension of both kinds of file (both are patch-v1 containers).
pub const EXTENSION: &str = "dpatch";

/// An I/O failure, with the file concerned.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}", path.display())]
pub struct StoreError {
    /// What was being done, e.g. "cannot write".
    pub what: &'static str,
    /// The file.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

impl StoreError {
    pub(crate) fn new(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| StoreError { what, path, source }
    }
}

/// The content-addressed path of a file with these bytes in `kind` (`patches` or `full`).
pub fn content_path(kind: &str, bytes: &[u8]) -> RelPath {
    RelPath::new(&format!("{kind}/{}.{EXTENSION}", Sha256Digest::of(bytes)))
        .expect("hex names are valid paths")
}

/// Writes `bytes` to `path` atomically (temporary file beside it, fsync, rename),
/// creating the parent directory. A content-addressed file already present with the
/// same bytes is left as it is.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    if let Ok(existing) = std::fs::read(path)
        && existing == bytes
    {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(StoreError::new("cannot create", parent))?;
    }
    let staged = deltaapply::stage::Staged::beside(path, None).map_err(|e| StoreError {
        what: "cannot write",
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    staged
        .file()
        .write_all(bytes)
        .map_err(StoreError::new("cannot write", staged.path()))?;
    staged.commit().map_err(|e| StoreError {
        what: "cannot write",
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Reads at most `cap` bytes of `path`: `Ok(None)` if it does not exist, an error
/// naming the file if it is larger.
pub fn read_capped(path: &Path, cap: u64) -> Result<Option<Vec<u8>>, StoreError> {
    match deltaapply::source::read_capped(path, cap) {
        Ok(Some(bytes)) => Ok(Some(bytes)),
        Ok(None) => Err(StoreError {
            what: "too large:",
            path: path.to_path_buf(),
            source: std::io::Error::other(format!("larger than the {cap}-byte limit")),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::new("cannot read", path)(e)),
    }
}

/// The manifest and signature file of `dir`, if the directory has a manifest.
pub struct SignedManifest {
    /// The manifest's exact bytes.
    pub manifest: Vec<u8>,
    /// The signature file's bytes.
    pub signature: Vec<u8>,
}

/// Reads `dir/manifest.toml` and `dir/manifest.toml.sig` within their size caps.
/// `Ok(None)` when there is no manifest; a manifest without signature is an error.
pub fn read_manifest(dir: &Path) -> Result<Option<SignedManifest>, StoreError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let Some(manifest) = read_capped(&manifest_path, MAX_MANIFEST_SIZE)? else {
        return Ok(None);
    };
    let sig_path = dir.join(SIGNATURE_FILE);
    let signature = read_capped(&sig_path, MAX_SIGNATURE_FILE)?.ok_or_else(|| StoreError {
        what: "missing signature file",
        path: sig_path,
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    Ok(Some(SignedManifest {
        manifest,
        signature,
    }))
}

/// Applies the patch-v1 container at `patch` (to `old`, unless it is a full image),
/// writing `dest`, with `trusted` as the only acceptable signer. Every check of
/// `deltaapply` runs: signature, old file hash, payload hash, output hash.
pub fn apply_checked(
    old: Option<&Path>,
    patch: &Path,
    dest: &Path,
    trusted: &TrustedKeys,
) -> Result<deltaapply::ApplyReport, deltaapply::Error> {
    let limits = Limits {
        max_apply_memory: u64::MAX,
    };
    deltaapply::apply_file(old, patch, dest, &limits, Some(trusted), &mut |_| {})
}
