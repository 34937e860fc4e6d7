//! Filesystem primitives of the tree applier: what is on disk at a path, parent
//! checks, hashing copies, creating files and links, modes, syncs, and the staging
//! directory and journal names beside a tree.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::error::{Result, TreeApplyError, io_err};
use crate::container::FileId;
use crate::digest::{Hasher, Sha256Digest};
use crate::tree::path::TreePath;

/// Creates the staging directory, private to its owner.
pub(super) fn create_stage(stage: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    crate::platform::private_dir(&mut builder);
    builder.create(stage).map_err(io_err("create", stage))
}

/// The staging directory and journal names beside `root`.
pub(super) fn beside(root: &Path, suffix: &str) -> Result<PathBuf> {
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

/// Removes a stale staging directory (or whatever sits at its name).
pub(super) fn remove_stale(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(io_err("remove", path)),
        Ok(_) => fs::remove_file(path).map_err(io_err("remove", path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("inspect", path)(e)),
    }
}

/// What is on disk at a path (without following a final link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Disk {
    Missing,
    File,
    Dir,
    Link,
    Other,
}

pub(super) fn disk(path: &Path) -> Result<Disk> {
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
pub(super) fn check_parents(root: &Path, path: &TreePath) -> Result<()> {
    check_parents_but(root, path, &|_, _| false)
}

/// Like [`check_parents`], except that a parent for which `replaced(parent, found)`
/// says it is an old file or link that the commit deletes first is accepted.
pub(super) fn check_parents_but(
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
pub(super) fn mismatch(
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
pub(super) fn hash_copy(
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
    crate::platform::create_mode(&mut options, mode);
    let f = options.open(path).map_err(io_err("create", path))?;
    set_mode_of(&f, path, mode)?;
    Ok(f)
}

pub(super) fn set_mode_of(f: &File, path: &Path, mode: u32) -> Result<()> {
    crate::platform::set_mode_of(f, mode).map_err(io_err("set the mode of", path))
}

/// Sets the mode of a path already checked to be a file or directory, never through
/// a link: the path is opened without following one (and without blocking on a fifo),
/// checked to be a file or directory, and the mode set on what was opened. Only a file
/// its owner may not read (which cannot be opened) is set by path, after checking once
/// more that it is no link.
pub(super) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use crate::platform::ModeSet;
    let err = |e: io::Error| io_err("set the mode of", path)(e);
    match crate::platform::set_mode_nofollow(path, mode).map_err(err)? {
        ModeSet::Set => Ok(()),
        ModeSet::NotFileOrDir => Err(TreeApplyError::Conflict {
            path: path.to_path_buf(),
            problem: "is not a file or directory".into(),
        }),
        ModeSet::Denied if disk(path)? != Disk::Link => {
            crate::platform::set_mode_by_path(path, mode).map_err(err)
        }
        ModeSet::Denied => Err(err(io::Error::from(io::ErrorKind::PermissionDenied))),
        ModeSet::Link => Err(TreeApplyError::ThroughSymlink {
            path: path.to_path_buf(),
        }),
    }
}

pub(super) fn mode_of(path: &Path) -> Result<u32> {
    let m = fs::symlink_metadata(path).map_err(io_err("inspect", path))?;
    Ok(crate::platform::permission_bits(&m) & crate::tree::format::MODE_MASK)
}

pub(super) fn symlink(target: &str, path: &Path) -> Result<()> {
    crate::platform::symlink(target, path).map_err(io_err("create link", path))
}

pub(super) fn sync_parent(path: &Path) -> Result<()> {
    crate::stage::sync_parent(path).map_err(io_err("sync the directory of", path))
}
pub(super) fn disk_name(d: Disk) -> &'static str {
    match d {
        Disk::Missing => "missing",
        Disk::File => "a file",
        Disk::Dir => "a directory",
        Disk::Link => "a symbolic link",
        Disk::Other => "not a regular file",
    }
}
