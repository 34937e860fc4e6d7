//! Why a tree update failed: [`TreeApplyError`], its exit codes, and the module's
//! `Result`.

use std::io;
use std::path::{Path, PathBuf};

use crate::container::FileId;
use crate::lock::LockError;
use crate::tree::path::TreePath;
use crate::{Error, ErrorKind};

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
        "{} already exists: give a new directory for the new tree, or update the old one in \
         place",
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
    /// What kind of failure this is ([`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            TreeApplyError::Entry { source, .. } => source.kind(),
            TreeApplyError::WrongBase { .. } | TreeApplyError::MissingOld { .. } => {
                ErrorKind::WrongSource
            }
            TreeApplyError::BadSubstitute { .. } => ErrorKind::BadInput,
            TreeApplyError::Lock(e) => e.kind(),
            _ => ErrorKind::Failure,
        }
    }
}

pub(super) type Result<T> = std::result::Result<T, TreeApplyError>;

pub(super) fn io_err(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> TreeApplyError {
    let path = path.to_path_buf();
    move |source| TreeApplyError::Io {
        action,
        path,
        source,
    }
}
