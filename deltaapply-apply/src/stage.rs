//! Atomic replacement of a file: write to a temporary file beside the destination,
//! fsync, rename over the destination, fsync the directory. Until [`Staged::commit`]
//! the destination is untouched; dropping a `Staged` removes the temporary file.

use std::fs::{self, File, Permissions};
use std::io;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::fault::{self, Point};

/// How many random letters and digits a temporary file's name carries
/// (`.NAME.XXXXXX.deltaapply-tmp`); the target lock recognises stale ones by it.
pub(crate) const RANDOM_LEN: usize = 6;

/// A temporary file that becomes `dest` on [`Staged::commit`].
#[derive(Debug)]
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl Staged {
    /// Creates the temporary file in `dest`'s directory (so the final rename cannot
    /// cross filesystems), with `permissions` if given.
    pub fn beside(dest: &Path, permissions: Option<Permissions>) -> Result<Staged, Error> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder
            .prefix(&prefix)
            .rand_bytes(RANDOM_LEN)
            .suffix(".deltaapply-tmp");
        // Without permissions to copy, the file gets what any newly created file gets
        // (0666 less the umask), not the temporary file's private 0600: published
        // files must be readable by a web server, patches by other users.
        if permissions.is_none()
            && let Some(p) = crate::platform::new_file_permissions()
        {
            builder.permissions(p);
        }
        let tmp = builder.tempfile_in(dir).map_err(|source| Error::OutputIo {
            path: dir.to_path_buf(),
            source,
        })?;
        if let Some(p) = permissions {
            tmp.as_file()
                .set_permissions(p)
                .map_err(|source| Error::OutputIo {
                    path: tmp.path().to_path_buf(),
                    source,
                })?;
        }
        Ok(Staged {
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// Checks that the temporary file's filesystem has `size` bytes free for
    /// unprivileged writers (`fstatvfs`), so that a filesystem without room for the
    /// new file fails at once, with nothing decoded yet, rather than in the middle of
    /// the write. Nothing is allocated: a patch that declares an absurd size is
    /// refused, not given the space. The writes still report ENOSPC should the space
    /// be taken meanwhile. The appliers call it only with a size that a trusted
    /// signature vouches for (a signed patch header, a signed manifest's entry).
    pub fn reserve(&self, size: u64) -> Result<(), Error> {
        if size > 0
            && let Some(free) = crate::platform::free_space(self.file())
            && free < size
        {
            return Err(Error::NoSpace {
                path: self.path().to_path_buf(),
                needed: size,
                free,
            });
        }
        Ok(())
    }

    /// The temporary file, for writing.
    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    /// The temporary file's path (for error messages).
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Flushes the temporary file to disk and renames it over the destination, unless
    /// the job was cancelled ([`crate::cancel`]).
    pub fn commit(self) -> Result<(), Error> {
        // The last moment a cancelled job can stop: dropping `self` removes the file.
        if crate::cancel::requested() {
            return Err(Error::Cancelled);
        }
        let tmp_path = self.tmp.path().to_path_buf();
        // An fsync error is final: the data may be lost, so the rename never follows.
        fault::reach(Point::Fsync)
            .and_then(|()| self.tmp.as_file().sync_all())
            .map_err(|source| Error::OutputIo {
                path: tmp_path.clone(),
                source,
            })?;
        fault::reach(Point::Rename).map_err(|source| Error::OutputIo {
            path: self.dest.clone(),
            source,
        })?;
        self.tmp.persist(&self.dest).map_err(|e| Error::OutputIo {
            path: self.dest.clone(),
            source: e.error,
        })?;
        fault::reach(Point::DirFsync)
            .and_then(|()| sync_parent(&self.dest))
            .map_err(|source| Error::OutputIo {
                path: self.dest.clone(),
                source,
            })
    }
}

/// Makes a rename in `path`'s directory durable. Directories cannot be opened for
/// syncing on every platform; there it is a no-op.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    crate::platform::sync_dir(dir)
}

/// The permissions a new file at `dest` should get: those of the file it replaces,
/// else those of `like` (the old file), else `rw-r--r--` on Unix.
pub fn inherit_permissions(dest: &Path, like: Option<&Path>) -> Option<Permissions> {
    let found = fs::metadata(dest)
        .ok()
        .filter(|m| m.is_file())
        .or_else(|| like.and_then(|p| fs::metadata(p).ok()))
        .map(|m| m.permissions());
    found.or_else(crate::platform::default_permissions)
}
