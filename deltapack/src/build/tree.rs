//! Publishing a tree artifact (`deltapack build` with a directory): the full tree
//! image, one signed full container per file of the new tree (for the applier's
//! per-file fallback, `files/<sha256>.dpatch`), and a tree patch from each older
//! release still supported, each applied to its base and checked before it is kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use deltaapply::container::HEADER_LEN;
use deltaapply::manifest::{
    Artifact, ArtifactKind, FileRef, FullImage, PatchEntry, RelPath, tree_entries,
};
use deltaapply::tree::apply::{TreeApply, apply_tree};
use deltaapply::tree::{EntryKind, Recipe, TreePatch};
use deltaapply::{Limits, PatchKind, Sha256Digest, TrustedKeys};

use super::{BuildError, PatchSummary};
use crate::Settings;
use crate::keys::SecretKey;
use crate::store::{self, StoreError};
use crate::tree::{diff_trees, scan_tree};

/// Subdirectory of the per-file full containers of tree artifacts.
pub const FILES_DIR: &str = crate::store::FILES_DIR;

/// An older release's tree, rebuilt from its full image.
pub struct TreeBase {
    /// Its version.
    pub version: String,
    /// The rebuilt tree (in the build's scratch directory).
    pub dir: PathBuf,
}

/// A tree artifact ready to publish.
pub struct PublishedTree {
    /// Its manifest entry.
    pub artifact: Artifact,
    /// Files to write: the full image, the per-file containers and the patches.
    pub files: Vec<(RelPath, Vec<u8>)>,
    /// One summary per base.
    pub summaries: Vec<PatchSummary>,
}

/// What a failure is about, for [`BuildError`]s.
fn diff_error(
    name: &str,
    version: &str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> BuildError {
    BuildError::Tree {
        artifact: name.to_string(),
        version: version.to_string(),
        source: Box::new(e),
    }
}

/// Applies the tree patch at `patch` to `old` (or to nothing), writing the tree to
/// `dest` (which must not exist), with every check of the applier.
pub fn apply_checked(
    old: Option<&Path>,
    patch: &Path,
    dest: &Path,
    trusted: &TrustedKeys,
) -> Result<deltaapply::container::FileId, Box<dyn std::error::Error + Send + Sync>> {
    let limits = Limits {
        max_apply_memory: u64::MAX,
    };
    let opened = TreePatch::open(patch, &limits, Some(trusted), &mut |_| {})?;
    let report = apply_tree(
        &TreeApply {
            patch: &opened,
            old,
            dest,
            substitutes: &BTreeMap::new(),
            limits,
            replace_unlisted: false,
            drop: None,
        },
        &mut |_| {},
    )?;
    Ok(report.target)
}

/// Makes everything a new tree artifact publishes. `bases` are the older releases'
/// trees, newest first; `scratch` is the build's scratch directory.
#[allow(clippy::too_many_arguments)]
pub fn publish_tree(
    name: &str,
    new_dir: &Path,
    bases: &[TreeBase],
    settings: &Settings,
    max_patch_share: f64,
    key: &SecretKey,
    trusted: &TrustedKeys,
    scratch: &Path,
) -> Result<PublishedTree, BuildError> {
    let listing = scan_tree(new_dir)
        .map_err(|e| diff_error(name, "(new tree)", e))?
        .listing()
        .clone();
    let id = listing.id();
    let mut files = Vec::new();

    // The full tree image, checked by unpacking it.
    let full = diff_trees(None, new_dir, settings, Some(key))
        .map_err(|e| diff_error(name, "(none: full image)", e))?;
    let full_path = store::content_path(store::FULL_DIR, &full.bytes);
    let staged = scratch.join(format!("{name}.full"));
    std::fs::write(&staged, &full.bytes).map_err(StoreError::new("cannot write", &staged))?;
    let check_dir = scratch.join(format!("{name}.check-full"));
    let made = apply_checked(None, &staged, &check_dir, trusted).map_err(|source| {
        BuildError::SelfCheck {
            artifact: name.to_string(),
            version: "(full image)".into(),
            source,
        }
    })?;
    assert_eq!(made, id, "the full tree image makes the tree scanned");
    let _ = std::fs::remove_dir_all(&check_dir);

    // Each file's full container, signed, from the full image's blobs.
    let opened = TreePatch::open(
        &staged,
        &Limits {
            max_apply_memory: u64::MAX,
        },
        Some(trusted),
        &mut |_| {},
    )
    .map_err(|e| diff_error(name, "(full image)", e))?;
    let mut entries = tree_entries(&listing);
    let index = opened.index();
    for (i, entry) in index.new.entries().iter().enumerate() {
        let EntryKind::File {
            recipe: Recipe::Full { blob },
            ..
        } = entry.kind
        else {
            continue;
        };
        let blob = index.blobs[blob];
        let start = HEADER_LEN + blob.offset as usize;
        let mut bytes = full.bytes[start..start + blob.len as usize].to_vec();
        super::sign_container(&mut bytes, key);
        let path = store::content_path(FILES_DIR, &bytes);
        entries[i].full = Some(FileRef {
            path: path.clone(),
            size: bytes.len() as u64,
            sha256: Sha256Digest::of(&bytes),
        });
        files.push((path, bytes));
    }
    drop(opened);
    let full_image = FullImage {
        path: full_path.clone(),
        size: full.bytes.len() as u64,
        sha256: Sha256Digest::of(&full.bytes),
        compression: "zstd".into(),
        apply_memory: full.header.apply_memory,
    };
    files.push((full_path, full.bytes));

    // A tree patch from each base, applied to it and checked.
    let mut patches = Vec::new();
    let mut summaries = Vec::new();
    for (i, base) in bases.iter().enumerate() {
        let made = diff_trees(Some(&base.dir), new_dir, settings, Some(key))
            .map_err(|e| diff_error(name, &base.version, e))?;
        let size = made.bytes.len() as u64;
        let share = size as f64 / full_image.size.max(1) as f64;
        let mut summary = PatchSummary {
            artifact: name.to_string(),
            base_version: base.version.clone(),
            method: PatchKind::Tree,
            size,
            full_size: full_image.size,
            share,
            apply_memory: made.header.apply_memory,
            path: None,
            omitted: None,
        };
        if share > max_patch_share {
            summary.omitted = Some(format!(
                "{:.1}% of the full image, above --max-patch-share",
                share * 100.0
            ));
            summaries.push(summary);
            continue;
        }
        let staged = scratch.join(format!("{name}.patch-{i}"));
        std::fs::write(&staged, &made.bytes).map_err(StoreError::new("cannot write", &staged))?;
        let check_dir = scratch.join(format!("{name}.check-{i}"));
        let result =
            apply_checked(Some(&base.dir), &staged, &check_dir, trusted).map_err(|source| {
                BuildError::SelfCheck {
                    artifact: name.to_string(),
                    version: base.version.clone(),
                    source,
                }
            })?;
        assert_eq!(result, id, "a tree patch makes the tree scanned");
        let _ = std::fs::remove_dir_all(&check_dir);
        let _ = std::fs::remove_file(&staged);
        // An empty older tree is named by the empty tree's identity.
        let source = made
            .header
            .source()
            .unwrap_or_else(deltaapply::tree::TreeIndex::empty_id);
        let path = store::content_path(store::PATCH_DIR, &made.bytes);
        patches.push(PatchEntry {
            base_version: base.version.clone(),
            base_size: source.size,
            base_sha256: source.sha256,
            path: path.clone(),
            size,
            sha256: Sha256Digest::of(&made.bytes),
            method: PatchKind::Tree,
            apply_memory: made.header.apply_memory,
        });
        summary.path = Some(path.to_string());
        summaries.push(summary);
        files.push((path, made.bytes));
    }
    Ok(PublishedTree {
        artifact: Artifact {
            name: name.to_string(),
            size: id.size,
            sha256: id.sha256,
            full: full_image,
            patches,
            kind: ArtifactKind::Tree,
            entries,
        },
        files,
        summaries,
    })
}

/// Everything the new tree artifacts publish.
pub(super) struct PublishedTrees {
    /// Their manifest entries.
    pub artifacts: Vec<Artifact>,
    /// Files to write.
    pub files: Vec<(RelPath, Vec<u8>)>,
    /// One summary per (tree, base).
    pub summaries: Vec<PatchSummary>,
}

/// [`publish_tree`] for each new tree artifact with its bases (as
/// [`super::bases::rebuild_all`] found them, in the same order).
pub(super) fn publish_trees(
    trees: &[(String, PathBuf)],
    bases: &[(String, Vec<TreeBase>)],
    settings: &Settings,
    max_patch_share: f64,
    key: &SecretKey,
    trusted: &TrustedKeys,
    scratch: &Path,
) -> Result<PublishedTrees, BuildError> {
    let mut out = PublishedTrees {
        artifacts: Vec::new(),
        files: Vec::new(),
        summaries: Vec::new(),
    };
    for ((name, path), (_, bases)) in trees.iter().zip(bases) {
        let published = publish_tree(
            name,
            path,
            bases,
            settings,
            max_patch_share,
            key,
            trusted,
            scratch,
        )?;
        // An unchanged tree needs no patch from its own release.
        let mut artifact = published.artifact;
        artifact
            .patches
            .retain(|p| p.base_sha256 != artifact.sha256);
        out.summaries.extend(published.summaries);
        out.files.extend(published.files);
        out.artifacts.push(artifact);
    }
    Ok(out)
}
