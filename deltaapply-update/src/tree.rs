//! Updating a whole directory (`format-spec/update-v1.md` §9): identify which release
//! the installed tree is (or is closest to), choose between a tree patch with the
//! per-file fallback, a repair of the newest tree, and the full tree image, and carry
//! the route out through the tree applier.
//!
//! Identification compares the installed tree with the listing of every release the
//! manifest lists (each file hashed once). A release matched exactly is installed; else
//! the release with the fewest differing entries is the one the tree is closest to.
//! Routes, cheapest first within the policy:
//! - **tree patch** from that release, with every file whose base differs fetched whole
//!   (its signed full container, listed beside it in the manifest) instead of patched;
//! - **repair**, when the tree is the newest release but for some entries: fetch those
//!   files whole and mend links, directories and modes;
//! - **full tree image**.
//!
//! `check` estimates the files fetched whole from the differences (a file renamed from
//! a modified one is found only once the tree patch's index is read); `update` reads
//! the index and fetches exactly the files needed.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::plan::{self, FileStep, FullImage, Installed, Plan, PlanError, Policy, Route, Step};
use crate::{Event, UpdateError};
use deltaapply_apply::tree::{
    Difference, EntryKind, Listing, Mismatch, Prober, TreePatch, TreePath,
};
use deltaapply_format::PatchKind;
use deltaapply_format::container::FileId;
use deltaapply_format::manifest::{Artifact, Manifest};

/// A release's tree as the manifest lists it.
struct Release<'m> {
    version: &'m str,
    listing: Listing,
}

/// What identification found.
pub(crate) struct Identified {
    pub(crate) installed: Installed,
    /// Differences from each release compared, by version.
    differences: BTreeMap<String, Vec<Difference>>,
}

/// The manifest's tree listings of `name`, newest release first.
fn releases<'m>(manifest: &'m Manifest, name: &str) -> Result<Vec<Release<'m>>, UpdateError> {
    let mut out = Vec::new();
    for (version, artifact) in manifest.all_artifacts() {
        // Only a tree artifact has a listing.
        let Some(listing) = artifact.listing().filter(|_| artifact.name == name) else {
            continue;
        };
        let listing = listing.map_err(|source| UpdateError::Manifest {
            mirror: "(accepted manifest)".into(),
            source,
        })?;
        out.push(Release { version, listing });
    }
    Ok(out)
}

/// The manifest's tree listings of `name`, every release's (for checking a journal).
pub(crate) fn listings(manifest: &Manifest, name: &str) -> Result<Vec<Listing>, UpdateError> {
    Ok(releases(manifest, name)?
        .into_iter()
        .map(|r| r.listing)
        .collect())
}

/// Identifies the installed tree at `target` among the releases of `artifact`.
pub(crate) fn identify(
    manifest: &Manifest,
    artifact: &Artifact,
    target: &Path,
    events: &mut dyn FnMut(Event<'_>),
) -> Result<Identified, UpdateError> {
    let target_error = |problem: &str, source: Option<io::Error>| UpdateError::Target {
        path: target.to_path_buf(),
        problem: problem.to_string(),
        source,
    };
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Identified {
                installed: Installed::Missing,
                differences: BTreeMap::new(),
            });
        }
        Err(e) => return Err(target_error("cannot read its metadata", Some(e))),
        Ok(meta) if !meta.is_dir() => {
            return Err(target_error(
                "is not a directory (the artifact is a tree; give the directory itself, \
                 not a link to it)",
                None,
            ));
        }
        Ok(_) => {}
    }
    let releases = releases(manifest, &artifact.name)?;
    let total: u64 = releases.first().map_or(0, |r| r.listing.total_size());
    let mut prober = Prober::new(target);
    let mut done = 0u64;
    let mut differences = BTreeMap::new();
    let mut best: Option<(usize, &Release<'_>)> = None;
    for release in &releases {
        let diffs = prober
            .compare(&release.listing, &mut |n| {
                done += n;
                events(Event::Hashing {
                    done,
                    total: total.max(done),
                });
            })
            .map_err(|e| target_error("cannot read the installed tree", Some(e)))?;
        let count = diffs.len();
        differences.insert(release.version.to_string(), diffs);
        if count == 0 {
            return Ok(Identified {
                installed: Installed::Release {
                    version: release.version.to_string(),
                    newest: release.version == manifest.version,
                    file: release.listing.id(),
                },
                differences,
            });
        }
        if best.is_none_or(|(n, _)| count < n) {
            best = Some((count, release));
        }
    }
    let (_, best) = best.expect("the newest release is always compared");
    Ok(Identified {
        installed: Installed::Tree {
            version: best.version.to_string(),
            newest: best.version == manifest.version,
            tree: best.listing.id(),
            differences: differences[best.version].clone(),
        },
        differences,
    })
}

/// Whether a difference means the file's content cannot be used as a base.
fn content_differs(m: &Mismatch) -> bool {
    !m.is_mode_only()
}

/// The newest tree's files at the paths in `paths` (that it lists as files), as
/// per-file downloads.
fn file_steps<'a>(
    newest: &Artifact,
    wanted: impl IntoIterator<Item = (&'a TreePath, Mismatch)>,
) -> Result<Vec<FileStep>, String> {
    let mut out = Vec::new();
    for (path, why) in wanted {
        let Ok(i) = newest
            .entries
            .binary_search_by(|e| e.path.as_bytes().cmp(path.as_str().as_bytes()))
        else {
            continue;
        };
        let entry = &newest.entries[i];
        let (Some(size), Some(sha256)) = (entry.size, entry.sha256) else {
            continue;
        };
        let Some(full) = &entry.full else {
            return Err(format!(
                "the manifest lists no full content for {path}, so it cannot be fetched alone"
            ));
        };
        out.push(FileStep {
            path: path.clone(),
            why,
            publish_path: full.path.clone(),
            file: FileId {
                size: full.size,
                sha256: full.sha256,
            },
            target: FileId { size, sha256 },
        });
    }
    Ok(out)
}

/// Chooses the route for a tree.
pub(crate) fn plan(
    manifest: &Manifest,
    artifact: &Artifact,
    identified: &Identified,
    policy: &Policy,
) -> Result<Plan, PlanError> {
    let full = plan::full_step(manifest, artifact);
    let full_size = full.file.size;
    if matches!(
        identified.installed,
        Installed::Release { newest: true, .. }
    ) {
        return Ok(Plan::up_to_date(full_size));
    }
    let mut routes: Vec<(Route, String)> = Vec::new();
    let mut why_not = Vec::new();
    for (version, diffs) in &identified.differences {
        if diffs
            .iter()
            .any(|d| matches!(d.mismatch, Mismatch::ThroughLink { .. }))
        {
            why_not.push(format!(
                "the installed tree reaches some of {version}'s entries through a symbolic link"
            ));
            continue;
        }
        let changed = diffs
            .iter()
            .filter(|d| content_differs(&d.mismatch))
            .map(|d| (&d.path, d.mismatch.clone()));
        if *version == manifest.version {
            match file_steps(artifact, changed) {
                Ok(files) => {
                    let mended = diffs.len() - files.len();
                    let bytes = plan::total_bytes(files.iter().map(|f| f.file.size));
                    let reason = format!(
                        "the newest release is installed but for {} entr{}: {} file{} fetched \
                         whole ({bytes} bytes) and {mended} mended in place, against a full \
                         image of {full_size} bytes",
                        diffs.len(),
                        if diffs.len() == 1 { "y" } else { "ies" },
                        files.len(),
                        if files.len() == 1 { "" } else { "s" },
                    );
                    routes.push((
                        Route::Repair {
                            files,
                            mended,
                            differences: diffs.clone(),
                        },
                        reason,
                    ));
                }
                Err(why) => why_not.push(why),
            }
            continue;
        }
        let Some(entry) = artifact.patches.iter().find(|p| p.base_version == *version) else {
            continue;
        };
        if entry.apply_memory > policy.max_apply_memory {
            why_not.push(format!(
                "the tree patch from {version} needs more memory than allowed"
            ));
            continue;
        }
        match file_steps(artifact, changed) {
            Ok(files) => {
                let patch = Step {
                    to_version: manifest.version.clone(),
                    from_version: Some(version.clone()),
                    path: entry.path.clone(),
                    file: FileId {
                        size: entry.size,
                        sha256: entry.sha256,
                    },
                    method: PatchKind::Tree,
                    base: Some(FileId {
                        size: entry.base_size,
                        sha256: entry.base_sha256,
                    }),
                    target: FileId {
                        size: artifact.size,
                        sha256: artifact.sha256,
                    },
                    apply_memory: entry.apply_memory,
                };
                let bytes = plan::total_bytes(files.iter().map(|f| f.file.size));
                let reason = if files.is_empty() && diffs.is_empty() {
                    format!(
                        "the tree patch from {version} is {} bytes, the full image {full_size}",
                        entry.size
                    )
                } else {
                    format!(
                        "the tree patch from {version} ({} bytes) with {} file{} that differ from \
                         {version} fetched whole ({bytes} bytes), against a full image of \
                         {full_size} bytes",
                        entry.size,
                        files.len(),
                        if files.len() == 1 { "" } else { "s" },
                    )
                };
                routes.push((
                    Route::TreePatch {
                        patch,
                        files,
                        differences: diffs.clone(),
                    },
                    reason,
                ));
            }
            Err(why) => why_not.push(why),
        }
    }
    routes.sort_by_key(|(r, _)| r.download_size());
    let cheapest_patch = routes.first().map(|(r, _)| r.download_size());
    let full_fits_memory = full.apply_memory <= policy.max_apply_memory;
    let why = match &identified.installed {
        Installed::Missing => "nothing is installed".to_string(),
        _ if routes.is_empty() && why_not.is_empty() => {
            "no tree patch leads from the installed tree".to_string()
        }
        _ if routes.is_empty() => why_not.join("; "),
        _ => String::new(),
    };
    let full_route = |reason: String| (Route::Full(full.clone()), reason);
    let mut candidates = Vec::new();
    match policy.full_image {
        FullImage::Prefer if full_fits_memory => {
            candidates.push(full_route(format!(
                "the full image was asked for; it is {full_size} bytes"
            )));
            candidates.extend(routes);
        }
        FullImage::Never => {
            if routes.is_empty() {
                return Err(PlanError::FullForbidden { why });
            }
            candidates.extend(routes);
        }
        _ if !full_fits_memory => {
            if routes.is_empty() {
                return Err(PlanError::Memory {
                    needed: full.apply_memory,
                    limit: policy.max_apply_memory,
                    why,
                });
            }
            candidates.extend(routes);
        }
        _ => {
            let (cheaper, dearer): (Vec<_>, Vec<_>) = routes
                .into_iter()
                .partition(|(r, _)| r.download_size() <= full_size);
            candidates.extend(cheaper);
            candidates.push(full_route(if why.is_empty() {
                format!("the full image ({full_size} bytes) is smaller than any tree patch route")
            } else {
                format!("{why}; the full image is {full_size} bytes")
            }));
            candidates.extend(dearer);
        }
    }
    plan::choose(candidates, policy, full_size, cheapest_patch)
}

/// The paths of the tree patch's new files whose recipe reads an old entry that
/// differs on disk: those must be fetched whole.
pub(crate) fn files_needing_content(
    patch: &TreePatch,
    differences: &[Difference],
) -> BTreeMap<TreePath, Mismatch> {
    let differing: BTreeMap<&TreePath, &Mismatch> = differences
        .iter()
        .filter(|d| content_differs(&d.mismatch))
        .map(|d| (&d.path, &d.mismatch))
        .collect();
    let index = patch.index();
    let mut out = BTreeMap::new();
    for entry in index.new.entries() {
        let EntryKind::File { recipe, .. } = entry.kind else {
            continue;
        };
        let Some(from) = recipe.from() else {
            continue;
        };
        let old = &index.old.entries()[from].path;
        if let Some(why) = differing.get(old) {
            out.insert(entry.path.clone(), (*why).clone());
        }
    }
    out
}

/// Where a file fetched whole is decoded before the tree applier takes it.
pub(crate) fn decoded_path(cache: &Path, file: &FileStep) -> PathBuf {
    cache.join(format!("{}.file", file.target.sha256))
}

impl super::Run<'_, '_> {
    /// Opens a fetched tree patch and checks it is the one the manifest lists.
    fn open_tree(&mut self, path: &Path, step: &Step) -> Result<TreePatch, UpdateError> {
        let limits = self.limits();
        let events = &mut *self.events;
        let patch = TreePatch::open(path, &limits, Some(&self.trusted), &mut |p| {
            events(Event::Apply {
                step: 0,
                steps: 1,
                phase: p.phase,
                done: p.done,
                total: p.total,
            })
        })?;
        let header = patch.header();
        let problem = if header.target != step.target {
            Some("it makes another tree than the manifest says")
        } else if header.source().or(step
            .base
            .map(|_| deltaapply_apply::tree::TreeIndex::empty_id()))
            != step.base
        {
            Some("it applies to another tree than the manifest says")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(UpdateError::Mismatch {
                path: path.to_path_buf(),
                problem: problem.into(),
            });
        }
        Ok(patch)
    }

    /// Applies an opened tree patch to `target` (in place when it exists).
    fn apply_tree(
        &mut self,
        patch: &TreePatch,
        target: &Path,
        substitutes: &BTreeMap<TreePath, PathBuf>,
        drop: Option<&Listing>,
    ) -> Result<(), UpdateError> {
        let exists = fs::symlink_metadata(target).is_ok();
        // A full tree image over an installed tree takes over the release's paths.
        let replace_unlisted = exists && patch.index().old.entries().is_empty();
        let limits = self.limits();
        let events = &mut *self.events;
        deltaapply_apply::tree::apply::apply_tree_unlocked(
            &deltaapply_apply::tree::apply::TreeApply {
                patch,
                old: exists.then_some(target),
                dest: target,
                substitutes,
                limits,
                replace_unlisted,
                drop,
            },
            &mut |p| events(write_event(p)),
        )?;
        Ok(())
    }

    /// The full tree image: applied over the installed tree, or as a new directory.
    /// Over a tree identified as (close to) an older release, that release's files the
    /// new one drops are removed in the same journaled commit, unless they were
    /// modified.
    pub(super) fn full_tree(
        &mut self,
        step: &Step,
        target: &Path,
        installed: &Installed,
        manifest: &Manifest,
    ) -> Result<(), UpdateError> {
        let dropped = match installed {
            Installed::Release { version, .. } | Installed::Tree { version, .. } => {
                releases(manifest, &step_artifact(manifest, step))?
                    .into_iter()
                    .find(|r| r.version == *version)
                    .map(|r| r.listing)
            }
            _ => None,
        };
        let fetched = self.fetch(0, 1, step)?;
        let result = self
            .open_tree(&fetched.path, step)
            .and_then(|patch| self.apply_tree(&patch, target, &BTreeMap::new(), dropped.as_ref()));
        self.discard(&fetched);
        result
    }

    /// A tree patch, with the files whose base differs on disk fetched whole.
    pub(super) fn tree_patch(
        &mut self,
        step: &Step,
        differences: &[Difference],
        check: &super::Check,
        artifact: &Artifact,
    ) -> Result<(), UpdateError> {
        let fetched = self.fetch(0, 1, step)?;
        let result = (|| {
            let patch = self.open_tree(&fetched.path, step)?;
            let needed = files_needing_content(&patch, differences);
            let files = file_steps(artifact, needed.iter().map(|(p, m)| (p, m.clone()))).map_err(
                |why| UpdateError::Mismatch {
                    path: fetched.path.clone(),
                    problem: why,
                },
            )?;
            let total = plan::total_bytes(
                std::iter::once(step.file.size).chain(files.iter().map(|f| f.file.size)),
            );
            if let Some(limit) = self.updater.policy.max_download.filter(|&l| total > l) {
                return Err(UpdateError::Plan(PlanError::TooLarge {
                    needed: total,
                    limit,
                }));
            }
            let substitutes = self.fetch_whole(&files)?;
            let applied = self.apply_tree(&patch, &check.target, &substitutes, None);
            for path in substitutes.values() {
                let _ = fs::remove_file(path);
            }
            applied
        })();
        self.discard(&fetched);
        result
    }

    /// Fetches files whole and decodes each into the download directory.
    fn fetch_whole(
        &mut self,
        files: &[FileStep],
    ) -> Result<BTreeMap<TreePath, PathBuf>, UpdateError> {
        let mut out = BTreeMap::new();
        for (i, file) in files.iter().enumerate() {
            let step = Step {
                to_version: String::new(),
                from_version: None,
                path: file.publish_path.clone(),
                file: file.file,
                method: PatchKind::File(deltaapply_format::Method::Full),
                base: None,
                target: file.target,
                apply_memory: 0,
            };
            let fetched = self.fetch(i, files.len(), &step)?;
            let dest = decoded_path(self.cache, file);
            let applied = deltaapply_apply::Patch::open(&fetched.path).and_then(|patch| {
                deltaapply_apply::apply_unlocked(
                    None,
                    &patch,
                    &dest,
                    &self.limits(),
                    Some(&self.trusted),
                    &mut |_| {},
                )
            });
            self.discard(&fetched);
            let report = applied?;
            if report.target != file.target {
                let _ = fs::remove_file(&dest);
                return Err(UpdateError::Mismatch {
                    path: fetched.path,
                    problem: format!(
                        "it holds another file than {} of the newest tree",
                        file.path
                    ),
                });
            }
            out.insert(file.path.clone(), dest);
        }
        Ok(out)
    }

    /// Brings a tree that is the newest release but for some entries to it exactly: the
    /// files that differ are fetched whole, then the tree applier puts them in place and
    /// mends directories, links and modes in one checked, staged and journaled commit
    /// ([`deltaapply_apply::tree::apply::repair_tree`]), so an interrupted repair is finished by the
    /// next run.
    pub(super) fn repair(
        &mut self,
        files: &[FileStep],
        check: &super::Check,
        artifact: &Artifact,
    ) -> Result<(), UpdateError> {
        let listing = artifact
            .listing()
            .expect("a tree artifact")
            .map_err(|source| UpdateError::Manifest {
                mirror: check.manifest_from.clone(),
                source,
            })?;
        let substitutes = self.fetch_whole(files)?;
        let events = &mut *self.events;
        let repaired = deltaapply_apply::tree::apply::repair_tree_unlocked(
            &deltaapply_apply::tree::apply::TreeRepair {
                root: &check.target,
                listing: &listing,
                files: &substitutes,
            },
            &mut |p| events(write_event(p)),
        );
        for path in substitutes.values() {
            let _ = fs::remove_file(path);
        }
        repaired?;
        Ok(())
    }
}

/// A tree applier's progress as the update's write phase of its one step.
fn write_event(p: deltaapply_apply::tree::TreeProgress) -> Event<'static> {
    Event::Apply {
        step: 0,
        steps: 1,
        phase: deltaapply_apply::Phase::Write,
        done: p.done,
        total: p.total,
    }
}

/// The name of the artifact whose full image `step` is.
fn step_artifact(manifest: &Manifest, step: &Step) -> String {
    manifest
        .artifacts
        .iter()
        .find(|a| a.full.path == step.path)
        .map(|a| a.name.clone())
        .unwrap_or_default()
}
