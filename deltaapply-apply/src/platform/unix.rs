//! The Unix side of [`crate::platform`]: POSIX modes, `fsync` of directories,
//! `O_NOFOLLOW`, device and inode numbers, owners.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::ModeSet;

/// Makes the renames in directory `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Bytes free for unprivileged writers on `file`'s filesystem (`fstatvfs`), if known.
pub(crate) fn free_space(file: &File) -> Option<u64> {
    let fs = rustix::fs::fstatvfs(file).ok()?;
    Some(fs.f_bavail.saturating_mul(fs.f_frsize))
}

/// The permissions a new output file gets when there are none to copy: what any new
/// file gets (0666 less the umask), not a temporary file's private 0600.
pub(crate) fn new_file_permissions() -> Option<Permissions> {
    Some(Permissions::from_mode(0o666))
}

/// The permissions of a file that replaces none and copies none: `rw-r--r--`.
pub(crate) fn default_permissions() -> Option<Permissions> {
    Some(Permissions::from_mode(0o644))
}

/// Makes `options` create its file with `mode`.
pub(crate) fn create_mode(options: &mut OpenOptions, mode: u32) {
    options.mode(mode);
}

/// Makes `builder` create a directory private to its owner.
pub(crate) fn private_dir(builder: &mut DirBuilder) {
    builder.mode(0o700);
}

/// Sets the mode of an open file.
pub(crate) fn set_mode_of(f: &File, mode: u32) -> io::Result<()> {
    f.set_permissions(Permissions::from_mode(mode))
}

/// The permission bits of `meta` (all of them; callers mask).
pub(crate) fn permission_bits(meta: &fs::Metadata) -> u32 {
    meta.permissions().mode()
}

/// Sets the mode of a file or directory, never through a link: the path is opened
/// without following one (and without blocking on a fifo), checked to be a file or
/// directory, and the mode set on what was opened.
pub(crate) fn set_mode_nofollow(path: &Path, mode: u32) -> io::Result<ModeSet> {
    use rustix::fs::{FileType, Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => {
            let stat = rustix::fs::fstat(&fd)?;
            let kind = FileType::from_raw_mode(stat.st_mode);
            if !matches!(kind, FileType::RegularFile | FileType::Directory) {
                return Ok(ModeSet::NotFileOrDir);
            }
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
            Ok(ModeSet::Set)
        }
        Err(rustix::io::Errno::ACCESS) => Ok(ModeSet::Denied),
        Err(rustix::io::Errno::LOOP) => Ok(ModeSet::Link),
        Err(e) => Err(e.into()),
    }
}

/// Sets the mode of `path` by path (for [`ModeSet::Denied`], after the caller checked
/// it is no link).
pub(crate) fn set_mode_by_path(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, Permissions::from_mode(mode))
}

/// Whether `file` is still the file at `path` (a lock file removed and made again
/// since it was opened is not).
pub(crate) fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether a lock file is removed while still locked when released (so that whoever
/// opened it meanwhile finds it gone, [`same_file`]). Not where an open file cannot be
/// removed.
pub(crate) const REMOVE_HELD_LOCK: bool = true;

/// Creates a symbolic link at `path` to `target`.
pub(crate) fn symlink(target: &str, path: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, path)
}

/// Makes `options` refuse to open through a link in the path's last component
/// (`O_NOFOLLOW`).
pub(crate) fn no_follow(options: &mut OpenOptions) {
    options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
}

/// Opens a file for reading without following a link in its last component.
pub(crate) fn open_nofollow(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    no_follow(&mut options);
    options.open(path)
}

/// Checks that a journal or staging directory is the running user's and that no one
/// else may write to it; `Err` says what is wrong.
pub(crate) fn check_owner(meta: &fs::Metadata) -> Result<(), String> {
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "it is owned by user {}, not by the user running the update ({me})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "others may write to it (mode {:o})",
            meta.mode() & 0o777
        ));
    }
    Ok(())
}
