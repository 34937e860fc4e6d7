//! One applier per target at a time, and what a killed one left behind removed.
//!
//! An update of a target (a file or a tree) holds [`TargetLock`] for as long as it
//! runs: an exclusive, non-blocking advisory lock (`flock` on Unix, `LockFileEx` on
//! Windows) on `PARENT/.NAME.deltaapply-lock`. A second applier for the same target
//! is refused ([`LockError::Busy`]) instead of racing the first. The operating system
//! releases the lock when its holder dies, however it dies, so a crash never leaves a
//! target locked.
//!
//! Holding the lock, and only then, the applier removes what an earlier applier of
//! the same target was killed before removing: temporary files of the
//! [`crate::stage::Staged`] naming pattern (`.NAME.XXXXXX.deltaapply-tmp`, regular
//! files only), and a tree's staging directory and journal temporary when no journal
//! says they are still needed. Nothing else is touched.
//!
//! The lock file is removed when the lock is released. On Unix, an applier that gets
//! the lock checks that the lock file it locked is still the one at the lock's path
//! (a holder may have removed it in between) and tries again if not.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::ErrorKind;

/// How many times [`TargetLock::acquire`] retries when the lock file it locked was
/// removed by the previous holder meanwhile.
const ATTEMPTS: usize = 8;

/// What can stop an applier from claiming a target.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another applier is updating the target now.
    #[error(
        "{} is being updated by another deltaapply process (it holds {}); wait for it to finish",
        target.display(),
        lock.display()
    )]
    Busy {
        /// The target.
        target: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The lock file cannot be created or locked, or a stale file cannot be removed.
    #[error("cannot {action} {} (updating {})", path.display(), target.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The target.
        target: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl LockError {
    /// What kind of failure this is ([`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            LockError::Busy { .. } => ErrorKind::Busy,
            LockError::Io { .. } => ErrorKind::Failure,
        }
    }
}

/// An exclusive claim on one target; released (and its lock file removed) on drop.
#[derive(Debug)]
pub struct TargetLock {
    file: File,
    path: PathBuf,
}

impl TargetLock {
    /// Claims `target` (which need not exist yet), then removes what a killed applier
    /// of it left behind (see the module documentation). Fails at once with
    /// [`LockError::Busy`] if another applier holds it.
    pub fn acquire(target: &Path) -> Result<TargetLock, LockError> {
        let (dir, name) = split(target)?;
        let path = dir.join(format!(".{name}.deltaapply-lock"));
        let io_err = |action, source| LockError::Io {
            action,
            path: path.clone(),
            target: target.to_path_buf(),
            source,
        };
        for _ in 0..ATTEMPTS {
            let mut options = OpenOptions::new();
            options.read(true).write(true).create(true).truncate(false);
            // A link planted at the lock's name is never followed: through a dangling
            // one, `create` would make a file wherever it points.
            crate::platform::no_follow(&mut options);
            let file = options.open(&path).map_err(|e| {
                if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                    io_err(
                        "create the lock file",
                        io::Error::other("its name is a symbolic link, which is not followed"),
                    )
                } else {
                    io_err("create the lock file", e)
                }
            })?;
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(LockError::Busy {
                        target: target.to_path_buf(),
                        lock: path,
                    });
                }
                Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", e)),
            }
            if !still_at(&file, &path) {
                continue;
            }
            let lock = TargetLock { file, path };
            remove_leftovers(&dir, &name, target)?;
            return Ok(lock);
        }
        Err(io_err(
            "lock",
            io::Error::other("the lock file kept being replaced"),
        ))
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TargetLock {
    fn drop(&mut self) {
        // Removed while still locked, so that whoever opened it meanwhile finds, once
        // it has the lock, that it is no longer at the path (see `still_at`).
        if crate::platform::REMOVE_HELD_LOCK {
            let _ = fs::remove_file(&self.path);
        }
        let _ = self.file.unlock();
    }
}

/// Whether `file` is still the file at `path`.
fn still_at(file: &File, path: &Path) -> bool {
    crate::platform::same_file(file, path)
}

/// The directory a target is in and its name. A directory target is named by its
/// canonical path (so `tree`, `./tree` and `tree/` share one lock); a file by the
/// path as given, since its temporary files go beside that path.
fn split(target: &Path) -> Result<(PathBuf, String), LockError> {
    let canonical;
    let path = if target.is_dir() || target.file_name().is_none() {
        canonical = fs::canonicalize(target).map_err(|source| LockError::Io {
            action: "find the directory of",
            path: target.to_path_buf(),
            target: target.to_path_buf(),
            source,
        })?;
        canonical.as_path()
    } else {
        target
    };
    let name = path.file_name().ok_or_else(|| LockError::Io {
        action: "lock",
        path: target.to_path_buf(),
        target: target.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "it has no name of its own"),
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_string_lossy().into_owned()))
}

/// Whether `file` is a temporary file [`crate::stage::Staged`] makes for a target
/// named `name`: `.NAME.` + six letters or digits + `.deltaapply-tmp`.
pub(crate) fn is_temporary_of(file: &str, name: &str) -> bool {
    let Some(rest) = file
        .strip_prefix('.')
        .and_then(|f| f.strip_prefix(name))
        .and_then(|f| f.strip_prefix('.'))
        .and_then(|f| f.strip_suffix(".deltaapply-tmp"))
    else {
        return false;
    };
    rest.len() == crate::stage::RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Removes the temporary files a killed writer of `file` left (a file the holder of
/// `target`'s lock writes, such as its state file).
pub fn remove_temporaries_of(file: &Path, target: &Path) -> Result<(), LockError> {
    let (dir, name) = split(file)?;
    remove_temporaries(&dir, &name, target)
}

/// Removes the leftovers of a killed applier of `DIR/NAME`.
fn remove_leftovers(dir: &Path, name: &str, target: &Path) -> Result<(), LockError> {
    remove_temporaries(dir, name, target)?;
    remove_stale_stage(dir, name).map_err(|(path, source)| LockError::Io {
        action: "remove the stale staging",
        path,
        target: target.to_path_buf(),
        source,
    })
}

/// Removes `DIR/.NAME.XXXXXX.deltaapply-tmp` regular files.
fn remove_temporaries(dir: &Path, name: &str, target: &Path) -> Result<(), LockError> {
    let io_err = |action, path: &Path, source| LockError::Io {
        action,
        path: path.to_path_buf(),
        target: target.to_path_buf(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // The directory may not exist yet (an output path); nothing to clean then.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_err("list", dir, e))?;
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        if !is_temporary_of(file, name) {
            continue;
        }
        let path = entry.path();
        // Only regular files: whatever else carries the name is not ours.
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {}
            _ => continue,
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove the stale temporary file", &path, e)),
        }
    }
    Ok(())
}

/// Removes the staging directory of the tree `DIR/NAME` unless a journal says it is
/// still needed, and the journal's temporary file, which never is. Only called with
/// the tree's [`TargetLock`] held.
fn remove_stale_stage(dir: &Path, name: &str) -> std::result::Result<(), (PathBuf, io::Error)> {
    let journal = dir.join(format!(".{name}.deltaapply-journal"));
    let stage = dir.join(format!(".{name}.deltaapply-stage"));
    let remove = |path: &Path| match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(|e| (path.to_path_buf(), e)),
        Ok(_) => fs::remove_file(path).map_err(|e| (path.to_path_buf(), e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err((path.to_path_buf(), e)),
    };
    remove(&crate::tree::journal::temp_path(&journal))?;
    match fs::symlink_metadata(&journal) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => remove(&stage),
        Err(e) => Err((journal, e)),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_its_own_temporaries() {
        assert!(is_temporary_of(".app.bin.aB3xY9.deltaapply-tmp", "app.bin"));
        assert!(!is_temporary_of(".app.bin.aB3xY9.deltaapply-tmp", "app"));
        assert!(!is_temporary_of(".app.bin.aB3x.deltaapply-tmp", "app.bin"));
        assert!(!is_temporary_of(
            ".app.bin.aB3xY9-.deltaapply-tmp",
            "app.bin"
        ));
        assert!(!is_temporary_of(
            ".app.bin.aB3xY9.deltaapply-tmpx",
            "app.bin"
        ));
        assert!(!is_temporary_of("app.bin.aB3xY9.deltaapply-tmp", "app.bin"));
        assert!(!is_temporary_of(".app.bin.deltaapply-lock", "app.bin"));
    }

    #[test]
    fn a_second_claim_is_refused_until_the_first_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("app.bin");
        let first = TargetLock::acquire(&target).unwrap();
        assert!(first.path().exists());
        let second = TargetLock::acquire(&target).unwrap_err();
        assert!(matches!(second, LockError::Busy { .. }), "{second}");
        drop(first);
        assert!(!dir.path().join(".app.bin.deltaapply-lock").exists());
        let third = TargetLock::acquire(&target).unwrap();
        drop(third);
    }

    #[test]
    fn stale_temporaries_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("app.bin");
        let stale = dir.path().join(".app.bin.Qw3rTy.deltaapply-tmp");
        let other = dir.path().join(".app.Qw3rTy.deltaapply-tmp");
        let keep = dir.path().join("app.bin.Qw3rTy.deltaapply-tmp");
        for p in [&stale, &other, &keep] {
            fs::write(p, b"x").unwrap();
        }
        let lock = TargetLock::acquire(&target).unwrap();
        assert!(!stale.exists());
        assert!(other.exists() && keep.exists());
        drop(lock);
    }
}
