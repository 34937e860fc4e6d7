//! Out-of-place updates: the whole new tree built in a staging directory beside the
//! destination, then renamed to it in one step.

use std::fs;
use std::path::Path;

use super::disk::{Disk, beside, disk, remove_stale, set_mode, symlink, sync_parent};
use super::error::{Result, TreeApplyError, io_err};
use super::job::Job;
use super::make::{make_file, make_of};
use super::steps::Steps;
use super::{TreePhase, TreeProgress, TreeReport};
use crate::container::FileId;
use crate::tree::format::EntryKind;
use crate::tree::journal::sync_dir;

pub(super) fn out_of_place(
    job: &Job<'_>,
    report: &mut TreeReport,
    steps: &mut Steps,
    progress: &mut dyn FnMut(TreeProgress),
) -> Result<()> {
    let dest = job.dest;
    if disk(dest)? != Disk::Missing {
        return Err(TreeApplyError::DestExists {
            path: dest.to_path_buf(),
        });
    }
    let stage = beside(dest, "stage")?;
    remove_stale(&stage)?;
    // It becomes the new tree's root (with the usual mode for a new directory), and is
    // never resumed from: not private like an in-place staging directory.
    fs::create_dir(&stage).map_err(io_err("create", &stage))?;
    let result = build(job, &stage, report, steps, progress);
    if result.is_err() {
        let _ = fs::remove_dir_all(&stage);
        return result;
    }
    // Directories get their modes last (a read-only one would refuse its files) and
    // are synced children first, so every entry is durable before the rename.
    for entry in job.new.entries().iter().rev() {
        if entry.kind == EntryKind::Dir {
            let path = entry.path.under(&stage);
            set_mode(&path, entry.mode)?;
            sync_dir(&path).map_err(io_err("sync", &path))?;
        }
    }
    sync_dir(&stage).map_err(io_err("sync", &stage))?;
    fs::rename(&stage, dest).map_err(io_err("rename the new tree to", dest))?;
    sync_parent(dest)?;
    steps.step();
    Ok(())
}

fn build(
    job: &Job<'_>,
    stage: &Path,
    report: &mut TreeReport,
    steps: &mut Steps,
    progress: &mut dyn FnMut(TreeProgress),
) -> Result<()> {
    let total = job.new.file_count() as u64;
    let mut done = 0;
    for entry in job.new.entries() {
        let path = entry.path.under(stage);
        match &entry.kind {
            EntryKind::Dir => fs::create_dir(&path).map_err(io_err("create", &path))?,
            EntryKind::Symlink { target } => symlink(target, &path)?,
            &EntryKind::File {
                size,
                sha256,
                recipe,
            } => {
                let file = (entry, FileId { size, sha256 });
                make_file(job, file, make_of(job, entry, recipe), &path, report)?;
                done += 1;
                progress(TreeProgress {
                    phase: TreePhase::Stage,
                    done,
                    total,
                });
                steps.step();
            }
        }
    }
    Ok(())
}
