//! Conversion between a tree artifact's entries as the manifest lists them (TOML) and
//! a validated tree listing ([`crate::tree::Listing`]).

use super::{Artifact, ArtifactKind, ManifestError, TreeEntry, TreeEntryKind};

impl Artifact {
    /// The tree listing of a tree artifact, validated (`None` for a file artifact).
    pub fn listing(&self) -> Option<Result<crate::tree::Listing, ManifestError>> {
        (self.kind == ArtifactKind::Tree).then(|| tree_listing(&self.entries))
    }
}

/// Converts manifest entries to a validated listing.
fn tree_listing(entries: &[TreeEntry]) -> Result<crate::tree::Listing, ManifestError> {
    use crate::tree::{Entry, EntryKind, Listing, TreePath};
    let invalid = |i: usize, problem: String| ManifestError::Invalid {
        field: format!("entry[{i}]"),
        problem,
    };
    if entries.len() as u64 > crate::tree::format::MAX_ENTRIES {
        return Err(invalid(entries.len(), "too many entries".into()));
    }
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let path = TreePath::new(&e.path).map_err(|err| invalid(i, err.to_string()))?;
        let kind = match (e.kind, e.size, e.sha256, &e.target) {
            (TreeEntryKind::File, Some(size), Some(sha256), None) => EntryKind::File {
                size,
                sha256,
                recipe: (),
            },
            (TreeEntryKind::Dir, None, None, None) if e.full.is_none() => EntryKind::Dir,
            (TreeEntryKind::Symlink, None, None, Some(target)) if e.full.is_none() => {
                EntryKind::Symlink {
                    target: target.clone(),
                }
            }
            _ => {
                return Err(invalid(
                    i,
                    format!(
                        "{:?}: a file has size and sha256, a link a target, a directory neither; \
                         only files have full",
                        e.path
                    ),
                ));
            }
        };
        out.push(Entry {
            path,
            mode: e.mode,
            kind,
        });
    }
    let sorted = out
        .windows(2)
        .all(|w| w[0].path.as_str().as_bytes() < w[1].path.as_str().as_bytes());
    if !sorted {
        return Err(ManifestError::Invalid {
            field: "entry".into(),
            problem: "entries must be sorted by path, each listed once".into(),
        });
    }
    Listing::new(out).map_err(|e| ManifestError::Invalid {
        field: "entry".into(),
        problem: e.to_string(),
    })
}

/// Manifest entries of a listing (without per-file full images).
pub fn tree_entries(listing: &crate::tree::Listing) -> Vec<TreeEntry> {
    use crate::tree::EntryKind;
    listing
        .entries()
        .iter()
        .map(|e| {
            let (kind, size, sha256, target) = match &e.kind {
                EntryKind::File { size, sha256, .. } => {
                    (TreeEntryKind::File, Some(*size), Some(*sha256), None)
                }
                EntryKind::Dir => (TreeEntryKind::Dir, None, None, None),
                EntryKind::Symlink { target } => {
                    (TreeEntryKind::Symlink, None, None, Some(target.clone()))
                }
            };
            TreeEntry {
                path: e.path.to_string(),
                kind,
                mode: e.mode,
                size,
                sha256,
                target,
                full: None,
            }
        })
        .collect()
}
