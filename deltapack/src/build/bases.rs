//! The bases: the artifacts of the older releases still supported, rebuilt from their
//! full images (every hash and signature checked) into the build's scratch directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use deltaapply::manifest::{Artifact, ArtifactKind, PreviousRelease};
use deltaapply::{Sha256Digest, TrustedKeys};

use super::tree::TreeBase;
use super::{BuildError, Inputs, hash_file};
use crate::store::{self, Store};

/// A base artifact to diff from.
pub(super) struct Base {
    /// Its release.
    pub version: String,
    /// The artifact.
    pub artifact: String,
    /// The rebuilt file (in the build's scratch directory).
    pub file: PathBuf,
    /// Its job number: its place among every file base of the build ([`file_jobs`]).
    pub job: usize,
}

/// Where bases come from: the publish location, the download cache, and the keys
/// their full images must be signed by.
pub(super) struct Sources<'a> {
    /// The publish location.
    pub store: &'a Store,
    /// Where full images downloaded from a bucket are kept, by SHA-256.
    pub cache: &'a Path,
    /// The keys a full image must be signed by.
    pub trusted: &'a TrustedKeys,
}

/// Every base a build diffs from.
pub(super) struct Bases {
    /// File artifacts' bases, in release order.
    pub files: Vec<Base>,
    /// Each new tree artifact with its bases, newest first.
    pub trees: Vec<(String, Vec<TreeBase>)>,
}

/// Which bases to rebuild: the file bases whose job number `files` accepts, and the
/// tree bases if `trees`.
pub(super) struct Select<'a> {
    /// Accepts a file base's job number.
    pub files: &'a dyn Fn(usize) -> bool,
    /// Whether tree bases are rebuilt.
    pub trees: bool,
}

impl Select<'_> {
    /// Every base.
    pub const ALL: Select<'static> = Select {
        files: &|_| true,
        trees: true,
    };
}

/// The file bases a build patches from, in job order: from `releases` (newest first),
/// one per distinct older content of each new file artifact (an unchanged artifact
/// needs no patch, and a base equal to a newer base needs only the newer one's). Each
/// is the release's version and its artifact entry.
pub(super) fn file_jobs<'r>(
    releases: &'r [PreviousRelease],
    inputs: &Inputs,
) -> Vec<(&'r str, &'r Artifact)> {
    let mut seen = BTreeSet::new();
    let mut jobs = Vec::new();
    for release in releases {
        for a in &release.artifacts {
            if a.kind == ArtifactKind::Tree {
                continue;
            }
            let Some((_, new_bytes)) = inputs.files.iter().find(|(n, _)| *n == a.name) else {
                continue;
            };
            if a.sha256 == Sha256Digest::of(new_bytes) || !seen.insert((a.name.clone(), a.sha256)) {
                continue;
            }
            jobs.push((release.version.as_str(), a));
        }
    }
    jobs
}

/// Rebuilds the bases `select` picks: the file bases of [`file_jobs`], and one tree
/// base per distinct older content of each new tree artifact, newest first.
pub(super) fn rebuild_all(
    sources: &Sources,
    releases: &[PreviousRelease],
    inputs: &Inputs,
    scratch: &Path,
    select: &Select,
) -> Result<Bases, BuildError> {
    let mut bases = Bases {
        files: Vec::new(),
        trees: inputs
            .trees
            .iter()
            .map(|(name, _)| (name.clone(), Vec::new()))
            .collect(),
    };
    if select.trees {
        let mut seen = BTreeSet::new();
        for release in releases {
            for a in release
                .artifacts
                .iter()
                .filter(|a| a.kind == ArtifactKind::Tree)
            {
                let Some((_, list)) = bases.trees.iter_mut().find(|(n, _)| *n == a.name) else {
                    continue;
                };
                if !seen.insert((a.name.clone(), a.sha256)) {
                    continue;
                }
                let tree_dir = scratch.join(format!("tree-base-{}", seen.len()));
                rebuild(sources, &release.version, a, &tree_dir)?;
                list.push(TreeBase {
                    version: release.version.clone(),
                    dir: tree_dir,
                });
            }
        }
    }
    for (job, (version, a)) in file_jobs(releases, inputs).into_iter().enumerate() {
        if !(select.files)(job) {
            continue;
        }
        let file = scratch.join(format!("base-{job}"));
        rebuild(sources, version, a, &file)?;
        bases.files.push(Base {
            version: version.to_string(),
            artifact: a.name.clone(),
            file,
            job,
        });
    }
    Ok(bases)
}

/// Rebuilds an older release's artifact from its full image into `dest` (a file, or a
/// directory for a tree artifact), checking the full image's size and hash against the
/// manifest, its signature, and the result's size and hash (a tree's: its total file
/// bytes and listing digest).
pub(super) fn rebuild(
    sources: &Sources,
    version: &str,
    artifact: &Artifact,
    dest: &Path,
) -> Result<(), BuildError> {
    let trusted = sources.trusted;
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| BuildError::Base {
        artifact: artifact.name.clone(),
        version: version.to_string(),
        path: sources.store.shown_at(artifact.full.path.as_str()),
        source,
    };
    let path = sources
        .store
        .local_file(
            &artifact.full.path,
            artifact.full.size,
            artifact.full.sha256,
            sources.cache,
        )
        .map_err(|e| fail(Box::new(e)))?;
    let file_id = hash_file(&path).map_err(|e| fail(Box::new(e)))?;
    if file_id != (artifact.full.size, artifact.full.sha256) {
        return Err(fail(
            format!(
                "the file is {} bytes with sha256 {}, the manifest says {} bytes with sha256 {}",
                file_id.0, file_id.1, artifact.full.size, artifact.full.sha256
            )
            .into(),
        ));
    }
    let target = match artifact.kind {
        ArtifactKind::File => {
            store::apply_checked(None, &path, dest, trusted)
                .map_err(|e| fail(Box::new(e)))?
                .target
        }
        ArtifactKind::Tree => {
            super::tree::apply_checked(None, &path, dest, trusted).map_err(fail)?
        }
    };
    if target.size != artifact.size || target.sha256 != artifact.sha256 {
        return Err(fail(
            format!(
                "it holds {} bytes with sha256 {}, the manifest says {} bytes with sha256 {}",
                target.size, target.sha256, artifact.size, artifact.sha256
            )
            .into(),
        ));
    }
    Ok(())
}
