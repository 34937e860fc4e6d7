//! Following a signed key chain (`format-spec/rotation.md`): the keys document the
//! installer pinned, or the newer one accepted since (kept in the keys file beside the
//! state file), walked one version at a time along `keys/<N>.toml` of a mirror before
//! its manifest is verified with the newest version's keys.

use std::io::Write;
use std::path::{Path, PathBuf};

use deltaapply_apply::stage::Staged;
use deltaapply_fetch::fetch::Fetcher;
use deltaapply_fetch::source::{Source, read_capped};
use deltaapply_format::manifest::RelPath;
use deltaapply_format::rotation::{
    self, KeysDocument, MAX_KEYS_DOCUMENT, MAX_ROTATION_STEPS, RotationError,
};
use deltaapply_format::signature::MAX_SIGNATURE_FILE;

use super::UpdateError;

/// The keys file used with `state_file`: `<state file>.keys` beside it.
pub fn default_keys_file(state_file: &Path) -> PathBuf {
    let mut name = state_file.as_os_str().to_owned();
    name.push(".keys");
    PathBuf::from(name)
}

/// A key chain: the pinned first trusted version and where the newest accepted one is
/// kept.
#[derive(Debug, Clone)]
pub(super) struct KeyChain {
    pub(super) pinned: KeysDocument,
}

/// Where a walk of one mirror's chain ended.
#[derive(Debug, Clone)]
pub(super) struct Walked {
    /// The newest version accepted.
    pub(super) document: KeysDocument,
    /// Its bytes, when it is newer than the version the walk started from.
    pub(super) newer: Option<Vec<u8>>,
    /// Whether a step dropped a key (a revocation): the rollback floors recorded under
    /// the old keys no longer hold.
    pub(super) revoked: bool,
}

impl KeyChain {
    /// The version to walk from: the keys file's if it holds one at least as new as the
    /// pinned version (for the same product), else the pinned one. A damaged keys file
    /// is an error, never a reason to fall back to older keys.
    pub(super) fn start(&self, keys_file: &Path) -> Result<KeysDocument, UpdateError> {
        let damaged = |problem: String| UpdateError::KeysFile {
            path: keys_file.to_path_buf(),
            problem,
        };
        let bytes = match read_capped(keys_file, MAX_KEYS_DOCUMENT) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err(damaged(format!("larger than {MAX_KEYS_DOCUMENT} bytes"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(self.pinned.clone()),
            Err(e) => return Err(damaged(format!("cannot read it: {e}"))),
        };
        let kept = KeysDocument::parse(&bytes).map_err(|e| damaged(e.to_string()))?;
        if kept.product == self.pinned.product && kept.version >= self.pinned.version {
            Ok(kept)
        } else {
            Ok(self.pinned.clone())
        }
    }

    /// Walks `mirror`'s chain from `start`: version N+1 while the mirror has it, each
    /// step checked by [`rotation::verify_rotation`], at most [`MAX_ROTATION_STEPS`].
    pub(super) fn walk(
        start: &KeysDocument,
        fetcher: &Fetcher,
        mirror: &Source,
        mirror_name: &str,
    ) -> Result<Walked, UpdateError> {
        let refused = |source: RotationError| UpdateError::Rotation {
            mirror: mirror_name.to_string(),
            source,
        };
        let mut walked = Walked {
            document: start.clone(),
            newer: None,
            revoked: false,
        };
        for step in 0..=MAX_ROTATION_STEPS {
            let version = walked.document.version + 1;
            let Some(bytes) = fetch(
                fetcher,
                mirror,
                mirror_name,
                &rotation::document_path(version),
            )?
            else {
                return Ok(walked);
            };
            if step == MAX_ROTATION_STEPS {
                break;
            }
            let signature_path = rotation::signature_path(version);
            let signature =
                fetch(fetcher, mirror, mirror_name, &signature_path)?.ok_or_else(|| {
                    UpdateError::Rotation {
                        mirror: mirror_name.to_string(),
                        source: RotationError::Malformed(format!("{signature_path} is missing")),
                    }
                })?;
            let next =
                rotation::verify_rotation(&walked.document, &bytes, &signature).map_err(refused)?;
            walked.revoked |= !walked.document.revoked_by(&next).is_empty();
            walked.document = next;
            walked.newer = Some(bytes);
        }
        Err(refused(RotationError::TooManySteps {
            from: start.version,
        }))
    }
}

/// Fetches a file of the chain; `None` if the mirror does not have it.
fn fetch(
    fetcher: &Fetcher,
    mirror: &Source,
    mirror_name: &str,
    rel: &str,
) -> Result<Option<Vec<u8>>, UpdateError> {
    let path = RelPath::new(rel).map_err(|e| UpdateError::Rotation {
        mirror: mirror_name.to_string(),
        source: RotationError::Malformed(format!("{rel}: {e}")),
    })?;
    let cap = if rel.ends_with(".sig") {
        MAX_SIGNATURE_FILE
    } else {
        MAX_KEYS_DOCUMENT
    };
    match fetcher.fetch_small(mirror, &path, cap) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(source) => Err(UpdateError::Fetch {
            file: rel.to_string(),
            source,
        }),
    }
}

/// Writes `bytes` (a verified keys document) to `keys_file` atomically.
pub(super) fn save(keys_file: &Path, bytes: &[u8]) -> Result<(), UpdateError> {
    let failed = |e: &dyn std::fmt::Display| UpdateError::KeysFile {
        path: keys_file.to_path_buf(),
        problem: format!("cannot write it: {e}"),
    };
    let staged = Staged::beside(keys_file, None).map_err(|e| failed(&e))?;
    staged.file().write_all(bytes).map_err(|e| failed(&e))?;
    staged.commit().map_err(|e| failed(&e))
}
