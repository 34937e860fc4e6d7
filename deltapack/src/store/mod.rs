//! The publish location as a store: the signed manifest, and content-addressed
//! patch and full-image files (`patches/<sha256>.dpatch`, `full/<sha256>.dpatch`,
//! named by the SHA-256 of the file itself). A location is a local directory or an
//! S3-compatible bucket ([`Location`], [`Store`]). In a directory everything is
//! written through a temporary file and a rename; in a bucket every object is written
//! whole in one request. Either way a reader (a web server, a CDN, a device) never
//! sees half a file.

pub mod aws;
pub mod mirror;
pub mod s3;

use std::io::Write;
use std::path::{Path, PathBuf};

use deltaapply::manifest::{MANIFEST_FILE, MAX_MANIFEST_SIZE, RelPath, SIGNATURE_FILE};
use deltaapply::signature::MAX_SIGNATURE_FILE;
use deltaapply::{Limits, Sha256Digest, TrustedKeys};

use self::s3::{S3Store, S3Url};

/// Where releases are published: a local directory or `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory.
    Dir(PathBuf),
    /// A bucket and key prefix in an S3-compatible store.
    S3(S3Url),
}

impl Location {
    /// `s3://...` is a bucket; anything else a directory.
    pub fn parse(arg: &std::ffi::OsStr) -> Result<Location, String> {
        match arg.to_str() {
            Some(s) if s.starts_with("s3://") => S3Url::parse(s).map(Location::S3),
            Some(s) if s.contains("://") => Err(format!(
                "{s:?}: only local directories and s3://bucket/prefix can be published to"
            )),
            _ => Ok(Location::Dir(PathBuf::from(arg))),
        }
    }

    /// The location as errors name it: the directory, or `s3://bucket/prefix`.
    pub fn shown(&self) -> PathBuf {
        match self {
            Location::Dir(d) => d.clone(),
            Location::S3(u) => PathBuf::from(u.to_string()),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(d) => write!(f, "{}", d.display()),
            Location::S3(u) => write!(f, "{u}"),
        }
    }
}

/// A publish location opened for reading and writing.
#[derive(Debug)]
pub enum Store {
    /// A local directory (created by [`Store::open`] if missing).
    Dir(PathBuf),
    /// A bucket, with its client.
    S3(Box<S3Store>),
}

impl Store {
    /// Opens `location`. A bucket's endpoint, region and credentials come from the
    /// environment and the AWS files ([`aws`]); the bucket must exist and accept
    /// the credentials (checked here with one listing request).
    pub fn open(location: &Location) -> Result<Store, StoreError> {
        match location {
            Location::Dir(d) => Ok(Store::Dir(d.clone())),
            Location::S3(url) => {
                let config = aws::AwsConfig::from_env().map_err(|e| StoreError {
                    what: "cannot use",
                    path: location.shown(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                let store = S3Store::new(url.clone(), &config)?;
                store.check()?;
                Ok(Store::S3(Box::new(store)))
            }
        }
    }

    /// The location as errors name it.
    pub fn shown(&self) -> PathBuf {
        match self {
            Store::Dir(d) => d.clone(),
            Store::S3(s) => PathBuf::from(s.url().to_string()),
        }
    }

    /// `rel` inside the location, as errors name it.
    pub fn shown_at(&self, rel: &str) -> PathBuf {
        match self {
            Store::Dir(d) => d.join(rel),
            Store::S3(s) => PathBuf::from(format!("{}/{rel}", s.url())),
        }
    }

    /// Bytes downloaded from a bucket so far (0 for a directory).
    pub fn downloaded(&self) -> u64 {
        match self {
            Store::Dir(_) => 0,
            Store::S3(s) => s.downloaded(),
        }
    }

    /// Bytes uploaded to a bucket so far (0 for a directory).
    pub fn uploaded(&self) -> u64 {
        match self {
            Store::Dir(_) => 0,
            Store::S3(s) => s.uploaded(),
        }
    }

    /// Reads `rel`, at most `cap` bytes: `Ok(None)` if it does not exist.
    pub fn read(&self, rel: &str, cap: u64) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Dir(d) => read_capped(&d.join(rel), cap),
            Store::S3(s) => s.get(rel, cap),
        }
    }

    /// The names of the files directly in the subdirectory `rel_dir`.
    pub fn list(&self, rel_dir: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Dir(d) => {
                let dir = d.join(rel_dir);
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(StoreError::new("cannot list", &dir)(e)),
                };
                let mut names = Vec::new();
                for entry in entries {
                    let entry = entry.map_err(StoreError::new("cannot list", &dir))?;
                    if let Some(name) = entry.file_name().to_str() {
                        names.push(name.to_string());
                    }
                }
                Ok(names)
            }
            Store::S3(s) => {
                let base = format!("{}/", rel_dir.trim_end_matches('/'));
                Ok(s.list(rel_dir)?
                    .into_iter()
                    .filter_map(|(key, _)| {
                        let name = key.strip_prefix(&base)?;
                        (!name.contains('/')).then(|| name.to_string())
                    })
                    .collect())
            }
        }
    }

    /// Writes `rel` atomically. A content-addressed file (`patches/`, `full/`,
    /// `files/`) already present is left as it is: in a directory when its bytes are
    /// the same, in a bucket when its size is (its name is its SHA-256, and S3 makes
    /// objects visible only whole).
    pub fn write(&self, rel: &str, bytes: &[u8]) -> Result<(), StoreError> {
        match self {
            Store::Dir(d) => write_file(&d.join(rel), bytes),
            Store::S3(s) => {
                let content_addressed = [PATCH_DIR, FULL_DIR, FILES_DIR]
                    .iter()
                    .any(|dir| rel.starts_with(&format!("{dir}/")));
                if content_addressed && s.size(rel)? == Some(bytes.len() as u64) {
                    return Ok(());
                }
                s.put(rel, bytes)
            }
        }
    }

    /// Removes `rel`; one already gone is not an error.
    pub fn remove(&self, rel: &str) -> Result<(), StoreError> {
        match self {
            Store::Dir(d) => match std::fs::remove_file(d.join(rel)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(StoreError::new("cannot remove", &d.join(rel))(e))
                }
                _ => Ok(()),
            },
            Store::S3(s) => s.delete(rel),
        }
    }

    /// A local file holding `rel`, whose size and SHA-256 the verified manifest gives:
    /// in a directory, the file itself (the caller checks it); from a bucket, a copy in
    /// `cache` named by its SHA-256, downloaded unless a copy with that hash is there
    /// already, and checked before it is kept.
    pub fn local_file(
        &self,
        rel: &RelPath,
        size: u64,
        sha256: Sha256Digest,
        cache: &Path,
    ) -> Result<PathBuf, StoreError> {
        let s = match self {
            Store::Dir(d) => return Ok(rel.under(d)),
            Store::S3(s) => s,
        };
        std::fs::create_dir_all(cache).map_err(StoreError::new("cannot create", cache))?;
        let cached = cache.join(format!("{sha256}.{EXTENSION}"));
        match std::fs::File::open(&cached).and_then(|f| deltaapply::hash_reader(f, &mut |_| {})) {
            Ok(id) if id == (size, sha256) => return Ok(cached),
            Ok(_) => {
                std::fs::remove_file(&cached).map_err(StoreError::new("cannot replace", &cached))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::new("cannot read", &cached)(e)),
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(cache)
            .map_err(StoreError::new("cannot write in", cache))?;
        let got = s.get_into(rel.as_str(), size, tmp.as_file_mut())?;
        let shown = self.shown_at(rel.as_str());
        let Some(got) = got else {
            return Err(StoreError {
                what: "missing:",
                path: shown,
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        };
        if got != (size, sha256) {
            return Err(StoreError {
                what: "wrong content:",
                path: shown,
                source: std::io::Error::other(format!(
                    "the object is {} bytes with sha256 {}, the manifest says {size} bytes \
                     with sha256 {sha256}",
                    got.0, got.1
                )),
            });
        }
        tmp.as_file()
            .sync_all()
            .map_err(StoreError::new("cannot write", &cached))?;
        tmp.persist(&cached)
            .map_err(|e| StoreError::new("cannot write", &cached)(e.error))?;
        Ok(cached)
    }

    /// Reads the manifest and its signature file within their size caps. `Ok(None)`
    /// when there is no manifest; a manifest without signature is an error.
    pub fn read_manifest(&self) -> Result<Option<SignedManifest>, StoreError> {
        let Some(manifest) = self.read(MANIFEST_FILE, MAX_MANIFEST_SIZE)? else {
            return Ok(None);
        };
        let signature = self
            .read(SIGNATURE_FILE, MAX_SIGNATURE_FILE)?
            .ok_or_else(|| StoreError {
                what: "missing signature file",
                path: self.shown_at(SIGNATURE_FILE),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })?;
        Ok(Some(SignedManifest {
            manifest,
            signature,
        }))
    }
}

/// Subdirectory of patch files.
pub const PATCH_DIR: &str = "patches";

/// Subdirectory of full images.
pub const FULL_DIR: &str = "full";

/// Subdirectory of tree artifacts' per-file full containers.
pub const FILES_DIR: &str = "files";

/// Subdirectory of the copies of every manifest published (`manifests/<sequence>.toml`
/// and its `.sig`), which `deltapack prune` reads to know what clients holding an
/// older manifest may still fetch. Devices never read it.
pub const HISTORY_DIR: &str = "manifests";

/// The path of the copy of manifest `sequence` (`sig`: of its signature file).
pub fn history_path(sequence: u64, sig: bool) -> String {
    format!(
        "{HISTORY_DIR}/{sequence}.toml{}",
        if sig { ".sig" } else { "" }
    )
}

/// Every file `manifest` references (full images, patches, tree artifacts' per-file
/// containers, of every release it lists), with the size it gives.
pub fn references(
    manifest: &deltaapply::manifest::Manifest,
) -> std::collections::BTreeMap<String, u64> {
    let mut files = std::collections::BTreeMap::new();
    for (_, artifact) in manifest.all_artifacts() {
        files.insert(artifact.full.path.to_string(), artifact.full.size);
        for p in &artifact.patches {
            files.insert(p.path.to_string(), p.size);
        }
        for f in artifact.entries.iter().filter_map(|e| e.full.as_ref()) {
            files.insert(f.path.to_string(), f.size);
        }
    }
    files
}

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
    Store::Dir(dir.to_path_buf()).read_manifest()
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
