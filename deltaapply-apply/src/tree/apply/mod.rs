//! Applying a verified tree patch ([`TreePatch`]) to a directory.
//!
//! **Out of place** (`dest` is not the old tree and does not exist): the whole new tree
//! is built in `PARENT/.NAME.deltaapply-stage/` beside `dest`, every file checked
//! against its SHA-256 while it is written, files and directories synced, then the
//! staging directory is renamed to `dest` in one step.
//!
//! **In place** (`dest` is the old tree), crash-safe and resumable:
//!
//! 1. *Check*: every path the update touches is checked on disk before anything is
//!    written: no existing parent below the root may be a symbolic link or a file,
//!    and nothing outside the old listing (a file the user added) may sit where the
//!    new tree needs something else.
//! 2. *Stage*: unchanged files are hashed where they are; every new or changed file
//!    (copied from another path, patched, unpacked, or taken from a substitute) is
//!    written into `PARENT/.NAME.deltaapply-stage/fN` (N: its index in the new
//!    listing), hashed, given its mode and synced. The tree is not touched: a crash
//!    leaves the old tree, and the next run removes the stale staging directory and
//!    starts again.
//! 3. *Journal*: `PARENT/.NAME.deltaapply-journal` ([`super::journal`]) records the
//!    patch's identity and every commit operation, written atomically.
//! 4. *Commit*: the operations, each idempotent, in order: delete old paths the new
//!    tree lacks (directories only when empty, so files the user added keep theirs),
//!    create directories, rename staged files into place, create links, set modes.
//! 5. *Clean up*: remove the staging directory, then the journal.
//!
//! A run that finds a journal for the same patch goes straight to the commit, once the
//! journal is found to be the applier's own and every operation one the patch's new
//! listing allows ([`Journal::check_against`]), and hashes each staged file before
//! renaming it in; a journal for another patch is refused. Repairs ([`repair_tree`])
//! and the removal of an older release's dropped files ([`TreeApply::drop`]) are
//! planned and committed the same way, so every change to an installed tree is made
//! here. Renames replace a link in the final
//! component instead of following it, and every write, rename or delete first checks
//! that the path's parents are real directories.
//!
//! **Durable steps and crash testing**: each staged file, the journal write, each
//! commit operation, the removal of the staging directory and that of the journal
//! (in place), or each file and the final rename (out of place) is one durable step,
//! numbered from 1 in that order within one process. In a build with the test-only
//! `crash-hook` feature, the environment variable `DELTAAPPLY_CRASH_AT=N` makes the
//! process abort right after step N, which is how the tests prove every interruption
//! is recoverable; a build without it (every build that ships) never reads it.

mod disk;
mod error;
mod in_place;
mod job;
mod make;
mod out_of_place;
mod steps;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::apply::Limits;
use crate::container::FileId;
use crate::digest::Sha256Digest;
use crate::lock::TargetLock;
use crate::signature::Origin;
use crate::tree::format::Listing;
use crate::tree::journal::{self, Journal};
use crate::tree::patch::TreePatch;
use crate::tree::path::TreePath;

use disk::beside;
pub use error::TreeApplyError;
use error::{Result, io_err};
use in_place::{Commit, InPlace};
use job::Job;
use out_of_place::out_of_place;
pub use steps::CRASH_ENV;
use steps::Steps;

/// What to apply where.
#[derive(Debug, Clone, Copy)]
pub struct TreeApply<'a> {
    /// The opened, verified tree patch.
    pub patch: &'a TreePatch,
    /// The old tree (`None` for a full tree image).
    pub old: Option<&'a Path>,
    /// Where the new tree goes: the old tree itself (in place), or a path that does not
    /// exist yet.
    pub dest: &'a Path,
    /// New-tree files to take from local files that already hold their new content
    /// instead of making them from the patch (their hash is still checked).
    pub substitutes: &'a BTreeMap<TreePath, PathBuf>,
    /// Limits for the embedded file patches.
    pub limits: Limits,
    /// In place: replace files and links at the new tree's paths that the old listing
    /// does not have, instead of refusing them as the user's. For a full tree image
    /// applied over an installed tree whose state is unknown, where the release's paths
    /// are the release's. A directory where the new tree has a file or link is still
    /// refused.
    pub replace_unlisted: bool,
    /// In place: an older release's listing whose entries the new tree lacks are
    /// removed in the same journaled commit when they are still as it lists them (a
    /// modified file is the user's now and stays; directories only when left empty;
    /// nothing below a link). For a full tree image applied over a tree identified as
    /// that release.
    pub drop: Option<&'a Listing>,
}

/// A repair: bring the tree at `root`, which is the release `listing` describes but
/// for some entries, to it exactly, through the same checked, staged and journaled
/// commit as a tree patch. Every file of the listing is either left where it is (and
/// hashed: it must already hold its content) or taken from `files`; missing
/// directories are made, links and modes mended.
#[derive(Debug, Clone, Copy)]
pub struct TreeRepair<'a> {
    /// The installed tree.
    pub root: &'a Path,
    /// The release it must become, from a verified manifest.
    pub listing: &'a Listing,
    /// Local files holding the new content of the listing's files that differ on disk
    /// (each hash-checked against the listing).
    pub files: &'a BTreeMap<TreePath, PathBuf>,
}

/// Which part of a tree update a [`TreeProgress`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TreePhase {
    /// Checking unchanged files and making new ones (counted in files).
    Stage,
    /// Committing operations to the tree (counted in operations).
    Commit,
}

/// A progress report: `done` of `total` items of `phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeProgress {
    /// The current part.
    pub phase: TreePhase,
    /// Items done.
    pub done: u64,
    /// Items in all.
    pub total: u64,
}

/// What a tree update did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TreeReport {
    /// The tree written.
    pub dest: PathBuf,
    /// Whether it was updated in place.
    pub in_place: bool,
    /// Whether the tree already was the new tree, so nothing was done.
    pub up_to_date: bool,
    /// Whether an interrupted in-place update was finished from its journal (the
    /// counts below are then those of the journal's operations).
    pub resumed: bool,
    /// The old tree's identity (`None` for a full tree image).
    pub source: Option<FileId>,
    /// The new tree's identity.
    pub target: FileId,
    /// Who signed the patch, as far as the trusted keys given could tell.
    pub origin: Origin,
    /// Files written (all kinds below except unchanged files left in place).
    pub written: u64,
    /// Files copied from another path of the old tree.
    pub copied: u64,
    /// Files made by patching an old file.
    pub patched: u64,
    /// Files unpacked from a full image in the patch.
    pub full: u64,
    /// Files taken from a substitute.
    pub substituted: u64,
    /// Old files, links and directories removed.
    pub deleted: u64,
    /// Files whose content did not change (checked in place, or copied out of place).
    pub unchanged: u64,
    /// Bytes written to files.
    pub bytes: u64,
    /// Durable steps taken by this run (see the module documentation).
    pub steps: u64,
}

impl TreeReport {
    /// A report with nothing done yet.
    fn starting(
        dest: &Path,
        in_place: bool,
        source: Option<FileId>,
        target: FileId,
        origin: Origin,
    ) -> TreeReport {
        TreeReport {
            dest: dest.to_path_buf(),
            in_place,
            up_to_date: false,
            resumed: false,
            source,
            target,
            origin,
            written: 0,
            copied: 0,
            patched: 0,
            full: 0,
            substituted: 0,
            deleted: 0,
            unchanged: 0,
            bytes: 0,
            steps: 0,
        }
    }
}

/// Applies a tree patch, out of place or in place (see the module documentation).
/// On an error before the commit the destination is untouched; an in-place update
/// interrupted during the commit is finished by running it again.
pub fn apply_tree(
    req: &TreeApply<'_>,
    progress: &mut dyn FnMut(TreeProgress),
) -> std::result::Result<TreeReport, TreeApplyError> {
    let _lock = TargetLock::acquire(req.dest)?;
    apply_tree_unlocked(req, progress)
}

/// [`apply_tree`] for a caller that holds the tree's [`TargetLock`] already.
pub fn apply_tree_unlocked(
    req: &TreeApply<'_>,
    progress: &mut dyn FnMut(TreeProgress),
) -> std::result::Result<TreeReport, TreeApplyError> {
    let index = req.patch.index();
    if req.old.is_none() && !index.old.entries().is_empty() {
        return Err(TreeApplyError::MissingOld {
            patch: req.patch.path().to_path_buf(),
        });
    }
    let job = Job::of_patch(req);
    let in_place = match req.old {
        Some(old) => {
            old == req.dest
                || matches!(
                    (fs::canonicalize(old), fs::canonicalize(req.dest)),
                    (Ok(a), Ok(b)) if a == b
                )
        }
        None => false,
    };
    let header = req.patch.header();
    let mut report = TreeReport::starting(
        req.dest,
        in_place,
        header.source(),
        header.target,
        req.patch.origin(),
    );
    let mut steps = Steps::new();
    if in_place {
        InPlace::new(&job)?.run(&mut report, &mut steps, progress)?;
    } else {
        out_of_place(&job, &mut report, &mut steps, progress)?;
    }
    report.steps = steps.done;
    Ok(report)
}

/// Repairs a tree in place (see [`TreeRepair`]): checked, staged, journaled and
/// committed exactly as a tree patch is, so an interrupted repair is finished by
/// [`finish_pending`] or by running it again.
pub fn repair_tree(
    req: &TreeRepair<'_>,
    progress: &mut dyn FnMut(TreeProgress),
) -> std::result::Result<TreeReport, TreeApplyError> {
    let _lock = TargetLock::acquire(req.root)?;
    repair_tree_unlocked(req, progress)
}

/// [`repair_tree`] for a caller that holds the tree's [`TargetLock`] already.
pub fn repair_tree_unlocked(
    req: &TreeRepair<'_>,
    progress: &mut dyn FnMut(TreeProgress),
) -> std::result::Result<TreeReport, TreeApplyError> {
    let job = Job::of_repair(req);
    let id = req.listing.id();
    let mut report = TreeReport::starting(
        req.root,
        true,
        Some(id),
        id,
        Origin::Unverified { signed_by: None },
    );
    let mut steps = Steps::new();
    InPlace::new(&job)?.run(&mut report, &mut steps, progress)?;
    report.steps = steps.done;
    Ok(report)
}

/// Finishes an in-place update of `dest` that was interrupted after its journal was
/// written, from the journal and the staged files (no patch needed). Returns `None`
/// when there is no journal. The journal is trusted only as far as it can be
/// checked: it must be the applier's own (a regular file owned by this user, writable
/// by no one else), its `new` digest must be that of one of `releases` (listings from
/// a verified manifest), and every operation must be one an update to that listing has
/// ([`Journal::check_against`]); each staged file is hashed before it is renamed into
/// place. An updater calls this before it looks at the tree, so that a tree left
/// half-switched by a power cut is finished first instead of taken for a modified one.
pub fn finish_pending(
    dest: &Path,
    releases: &[Listing],
    progress: &mut dyn FnMut(TreeProgress),
) -> std::result::Result<Option<TreeReport>, TreeApplyError> {
    let _lock = TargetLock::acquire(dest)?;
    finish_pending_unlocked(dest, releases, progress)
}

/// [`finish_pending`] for a caller that holds the tree's [`TargetLock`] already.
pub fn finish_pending_unlocked(
    dest: &Path,
    releases: &[Listing],
    progress: &mut dyn FnMut(TreeProgress),
) -> std::result::Result<Option<TreeReport>, TreeApplyError> {
    let Ok(root) = fs::canonicalize(dest) else {
        return Ok(None);
    };
    let journal_path = beside(&root, "journal")?;
    let Some(journal) = read_journal(&journal_path)? else {
        return Ok(None);
    };
    let new = releases
        .iter()
        .find(|l| l.id().sha256 == journal.new)
        .ok_or_else(|| TreeApplyError::UntrustedJournal {
            journal: journal_path.clone(),
            problem: format!(
                "it is for a tree {} that no release of the manifest has",
                journal.new
            ),
        })?;
    check_journal(&journal_path, &journal, new)?;
    let place = Commit {
        new: in_place::NewTree::Release(new),
        stage: beside(&root, "stage")?,
        journal: journal_path,
        root: root.clone(),
    };
    let mut report = TreeReport::starting(
        &root,
        true,
        None,
        FileId {
            size: 0,
            sha256: journal.new,
        },
        Origin::Unverified { signed_by: None },
    );
    report.resumed = true;
    let mut steps = Steps::new();
    place.finish(&journal, &mut report, &mut steps, progress)?;
    report.steps = steps.done;
    Ok(Some(report))
}

/// Names an update as [`TreeApplyError::OtherJournal`] shows it.
fn describe_update(patch: Option<Sha256Digest>, new: Sha256Digest) -> String {
    match patch {
        Some(p) => format!("patch payload {p}"),
        None => format!("a repair to tree {new}"),
    }
}

/// Reads and decodes the journal at `path` (`None`: there is none), refusing one that
/// is not the applier's own.
fn read_journal(path: &Path) -> Result<Option<Journal>> {
    let text = match journal::read(path) {
        Ok(Some(text)) => text,
        Ok(None) => return Ok(None),
        Err(journal::ReadError::Io(e)) => return Err(io_err("read", path)(e)),
        Err(journal::ReadError::Refused(problem)) => {
            return Err(TreeApplyError::UntrustedJournal {
                journal: path.to_path_buf(),
                problem,
            });
        }
    };
    Journal::decode(&text)
        .map(Some)
        .map_err(|problem| TreeApplyError::BadJournal {
            journal: path.to_path_buf(),
            problem,
        })
}

/// Checks a journal's operations against the trusted new listing.
fn check_journal<R>(path: &Path, journal: &Journal, new: &Listing<R>) -> Result<()> {
    journal
        .check_against(new)
        .map_err(|problem| TreeApplyError::UntrustedJournal {
            journal: path.to_path_buf(),
            problem,
        })
}
