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

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::apply::{Limits, apply_unlocked};
use crate::container::FileId;
use crate::digest::{Hasher, Sha256Digest};
use crate::lock::{LockError, TargetLock};
use crate::signature::Origin;
use crate::tree::format::{Entry, EntryKind, Listing, Recipe};
use crate::tree::journal::{self, Journal, Op, sync_dir};
use crate::tree::patch::TreePatch;
use crate::tree::path::TreePath;
use crate::{Error, exit};

/// The environment variable that makes the process abort after a durable step, read
/// only in builds with the test-only `crash-hook` feature.
pub const CRASH_ENV: &str = "DELTAAPPLY_CRASH_AT";

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

/// One update of a tree, whatever asked for it (a tree patch, a full tree image, a
/// repair): the listings, how each new file is made, and the options.
struct Job<'a> {
    /// Where blobs come from (`None` for a repair, whose files are copies or
    /// substitutes only).
    patch: Option<&'a TreePatch>,
    /// The tree patch's payload digest, recorded in the journal (`None`: a repair).
    id: Option<Sha256Digest>,
    old: &'a Listing,
    new: &'a Listing,
    /// A recipe for each new entry that is a file.
    recipes: Cow<'a, [Option<Recipe>]>,
    old_root: Option<&'a Path>,
    dest: &'a Path,
    substitutes: &'a BTreeMap<TreePath, PathBuf>,
    limits: Limits,
    replace_unlisted: bool,
    drop: Option<&'a Listing>,
}

impl<'a> Job<'a> {
    fn of_patch(req: &TreeApply<'a>) -> Job<'a> {
        let index = req.patch.index();
        Job {
            patch: Some(req.patch),
            id: Some(req.patch.header().payload.sha256),
            old: &index.old,
            new: &index.new,
            recipes: Cow::Borrowed(&index.recipes),
            old_root: req.old,
            dest: req.dest,
            substitutes: req.substitutes,
            limits: req.limits,
            replace_unlisted: req.replace_unlisted,
            drop: req.drop,
        }
    }

    fn of_repair(req: &TreeRepair<'a>) -> Job<'a> {
        let recipes = req
            .listing
            .entries()
            .iter()
            .enumerate()
            .map(|(from, e)| e.kind.file().map(|_| Recipe::Copy { from }))
            .collect();
        Job {
            patch: None,
            id: None,
            old: req.listing,
            new: req.listing,
            recipes: Cow::Owned(recipes),
            old_root: Some(req.root),
            dest: req.root,
            substitutes: req.files,
            limits: Limits::default(),
            replace_unlisted: false,
            drop: None,
        }
    }
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

/// Why a tree update failed. Each names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum TreeApplyError {
    /// Opening or applying one of the patch's files failed.
    #[error("cannot make {entry} of the new tree")]
    Entry {
        /// The new tree's file.
        entry: TreePath,
        /// Why (boxed: it is the largest variant by far).
        #[source]
        source: Box<Error>,
    },
    /// An old file is missing or has other content than the old listing says.
    #[error(
        "{} is not the file this tree patch was made for: it should be {} bytes with sha256 {}, \
         it is {found}; apply a patch made for this tree, or the full tree image",
        path.display(), expected.size, expected.sha256
    )]
    WrongBase {
        /// The file on disk.
        path: PathBuf,
        /// What the old listing says.
        expected: FileId,
        /// What was found.
        found: String,
    },
    /// The patch needs an old tree and none was given.
    #[error("tree patch {} needs the old tree it was made from", patch.display())]
    MissingOld {
        /// The patch file.
        patch: PathBuf,
    },
    /// A substitute file does not hold the content the new tree needs.
    #[error(
        "substitute {} for {entry} should be {} bytes with sha256 {}, it is {found}; \
         download it again",
        path.display(), expected.size, expected.sha256
    )]
    BadSubstitute {
        /// The new tree's file.
        entry: TreePath,
        /// The substitute.
        path: PathBuf,
        /// What the new listing says.
        expected: FileId,
        /// What was found.
        found: String,
    },
    /// A path inside the tree leads through a symbolic link: writing there could
    /// change files outside the tree.
    #[error(
        "{} is a symbolic link where the tree has a directory; refusing to write through it \
         (nothing was changed): replace it with the directory it should be",
        path.display()
    )]
    ThroughSymlink {
        /// The link.
        path: PathBuf,
    },
    /// Something that is not part of the old release sits where the new tree needs
    /// something else.
    #[error("{} {problem}; nothing was changed: move it away and run again", path.display())]
    Conflict {
        /// The path on disk.
        path: PathBuf,
        /// What is in the way.
        problem: String,
    },
    /// The destination of an out-of-place update exists.
    #[error(
        "{} already exists: give a new directory for the new tree, or --in-place to update \
         the old one",
        path.display()
    )]
    DestExists {
        /// The destination.
        path: PathBuf,
    },
    /// A journal of another update is in the way.
    #[error(
        "{} belongs to another update ({found}, this one is {expected}): finish that update \
         by running it again, or restore the tree and delete the journal",
        journal.display()
    )]
    OtherJournal {
        /// The journal.
        journal: PathBuf,
        /// This update: its patch payload digest, or the tree a repair makes.
        expected: String,
        /// The journal's.
        found: String,
    },
    /// A journal that cannot be read as one.
    #[error("journal {} is damaged ({problem}); restore the tree and delete it", journal.display())]
    BadJournal {
        /// The journal.
        journal: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A journal found on disk that this applier may not act on: not its own (owner,
    /// permissions, kind), or with an operation the trusted new listing does not allow.
    #[error(
        "journal {} cannot be trusted ({problem}); nothing was changed by it: restore the \
         tree and delete the journal",
        journal.display()
    )]
    UntrustedJournal {
        /// The journal.
        journal: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// On resume, a staged file does not hold what the journal's (checked) operation
    /// says it should.
    #[error(
        "staged {} for {} should be {} bytes with sha256 {}, it is {found}; restore the \
         tree and apply again",
        staged.display(), path.display(), expected.size, expected.sha256
    )]
    StagedDamaged {
        /// The staged file.
        staged: PathBuf,
        /// Where it was to go.
        path: PathBuf,
        /// What it should hold.
        expected: FileId,
        /// What was found.
        found: String,
    },
    /// On resume, a staged file is gone and its destination does not hold it either.
    #[error(
        "{} should now hold {} bytes with sha256 {}, but it is {found} and its staged copy \
         is gone; restore the tree and apply again",
        path.display(), expected.size, expected.sha256
    )]
    StagedGone {
        /// The destination.
        path: PathBuf,
        /// What it should hold.
        expected: FileId,
        /// What was found.
        found: String,
    },
    /// Another applier holds the tree, or its lock cannot be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Reading or writing a file or directory failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl TreeApplyError {
    /// The `deltaapply` exit code for this error ([`crate::exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            TreeApplyError::Entry { source, .. } => source.exit_code(),
            TreeApplyError::WrongBase { .. } | TreeApplyError::MissingOld { .. } => {
                exit::WRONG_SOURCE
            }
            TreeApplyError::BadSubstitute { .. } => exit::BAD_PATCH,
            TreeApplyError::Lock(e) => e.exit_code(),
            _ => exit::FAILURE,
        }
    }
}

type Result<T> = std::result::Result<T, TreeApplyError>;

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> TreeApplyError {
    let path = path.to_path_buf();
    move |source| TreeApplyError::Io {
        action,
        path,
        source,
    }
}

/// Counts durable steps and aborts after the one `DELTAAPPLY_CRASH_AT` names.
struct Steps {
    done: u64,
    crash_at: Option<u64>,
}

impl Steps {
    fn new() -> Steps {
        // Never in a build as shipped: only the test suite turns the feature on.
        #[cfg(feature = "crash-hook")]
        let crash_at = std::env::var(CRASH_ENV).ok().and_then(|v| v.parse().ok());
        #[cfg(not(feature = "crash-hook"))]
        let crash_at = None;
        Steps { done: 0, crash_at }
    }

    fn step(&mut self) {
        self.done += 1;
        if self.crash_at == Some(self.done) {
            std::process::abort();
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
pub(crate) fn apply_tree_unlocked(
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
        header.source,
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
pub(crate) fn repair_tree_unlocked(
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
pub(crate) fn finish_pending_unlocked(
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
    let place = InPlace {
        job: None,
        new,
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
fn check_journal(path: &Path, journal: &Journal, new: &Listing) -> Result<()> {
    journal
        .check_against(new)
        .map_err(|problem| TreeApplyError::UntrustedJournal {
            journal: path.to_path_buf(),
            problem,
        })
}

/// Creates the staging directory, private to its owner.
fn create_stage(stage: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(stage).map_err(io_err("create", stage))
}

/// The staging directory and journal names beside `root`.
fn beside(root: &Path, suffix: &str) -> Result<PathBuf> {
    let name = root.file_name().ok_or_else(|| TreeApplyError::Conflict {
        path: root.to_path_buf(),
        problem: "has no name of its own to put a staging directory beside".into(),
    })?;
    let parent = match root.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok(parent.join(format!(".{}.deltaapply-{suffix}", name.to_string_lossy())))
}

/// Removes the staging directory of the tree `DIR/NAME` unless a journal says it is
/// still needed, and the journal's temporary file, which never is. Only called with
/// the tree's [`crate::lock::TargetLock`] held.
pub(crate) fn remove_stale_stage(
    dir: &Path,
    name: &str,
) -> std::result::Result<(), (PathBuf, io::Error)> {
    let journal = dir.join(format!(".{name}.deltaapply-journal"));
    let stage = dir.join(format!(".{name}.deltaapply-stage"));
    let remove = |path: &Path| match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(|e| (path.to_path_buf(), e)),
        Ok(_) => fs::remove_file(path).map_err(|e| (path.to_path_buf(), e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err((path.to_path_buf(), e)),
    };
    remove(&journal::temp_path(&journal))?;
    match fs::symlink_metadata(&journal) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => remove(&stage),
        Err(e) => Err((journal, e)),
        Ok(_) => Ok(()),
    }
}

/// Removes a stale staging directory (or whatever sits at its name).
fn remove_stale(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(io_err("remove", path)),
        Ok(_) => fs::remove_file(path).map_err(io_err("remove", path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("inspect", path)(e)),
    }
}

/// What is on disk at a path (without following a final link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disk {
    Missing,
    File,
    Dir,
    Link,
    Other,
}

fn disk(path: &Path) -> Result<Disk> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Ok(Disk::Link),
        Ok(m) if m.is_dir() => Ok(Disk::Dir),
        Ok(m) if m.is_file() => Ok(Disk::File),
        Ok(_) => Ok(Disk::Other),
        // Below a file that the commit replaces with a directory, nothing exists yet.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(Disk::Missing)
        }
        Err(e) => Err(io_err("inspect", path)(e)),
    }
}

/// Checks that every existing parent of `path` below `root` is a real directory.
fn check_parents(root: &Path, path: &TreePath) -> Result<()> {
    check_parents_but(root, path, &|_, _| false)
}

/// Like [`check_parents`], except that a parent for which `replaced(parent, found)`
/// says it is an old file or link that the commit deletes first is accepted.
fn check_parents_but(
    root: &Path,
    path: &TreePath,
    replaced: &dyn Fn(&str, Disk) -> bool,
) -> Result<()> {
    let components: Vec<&str> = path.components().collect();
    let mut at = root.to_path_buf();
    for (i, c) in components[..components.len() - 1].iter().enumerate() {
        at.push(c);
        let found = disk(&at)?;
        if found != Disk::Dir && replaced(&components[..=i].join("/"), found) {
            return Ok(());
        }
        match found {
            Disk::Dir => {}
            Disk::Missing => return Ok(()),
            Disk::Link => return Err(TreeApplyError::ThroughSymlink { path: at }),
            _ => {
                return Err(TreeApplyError::Conflict {
                    path: at,
                    problem: format!("is not a directory, but {path} is below it"),
                });
            }
        }
    }
    Ok(())
}

/// What [`hash_copy`] found, if it is not `expected`: `None` when the content matches,
/// else its description for an error message.
fn mismatch(
    found: std::result::Result<(u64, Sha256Digest), String>,
    expected: FileId,
) -> Option<String> {
    match found {
        Ok((size, sha)) if size == expected.size && sha == expected.sha256 => None,
        Ok((size, sha)) => Some(describe(size, sha, expected)),
        Err(what) => Some(what),
    }
}

fn describe(size: u64, sha256: Sha256Digest, expected: FileId) -> String {
    if size == expected.size {
        format!("{size} bytes with sha256 {sha256}")
    } else {
        format!("{size} bytes")
    }
}

/// Reads the regular file `src` (refusing a link or anything else), hashing it and
/// writing it to `dst` (created new, with `mode`) if given. Returns what it found:
/// `Ok((size, sha256))` or `Err(description)` if it is not a regular file.
fn hash_copy(
    src: &Path,
    dst: Option<(&Path, u32)>,
) -> Result<std::result::Result<(u64, Sha256Digest), String>> {
    match disk(src)? {
        Disk::File => {}
        Disk::Missing => return Ok(Err("missing".into())),
        Disk::Dir => return Ok(Err("a directory".into())),
        Disk::Link => return Ok(Err("a symbolic link".into())),
        Disk::Other => return Ok(Err("not a regular file".into())),
    }
    let mut input = File::open(src).map_err(io_err("read", src))?;
    let mut out = match dst {
        Some((path, mode)) => Some(create_new(path, mode)?),
        None => None,
    };
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 128 << 10];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("read", src)(e)),
        };
        hasher.update(&buf[..n]);
        if let (Some(f), Some((path, _))) = (&mut out, dst) {
            f.write_all(&buf[..n]).map_err(io_err("write", path))?;
        }
    }
    if let (Some(f), Some((path, _))) = (&out, dst) {
        f.sync_all().map_err(io_err("sync", path))?;
    }
    let size = hasher.len();
    Ok(Ok((size, hasher.finish())))
}

/// Creates a new file (never following or replacing anything) with exactly `mode`.
fn create_new(path: &Path, mode: u32) -> Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    let f = options.open(path).map_err(io_err("create", path))?;
    set_mode_of(&f, path, mode)?;
    Ok(f)
}

fn set_mode_of(f: &File, path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err("set the mode of", path))?;
    }
    #[cfg(not(unix))]
    let _ = (f, path, mode);
    Ok(())
}

/// Sets the mode of a path already checked to be a file or directory, never through
/// a link: the path is opened without following one (and without blocking on a fifo),
/// checked to be a file or directory, and the mode set on what was opened. Only a file
/// its owner may not read (which cannot be opened) is set by path, after checking once
/// more that it is no link.
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use rustix::fs::{Mode, OFlags};
        let err = |e: io::Error| io_err("set the mode of", path)(e);
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => {
                let stat = rustix::fs::fstat(&fd).map_err(|e| err(e.into()))?;
                let kind = rustix::fs::FileType::from_raw_mode(stat.st_mode);
                if !matches!(
                    kind,
                    rustix::fs::FileType::RegularFile | rustix::fs::FileType::Directory
                ) {
                    return Err(TreeApplyError::Conflict {
                        path: path.to_path_buf(),
                        problem: "is not a file or directory".into(),
                    });
                }
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|e| err(e.into()))?;
            }
            Err(rustix::io::Errno::ACCESS) if disk(path)? != Disk::Link => {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(err)?;
            }
            Err(rustix::io::Errno::LOOP) => {
                return Err(TreeApplyError::ThroughSymlink {
                    path: path.to_path_buf(),
                });
            }
            Err(e) => return Err(err(e.into())),
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

fn mode_of(path: &Path) -> Result<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let m = fs::symlink_metadata(path).map_err(io_err("inspect", path))?;
        Ok(m.permissions().mode() & crate::tree::format::MODE_MASK)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(0)
    }
}

fn symlink(target: &str, path: &Path) -> Result<()> {
    #[cfg(unix)]
    return std::os::unix::fs::symlink(target, path).map_err(io_err("create link", path));
    #[cfg(not(unix))]
    {
        let _ = target;
        Err(io_err("create link", path)(io::Error::new(
            io::ErrorKind::Unsupported,
            "symbolic links in trees are supported on Unix only",
        )))
    }
}

fn sync_parent(path: &Path) -> Result<()> {
    crate::stage::sync_parent(path).map_err(io_err("sync the directory of", path))
}

/// How one file of the new tree is made.
#[derive(Debug, Clone, Copy)]
enum Make<'a> {
    /// Copied from an old file (the same path when unchanged).
    Copy(&'a Entry),
    /// An old file patched by blob `k`.
    Patch(&'a Entry, usize),
    /// Blob `k` unpacked.
    Full(usize),
    /// A substitute file.
    Substitute(&'a Path),
}

fn make_of<'a>(job: &Job<'a>, entry: &Entry, recipe: Recipe) -> Make<'a> {
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

/// Writes `entry` (a file) to `dst` with its mode, made as `make` says, checked
/// against its hash and synced; counts it in `report`.
fn make_file(
    job: &Job<'_>,
    entry: &Entry,
    make: Make<'_>,
    dst: &Path,
    report: &mut TreeReport,
) -> Result<()> {
    let target = entry.kind.file().expect("a file entry");
    let old_root = job.old_root.unwrap_or(Path::new("."));
    match make {
        Make::Copy(_) | Make::Substitute(_) => {
            let src = match make {
                Make::Substitute(p) => p.to_path_buf(),
                Make::Copy(from) => {
                    check_parents(old_root, &from.path)?;
                    from.path.under(old_root)
                }
                _ => unreachable!(),
            };
            let found = mismatch(hash_copy(&src, Some((dst, entry.mode)))?, target);
            if let Some(found) = found {
                let _ = fs::remove_file(dst);
                return Err(match make {
                    Make::Substitute(_) => TreeApplyError::BadSubstitute {
                        entry: entry.path.clone(),
                        path: src,
                        expected: target,
                        found,
                    },
                    _ => TreeApplyError::WrongBase {
                        path: src,
                        expected: target,
                        found,
                    },
                });
            }
            match make {
                Make::Substitute(_) => report.substituted += 1,
                Make::Copy(from) if from.path == entry.path => report.unchanged += 1,
                _ => report.copied += 1,
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

fn entry_err(entry: &Entry, source: Error) -> TreeApplyError {
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

fn disk_name(d: Disk) -> &'static str {
    match d {
        Disk::Missing => "missing",
        Disk::File => "a file",
        Disk::Dir => "a directory",
        Disk::Link => "a symbolic link",
        Disk::Other => "not a regular file",
    }
}

fn out_of_place(
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
    for (entry, recipe) in job.new.entries().iter().zip(job.recipes.iter()) {
        let path = entry.path.under(stage);
        match (&entry.kind, recipe) {
            (EntryKind::Dir, _) => fs::create_dir(&path).map_err(io_err("create", &path))?,
            (EntryKind::Symlink { target }, _) => symlink(target, &path)?,
            (EntryKind::File { .. }, Some(recipe)) => {
                make_file(job, entry, make_of(job, entry, *recipe), &path, report)?;
                done += 1;
                progress(TreeProgress {
                    phase: TreePhase::Stage,
                    done,
                    total,
                });
                steps.step();
            }
            (EntryKind::File { .. }, None) => unreachable!("decode gives files a recipe"),
        }
    }
    Ok(())
}

/// An in-place update of `root`.
struct InPlace<'r, 'a> {
    /// The update; `None` when only finishing a journal ([`finish_pending`]).
    job: Option<&'r Job<'a>>,
    /// The trusted new listing every operation was checked against.
    new: &'r Listing,
    root: PathBuf,
    stage: PathBuf,
    journal: PathBuf,
}

impl<'r, 'a> InPlace<'r, 'a> {
    /// The update this run carries out.
    fn job(&self) -> &'r Job<'a> {
        self.job
            .expect("only finish_pending runs without an update, and it only commits")
    }

    fn new(job: &'r Job<'a>) -> Result<Self> {
        let root = fs::canonicalize(job.dest).map_err(io_err("open", job.dest))?;
        if disk(&root)? != Disk::Dir {
            return Err(TreeApplyError::Conflict {
                path: root,
                problem: "is not a directory".into(),
            });
        }
        Ok(InPlace {
            job: Some(job),
            new: job.new,
            stage: beside(&root, "stage")?,
            journal: beside(&root, "journal")?,
            root,
        })
    }

    fn run(
        &self,
        report: &mut TreeReport,
        steps: &mut Steps,
        progress: &mut dyn FnMut(TreeProgress),
    ) -> Result<()> {
        report.dest = self.root.clone();
        let job = self.job();
        let target = job.new.id();
        let journal = match read_journal(&self.journal)? {
            Some(j) => {
                if j.patch != job.id || j.new != target.sha256 {
                    return Err(TreeApplyError::OtherJournal {
                        journal: self.journal.clone(),
                        expected: describe_update(job.id, target.sha256),
                        found: describe_update(j.patch, j.new),
                    });
                }
                check_journal(&self.journal, &j, self.new)?;
                report.resumed = true;
                j
            }
            None => {
                let planned = self.plan();
                let staged = planned.and_then(|ops| {
                    remove_stale(&journal::temp_path(&self.journal))?;
                    remove_stale(&self.stage)?;
                    create_stage(&self.stage)?;
                    match self.stage_files(&ops, report, steps, progress) {
                        Ok(()) => Ok(ops),
                        Err(e) => {
                            let _ = fs::remove_dir_all(&self.stage);
                            Err(e)
                        }
                    }
                });
                let ops = match staged {
                    Ok(ops) => ops,
                    // Running an update that already finished (the last run stopped
                    // right after removing its journal, or the command was repeated)
                    // finds the new tree: nothing to do.
                    Err(
                        e @ (TreeApplyError::Conflict { .. }
                        | TreeApplyError::ThroughSymlink { .. }
                        | TreeApplyError::WrongBase { .. }
                        | TreeApplyError::Entry { .. }),
                    ) => {
                        if self.is_new_tree()? {
                            *report = TreeReport {
                                up_to_date: true,
                                written: 0,
                                copied: 0,
                                patched: 0,
                                full: 0,
                                substituted: 0,
                                deleted: 0,
                                unchanged: job.new.file_count() as u64,
                                bytes: 0,
                                ..report.clone()
                            };
                            return Ok(());
                        }
                        return Err(e);
                    }
                    Err(e) => return Err(e),
                };
                sync_dir(&self.stage).map_err(io_err("sync", &self.stage))?;
                let j = Journal {
                    patch: job.id,
                    old: job.old.id().sha256,
                    new: target.sha256,
                    ops,
                };
                j.write(&self.journal)
                    .map_err(io_err("write", &self.journal))?;
                steps.step();
                j
            }
        };
        self.finish(&journal, report, steps, progress)
    }

    /// Carries out a journal's operations, then removes the staging directory and the
    /// journal.
    fn finish(
        &self,
        journal: &Journal,
        report: &mut TreeReport,
        steps: &mut Steps,
        progress: &mut dyn FnMut(TreeProgress),
    ) -> Result<()> {
        if report.resumed {
            self.check_stage()?;
        }
        let total = journal.ops.len() as u64;
        for (i, op) in journal.ops.iter().enumerate() {
            self.commit(op, report)?;
            progress(TreeProgress {
                phase: TreePhase::Commit,
                done: i as u64 + 1,
                total,
            });
            steps.step();
        }
        remove_stale(&self.stage)?;
        sync_parent(&self.stage)?;
        steps.step();
        fs::remove_file(&self.journal).map_err(io_err("remove", &self.journal))?;
        sync_parent(&self.journal)?;
        steps.step();
        Ok(())
    }

    /// Checks that a staging directory left by another run is the applier's own (see
    /// [`journal::check_private`]) before anything in it is used.
    fn check_stage(&self) -> Result<()> {
        match fs::symlink_metadata(&self.stage) {
            Ok(meta) => journal::check_private(&meta, true).map_err(|problem| {
                TreeApplyError::UntrustedJournal {
                    journal: self.journal.clone(),
                    problem: format!("its staging directory {}: {problem}", self.stage.display()),
                }
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("inspect", &self.stage)(e)),
        }
    }

    /// Whether the tree on disk already is the new tree: every new entry in place
    /// with its kind, content, mode or target, and no old file or link the new tree
    /// lacks (old directories may stay for files the user added).
    fn is_new_tree(&self) -> Result<bool> {
        let job = self.job();
        for entry in job.new.entries() {
            check_parents(&self.root, &entry.path)?;
            let at = entry.path.under(&self.root);
            let found = disk(&at)?;
            let same = match &entry.kind {
                EntryKind::Dir => found == Disk::Dir && mode_of(&at)? == entry.mode,
                EntryKind::Symlink { target } => {
                    found == Disk::Link
                        && fs::read_link(&at).ok().as_deref() == Some(Path::new(target))
                }
                EntryKind::File { size, sha256 } => {
                    found == Disk::File
                        && mode_of(&at)? == entry.mode
                        && hash_copy(&at, None)? == Ok((*size, *sha256))
                }
            };
            if !same {
                return Ok(false);
            }
        }
        for entry in job.old.entries() {
            if job.new.get(&entry.path).is_some() {
                continue;
            }
            let found = disk(&entry.path.under(&self.root))?;
            let gone =
                found == Disk::Missing || (found == Disk::Dir && entry.kind == EntryKind::Dir);
            if !gone {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Checks the tree on disk and lists the commit operations. Writes nothing.
    fn plan(&self) -> Result<Vec<Op>> {
        let job = self.job();
        let (old, new) = (job.old, job.new);
        let root = &self.root;
        let mut deletes = Vec::new();
        let mut mkdirs = Vec::new();
        let mut places = Vec::new();
        let mut links = Vec::new();
        let mut modes = Vec::new();
        // Old entries the new tree lacks, or needs as another kind.
        for entry in old.entries() {
            check_parents(root, &entry.path)?;
            let at = entry.path.under(root);
            let on_disk = disk(&at)?;
            let wanted = new.get(&entry.path).map(|e| &e.kind);
            match &entry.kind {
                EntryKind::Dir => match on_disk {
                    Disk::Missing => {}
                    Disk::Dir => {
                        if !matches!(wanted, Some(EntryKind::Dir)) {
                            if wanted.is_some() {
                                self.check_only_old(&at, &entry.path)?;
                            }
                            deletes.push(Op::DeleteDir(entry.path.clone()));
                        }
                    }
                    Disk::Link => return Err(TreeApplyError::ThroughSymlink { path: at }),
                    other => {
                        return Err(TreeApplyError::Conflict {
                            path: at,
                            problem: format!(
                                "is {}, the old release has a directory",
                                disk_name(other)
                            ),
                        });
                    }
                },
                _ => match on_disk {
                    Disk::Missing => {}
                    Disk::File | Disk::Link => {
                        if wanted.is_none() || matches!(wanted, Some(EntryKind::Dir)) {
                            deletes.push(Op::Delete(entry.path.clone()));
                        }
                    }
                    other => {
                        return Err(TreeApplyError::Conflict {
                            path: at,
                            problem: format!(
                                "is {}, the old release has a file or link",
                                disk_name(other)
                            ),
                        });
                    }
                },
            }
        }
        if let Some(dropped) = job.drop {
            self.plan_drop(dropped, &mut deletes)?;
        }
        // A new path may lie below an old file or link that the commit deletes first.
        let replaced = |parent: &str, found: Disk| {
            let Ok(parent) = TreePath::new(parent) else {
                return false;
            };
            match old.get(&parent).map(|e| &e.kind) {
                Some(EntryKind::File { .. }) => found == Disk::File,
                Some(EntryKind::Symlink { .. }) => found == Disk::Link,
                _ => false,
            }
        };
        for (i, (entry, recipe)) in new.entries().iter().zip(job.recipes.iter()).enumerate() {
            check_parents_but(root, &entry.path, &replaced)?;
            let at = entry.path.under(root);
            let on_disk = disk(&at)?;
            let in_old = old.get(&entry.path);
            if in_old.is_none() && on_disk != Disk::Missing {
                let is_dir = entry.kind == EntryKind::Dir;
                let adopt = match on_disk {
                    Disk::Dir => is_dir,
                    Disk::File | Disk::Link => job.replace_unlisted,
                    _ => false,
                };
                if adopt && is_dir && on_disk != Disk::Dir {
                    // A file or link where the release has a directory: removed first.
                    deletes.push(Op::Delete(entry.path.clone()));
                }
                if !adopt {
                    return Err(TreeApplyError::Conflict {
                        path: at,
                        problem: format!(
                            "is {} that is not part of the old release, where the new one \
                             has {}",
                            disk_name(on_disk),
                            kind_name(&entry.kind)
                        ),
                    });
                }
            }
            // Whether the path keeps what it has (so only its mode may need setting).
            let kept = in_old.is_some_and(|o| same_kind(&o.kind, &entry.kind))
                || (in_old.is_none() && on_disk == Disk::Dir);
            match (&entry.kind, recipe) {
                (EntryKind::Dir, _) => {
                    if kept && on_disk == Disk::Dir {
                        if mode_of(&at)? != entry.mode {
                            modes.push(Op::Mode(entry.path.clone(), entry.mode));
                        }
                    } else {
                        // Created writable by its owner so the commit can fill it;
                        // its exact mode comes with the other modes, last.
                        mkdirs.push(Op::Mkdir(entry.path.clone(), entry.mode | 0o700));
                        modes.push(Op::Mode(entry.path.clone(), entry.mode));
                    }
                }
                (EntryKind::Symlink { target }, _) => {
                    let same = matches!(in_old.map(|o| &o.kind), Some(EntryKind::Symlink { target: t }) if t == target)
                        && on_disk == Disk::Link
                        && fs::read_link(&at).ok().as_deref() == Some(Path::new(target));
                    if !same {
                        links.push(Op::Link(entry.path.clone(), target.clone()));
                    }
                }
                (EntryKind::File { .. }, Some(recipe)) => {
                    let unchanged = !job.substitutes.contains_key(&entry.path)
                        && matches!(recipe, Recipe::Copy { from } if old.entries()[*from].path == entry.path);
                    if unchanged {
                        if mode_of_file(&at)? != Some(entry.mode) {
                            modes.push(Op::Mode(entry.path.clone(), entry.mode));
                        }
                    } else {
                        places.push(Op::Place {
                            name: format!("f{i}"),
                            file: entry.kind.file().expect("a file"),
                            path: entry.path.clone(),
                        });
                    }
                }
                (EntryKind::File { .. }, None) => unreachable!("decode gives files a recipe"),
            }
        }
        deletes.reverse();
        modes.reverse();
        // Directories on disk that lack owner write but whose entries change are made
        // writable first and given their final mode back with the other modes, so that
        // a read-only directory of the release can be updated by a non-root owner.
        let mut unlock = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for op in deletes.iter().chain(&mkdirs).chain(&places).chain(&links) {
            let (Op::Delete(path)
            | Op::DeleteDir(path)
            | Op::Mkdir(path, _)
            | Op::Link(path, _)
            | Op::Place { path, .. }) = op
            else {
                continue;
            };
            let Some(parent) = path.parent() else {
                continue;
            };
            if !seen.insert(parent.clone()) {
                continue;
            }
            let at = parent.under(root);
            if disk(&at)? != Disk::Dir {
                continue;
            }
            let mode = mode_of(&at)?;
            if mode & 0o200 == 0 {
                unlock.push(Op::Mode(parent.clone(), mode | 0o700));
                let restored = modes
                    .iter()
                    .any(|m| matches!(m, Op::Mode(p, _) if *p == parent));
                if !restored {
                    let last = new.get(&parent).map_or(mode, |e| e.mode);
                    modes.push(Op::Mode(parent, last));
                }
            }
        }
        let mut ops = unlock;
        ops.extend(deletes);
        ops.extend(mkdirs);
        ops.extend(places);
        ops.extend(links);
        ops.extend(modes);
        Ok(ops)
    }

    /// Deletions of the entries of an older release (`dropped`) that neither listing
    /// has, where they are still as it lists them; anything else (a modified file, a
    /// path below a link or a file) is left alone. In listing order, like the old
    /// tree's deletions, so that the reversal in [`InPlace::plan`] puts children first.
    fn plan_drop(&self, dropped: &Listing, deletes: &mut Vec<Op>) -> Result<()> {
        let job = self.job();
        for entry in dropped.entries() {
            if job.new.get(&entry.path).is_some() || job.old.get(&entry.path).is_some() {
                continue;
            }
            if check_parents(&self.root, &entry.path).is_err() {
                continue;
            }
            let at = entry.path.under(&self.root);
            let unmodified = match (&entry.kind, disk(&at)?) {
                (EntryKind::Dir, Disk::Dir) => true,
                (EntryKind::Symlink { target }, Disk::Link) => {
                    fs::read_link(&at).ok().as_deref() == Some(Path::new(target))
                }
                (EntryKind::File { size, sha256 }, Disk::File) => {
                    hash_copy(&at, None)? == Ok((*size, *sha256))
                }
                _ => false,
            };
            if unmodified {
                deletes.push(match entry.kind {
                    EntryKind::Dir => Op::DeleteDir(entry.path.clone()),
                    _ => Op::Delete(entry.path.clone()),
                });
            }
        }
        Ok(())
    }

    /// Checks that everything below the old directory `at` is part of the old release
    /// (so removing it to make room for a file or link loses nothing of the user's).
    fn check_only_old(&self, at: &Path, path: &TreePath) -> Result<()> {
        let old = self.job().old;
        for item in fs::read_dir(at).map_err(io_err("list", at))? {
            let item = item.map_err(io_err("list", at))?;
            let name = item.file_name();
            let child = name
                .to_str()
                .and_then(|n| TreePath::new(&format!("{path}/{n}")).ok())
                .filter(|p| old.get(p).is_some());
            let Some(child) = child else {
                return Err(TreeApplyError::Conflict {
                    path: item.path(),
                    problem: "is not part of the old release, and the new release replaces \
                              its directory"
                        .into(),
                });
            };
            if disk(&item.path())? == Disk::Dir {
                self.check_only_old(&item.path(), &child)?;
            }
        }
        Ok(())
    }

    /// Checks unchanged files where they are and stages every other file.
    fn stage_files(
        &self,
        ops: &[Op],
        report: &mut TreeReport,
        steps: &mut Steps,
        progress: &mut dyn FnMut(TreeProgress),
    ) -> Result<()> {
        let job = self.job();
        let total = job.new.file_count() as u64;
        let mut done = 0;
        let mut tick = |progress: &mut dyn FnMut(TreeProgress)| {
            done += 1;
            progress(TreeProgress {
                phase: TreePhase::Stage,
                done,
                total,
            });
        };
        let placed: BTreeMap<&TreePath, &str> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Place { name, path, .. } => Some((path, name.as_str())),
                _ => None,
            })
            .collect();
        // Unchanged files first: a wrong base is found before any work is done.
        for entry in job.new.entries() {
            let Some(file) = entry.kind.file() else {
                continue;
            };
            if placed.contains_key(&entry.path) {
                continue;
            }
            check_parents(&self.root, &entry.path)?;
            let at = entry.path.under(&self.root);
            let found = mismatch(hash_copy(&at, None)?, file);
            if let Some(found) = found {
                return Err(TreeApplyError::WrongBase {
                    path: at,
                    expected: file,
                    found,
                });
            }
            report.unchanged += 1;
            tick(progress);
        }
        for (entry, recipe) in job.new.entries().iter().zip(job.recipes.iter()) {
            let (Some(recipe), Some(name)) = (recipe, placed.get(&entry.path)) else {
                continue;
            };
            let dst = self.stage.join(name);
            make_file(job, entry, make_of(job, entry, *recipe), &dst, report)?;
            tick(progress);
            steps.step();
        }
        report.deleted = ops
            .iter()
            .filter(|op| matches!(op, Op::Delete(_) | Op::DeleteDir(_)))
            .count() as u64;
        Ok(())
    }

    /// Carries out one operation; each is idempotent.
    fn commit(&self, op: &Op, report: &mut TreeReport) -> Result<()> {
        let root = &self.root;
        match op {
            Op::Delete(path) => {
                // Below a file a later operation made, nothing is left to delete.
                check_parents_but(root, path, &|_, found| found == Disk::File)?;
                let at = path.under(root);
                match disk(&at)? {
                    // The plan saw a file or link here; a directory now is the one a
                    // later operation of this journal made (a resumed commit).
                    Disk::Missing | Disk::Dir => return Ok(()),
                    _ => fs::remove_file(&at).map_err(io_err("remove", &at))?,
                }
                sync_parent(&at)?;
            }
            Op::DeleteDir(path) => {
                // Below a file a later operation made, nothing is left to delete.
                check_parents_but(root, path, &|_, found| found == Disk::File)?;
                let at = path.under(root);
                match disk(&at)? {
                    Disk::Missing => return Ok(()),
                    Disk::Dir => match fs::remove_dir(&at) {
                        Ok(()) => {}
                        // Files the user added keep their directory.
                        Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => return Ok(()),
                        Err(e) => return Err(io_err("remove", &at)(e)),
                    },
                    // The plan saw a directory here; anything else now is what a later
                    // operation of this journal put there (a resumed commit).
                    _ => return Ok(()),
                }
                sync_parent(&at)?;
            }
            Op::Mkdir(path, mode) => {
                check_parents(root, path)?;
                let at = path.under(root);
                match disk(&at)? {
                    // Made by this operation before a crash; a later mode operation
                    // may already have given it its final mode.
                    Disk::Dir => return Ok(()),
                    Disk::Missing => {
                        fs::create_dir(&at).map_err(io_err("create", &at))?;
                        set_mode(&at, *mode)?;
                        sync_parent(&at)?;
                    }
                    Disk::Link => return Err(TreeApplyError::ThroughSymlink { path: at }),
                    other => {
                        return Err(TreeApplyError::Conflict {
                            path: at,
                            problem: format!(
                                "is {}, the new release has a directory",
                                disk_name(other)
                            ),
                        });
                    }
                }
            }
            Op::Place { name, file, path } => {
                check_parents(root, path)?;
                let at = path.under(root);
                let staged = self.stage.join(name);
                if disk(&staged)? == Disk::File {
                    // Staged by another run: checked before it goes into the tree.
                    if report.resumed {
                        let found = mismatch(hash_copy(&staged, None)?, *file);
                        if let Some(found) = found {
                            return Err(TreeApplyError::StagedDamaged {
                                staged,
                                path: at,
                                expected: *file,
                                found,
                            });
                        }
                    }
                    fs::rename(&staged, &at).map_err(io_err("rename a staged file to", &at))?;
                    sync_parent(&at)?;
                } else {
                    let found = mismatch(hash_copy(&at, None)?, *file);
                    if let Some(found) = found {
                        return Err(TreeApplyError::StagedGone {
                            path: at,
                            expected: *file,
                            found,
                        });
                    }
                }
            }
            Op::Link(path, target) => {
                check_parents(root, path)?;
                let at = path.under(root);
                let d = disk(&at)?;
                if d == Disk::Link && fs::read_link(&at).ok().as_deref() == Some(Path::new(target))
                {
                    return Ok(());
                }
                if d == Disk::Dir {
                    return Err(TreeApplyError::Conflict {
                        path: at,
                        problem: "is a directory, the new release has a link".into(),
                    });
                }
                if disk(&self.stage)? == Disk::Missing {
                    create_stage(&self.stage)?;
                }
                let tmp = self.stage.join("link.tmp");
                remove_stale(&tmp)?;
                symlink(target, &tmp)?;
                fs::rename(&tmp, &at).map_err(io_err("rename a new link to", &at))?;
                sync_parent(&at)?;
            }
            Op::Mode(path, mode) => {
                check_parents(root, path)?;
                let at = path.under(root);
                let listed = self.new.get(path).is_some();
                match disk(&at)? {
                    Disk::File | Disk::Dir if listed => set_mode(&at, *mode)?,
                    // A path the new tree lacks is a directory whose entries changed and
                    // that the commit removed (then nothing is left to do) or that keeps
                    // files the user added.
                    Disk::Dir => set_mode(&at, *mode)?,
                    Disk::Missing if !listed => {}
                    other => {
                        return Err(TreeApplyError::Conflict {
                            path: at,
                            problem: format!(
                                "is {}, expected a file or directory",
                                disk_name(other)
                            ),
                        });
                    }
                }
            }
        }
        if report.resumed && matches!(op, Op::Delete(_) | Op::DeleteDir(_)) {
            report.deleted += 1;
        }
        Ok(())
    }
}

fn mode_of_file(path: &Path) -> Result<Option<u32>> {
    Ok(match disk(path)? {
        Disk::File => Some(mode_of(path)?),
        _ => None,
    })
}

fn same_kind(a: &EntryKind, b: &EntryKind) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

fn kind_name(kind: &EntryKind) -> &'static str {
    match kind {
        EntryKind::File { .. } => "a file",
        EntryKind::Dir => "a directory",
        EntryKind::Symlink { .. } => "a link",
    }
}
