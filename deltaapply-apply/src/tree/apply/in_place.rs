//! In-place updates: checking the tree and planning the commit operations, staging
//! files, writing the journal, and committing (or resuming) it.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::disk::{
    Disk, beside, check_parents, check_parents_but, create_stage, disk, disk_name, hash_copy,
    mismatch, mode_of, remove_stale, set_mode, symlink, sync_parent,
};
use super::error::{Result, TreeApplyError, io_err};
use super::job::Job;
use super::make::{make_file, make_of};
use super::steps::Steps;
use super::{TreePhase, TreeProgress, TreeReport, check_journal, describe_update, read_journal};
use crate::container::FileId;
use crate::tree::format::{EntryKind, Listing, Recipe};
use crate::tree::journal::{self, Journal, Op, sync_dir};
use crate::tree::path::TreePath;

/// Committing a journal in `root`: all that finishing an interrupted update needs
/// ([`finish_pending`](super::finish_pending)), and the last part of every in-place
/// update.
pub(super) struct Commit<'r> {
    /// The trusted new listing every operation was checked against.
    pub(super) new: NewTree<'r>,
    pub(super) root: PathBuf,
    pub(super) stage: PathBuf,
    pub(super) journal: PathBuf,
}

/// An in-place update of `root`: checking, planning, staging, then its [`Commit`].
pub(super) struct InPlace<'r, 'a> {
    /// The update.
    job: &'r Job<'a>,
    /// Where and what it commits.
    commit: Commit<'r>,
}

impl<'r> std::ops::Deref for InPlace<'r, '_> {
    type Target = Commit<'r>;

    fn deref(&self) -> &Commit<'r> {
        &self.commit
    }
}

impl<'r, 'a> InPlace<'r, 'a> {
    /// The update this run carries out.
    fn job(&self) -> &'r Job<'a> {
        self.job
    }

    pub(super) fn new(job: &'r Job<'a>) -> Result<Self> {
        let root = fs::canonicalize(job.dest).map_err(io_err("open", job.dest))?;
        if disk(&root)? != Disk::Dir {
            return Err(TreeApplyError::Conflict {
                path: root,
                problem: "is not a directory".into(),
            });
        }
        Ok(InPlace {
            job,
            commit: Commit {
                new: NewTree::Patched(&job.new),
                stage: beside(&root, "stage")?,
                journal: beside(&root, "journal")?,
                root,
            },
        })
    }

    pub(super) fn run(
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
                check_journal(&self.journal, &j, &*job.new)?;
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
                EntryKind::File { size, sha256, .. } => {
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
        let (old, new) = (job.old, &*job.new);
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
        for (i, entry) in new.entries().iter().enumerate() {
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
            match &entry.kind {
                EntryKind::Dir => {
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
                EntryKind::Symlink { target } => {
                    let same = matches!(in_old.map(|o| &o.kind), Some(EntryKind::Symlink { target: t }) if t == target)
                        && on_disk == Disk::Link
                        && fs::read_link(&at).ok().as_deref() == Some(Path::new(target));
                    if !same {
                        links.push(Op::Link(entry.path.clone(), target.clone()));
                    }
                }
                EntryKind::File {
                    size,
                    sha256,
                    recipe,
                } => {
                    let unchanged = !job.substitutes.contains_key(&entry.path)
                        && matches!(recipe, Recipe::Copy { from } if old.entries()[*from].path == entry.path);
                    if unchanged {
                        if mode_of_file(&at)? != Some(entry.mode) {
                            modes.push(Op::Mode(entry.path.clone(), entry.mode));
                        }
                    } else {
                        places.push(Op::Place {
                            name: format!("f{i}"),
                            file: FileId {
                                size: *size,
                                sha256: *sha256,
                            },
                            path: entry.path.clone(),
                        });
                    }
                }
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
                (EntryKind::File { size, sha256, .. }, Disk::File) => {
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
        for entry in job.new.entries() {
            let (
                &EntryKind::File {
                    size,
                    sha256,
                    recipe,
                },
                Some(name),
            ) = (&entry.kind, placed.get(&entry.path))
            else {
                continue;
            };
            let dst = self.stage.join(name);
            let file = (entry, FileId { size, sha256 });
            make_file(job, file, make_of(job, entry, recipe), &dst, report)?;
            tick(progress);
            steps.step();
        }
        report.deleted = ops
            .iter()
            .filter(|op| matches!(op, Op::Delete(_) | Op::DeleteDir(_)))
            .count() as u64;
        Ok(())
    }
}

impl Commit<'_> {
    /// Carries out a journal's operations, then removes the staging directory and the
    /// journal.
    pub(super) fn finish(
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
                let listed = self.new.lists(path);
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

/// The new tree a [`Commit`] carries out: a tree patch's (or a repair's), or, when an
/// interrupted update is finished, the release's listing its journal names.
#[derive(Clone, Copy)]
pub(super) enum NewTree<'r> {
    /// With the recipes of its files.
    Patched(&'r Listing<Recipe>),
    /// A release's.
    Release(&'r Listing),
}

impl NewTree<'_> {
    /// Whether the new tree has an entry at `path`.
    fn lists(&self, path: &TreePath) -> bool {
        match self {
            NewTree::Patched(l) => l.get(path).is_some(),
            NewTree::Release(l) => l.get(path).is_some(),
        }
    }
}

fn same_kind<A, B>(a: &EntryKind<A>, b: &EntryKind<B>) -> bool {
    kind_name(a) == kind_name(b)
}

fn kind_name<R>(kind: &EntryKind<R>) -> &'static str {
    match kind {
        EntryKind::File { .. } => "a file",
        EntryKind::Dir => "a directory",
        EntryKind::Symlink { .. } => "a link",
    }
}
