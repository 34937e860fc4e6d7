//! Making one file of the new tree from its recipe: copied, patched, unpacked or
//! taken from a substitute, checked against its hash and synced.

use std::fs::{self, File};
use std::path::Path;

use super::TreeReport;
use super::disk::{Disk, check_parents, disk, disk_name, hash_copy, mismatch, set_mode_of};
use super::error::{Result, TreeApplyError, io_err};
use super::job::Job;
use crate::Error;
use crate::apply::apply_unlocked;
use crate::container::FileId;
use crate::tree::format::{Entry, Recipe};
use crate::tree::patch::TreePatch;

/// How one file of the new tree is made.
#[derive(Debug, Clone, Copy)]
pub(super) enum Make<'a> {
    /// Copied from an old file (the same path when unchanged).
    Copy(&'a Entry),
    /// An old file patched by blob `k`.
    Patch(&'a Entry, usize),
    /// Blob `k` unpacked.
    Full(usize),
    /// A substitute file.
    Substitute(&'a Path),
}

pub(super) fn make_of<'a>(job: &Job<'a>, entry: &Entry<Recipe>, recipe: Recipe) -> Make<'a> {
    let old = job.old.entries();
    if let Some(sub) = job.substitutes.get(&entry.path) {
        return Make::Substitute(sub);
    }
    match recipe {
        Recipe::Copy { from } => Make::Copy(&old[from]),
        Recipe::Patch { from, blob } => Make::Patch(&old[from], blob),
        Recipe::Full { blob } => Make::Full(blob),
    }
}

/// Writes `entry` (a file of content `target`) to `dst` with its mode, made as
/// `make` says, checked against its hash and synced; counts it in `report`.
pub(super) fn make_file(
    job: &Job<'_>,
    (entry, target): (&Entry<Recipe>, FileId),
    make: Make<'_>,
    dst: &Path,
    report: &mut TreeReport,
) -> Result<()> {
    let old_root = job.old_root.unwrap_or(Path::new("."));
    let copy = |src: &Path| -> Result<Option<String>> {
        let found = mismatch(hash_copy(src, Some((dst, entry.mode)))?, target);
        if found.is_some() {
            let _ = fs::remove_file(dst);
        }
        Ok(found)
    };
    match make {
        Make::Substitute(sub) => {
            if let Some(found) = copy(sub)? {
                return Err(TreeApplyError::BadSubstitute {
                    entry: entry.path.clone(),
                    path: sub.to_path_buf(),
                    expected: target,
                    found,
                });
            }
            report.substituted += 1;
        }
        Make::Copy(from) => {
            check_parents(old_root, &from.path)?;
            let src = from.path.under(old_root);
            if let Some(found) = copy(&src)? {
                return Err(TreeApplyError::WrongBase {
                    path: src,
                    expected: target,
                    found,
                });
            }
            if from.path == entry.path {
                report.unchanged += 1;
            } else {
                report.copied += 1;
            }
        }
        Make::Patch(from, k) => {
            check_parents(old_root, &from.path)?;
            let src = from.path.under(old_root);
            let expected = from.kind.file().expect("recipes read files");
            match disk(&src)? {
                Disk::File => {}
                other => {
                    return Err(TreeApplyError::WrongBase {
                        path: src,
                        expected,
                        found: disk_name(other).into(),
                    });
                }
            }
            let blob = blobs(job)
                .blob(k, Some(expected), target)
                .map_err(|source| entry_err(entry, source))?;
            apply_unlocked(Some(&src), &blob, dst, &job.limits, None, &mut |_| {})
                .map_err(|source| entry_err(entry, source))?;
            fix_mode(dst, entry.mode)?;
            report.patched += 1;
        }
        Make::Full(k) => {
            let blob = blobs(job)
                .blob(k, None, target)
                .map_err(|source| entry_err(entry, source))?;
            apply_unlocked(None, &blob, dst, &job.limits, None, &mut |_| {})
                .map_err(|source| entry_err(entry, source))?;
            fix_mode(dst, entry.mode)?;
            report.full += 1;
        }
    }
    report.written += 1;
    report.bytes += target.size;
    Ok(())
}

/// The patch whose blobs a recipe reads.
fn blobs<'a>(job: &Job<'a>) -> &'a TreePatch {
    job.patch
        .expect("a repair's recipes are copies, which read no blob")
}

fn entry_err(entry: &Entry<Recipe>, source: Error) -> TreeApplyError {
    TreeApplyError::Entry {
        entry: entry.path.clone(),
        source: Box::new(source),
    }
}

/// Gives a file apply_unlocked just wrote its exact mode, durably.
fn fix_mode(path: &Path, mode: u32) -> Result<()> {
    let f = File::open(path).map_err(io_err("open", path))?;
    set_mode_of(&f, path, mode)?;
    f.sync_all().map_err(io_err("sync", path))
}
