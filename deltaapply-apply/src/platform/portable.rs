//! [`crate::platform`] where nothing but std is known: directories are not synced,
//! files have no modes (read-only aside), trees cannot hold links, owners are not
//! checked. A real port replaces this file for its platform (`windows.rs`).

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::path::Path;

use super::ModeSet;

/// Directories cannot be opened for syncing everywhere: a no-op.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    let _ = dir;
    Ok(())
}

/// Unknown without a platform call: the writes report a full disk instead.
pub(crate) fn free_space(file: &File) -> Option<u64> {
    let _ = file;
    None
}

/// No mode to give: the platform's default.
pub(crate) fn new_file_permissions() -> Option<Permissions> {
    None
}

/// No mode to give: the platform's default.
pub(crate) fn default_permissions() -> Option<Permissions> {
    None
}

/// No modes: nothing to set.
pub(crate) fn create_mode(options: &mut OpenOptions, mode: u32) {
    let _ = (options, mode);
}

/// No modes: nothing to set.
pub(crate) fn private_dir(builder: &mut DirBuilder) {
    let _ = builder;
}

/// No modes: nothing to set.
pub(crate) fn set_mode_of(f: &File, mode: u32) -> io::Result<()> {
    let _ = (f, mode);
    Ok(())
}

/// Read-only or not, as the Unix bits a tree listing records.
pub(crate) fn permission_bits(meta: &fs::Metadata) -> u32 {
    if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

/// No modes: nothing to set.
pub(crate) fn set_mode_nofollow(path: &Path, mode: u32) -> io::Result<ModeSet> {
    let _ = (path, mode);
    Ok(ModeSet::Set)
}

/// No modes: nothing to set.
pub(crate) fn set_mode_by_path(path: &Path, mode: u32) -> io::Result<()> {
    let _ = (path, mode);
    Ok(())
}

/// Without file identities, assumed.
pub(crate) fn same_file(file: &File, path: &Path) -> bool {
    let _ = (file, path);
    true
}

/// An open file may not be removable: the lock file stays.
pub(crate) const REMOVE_HELD_LOCK: bool = false;

/// Trees with links are supported on Unix only.
pub(crate) fn symlink(target: &str, path: &Path) -> io::Result<()> {
    let _ = (target, path);
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symbolic links in trees are supported on Unix only",
    ))
}

/// Without `O_NOFOLLOW`: nothing to add.
pub(crate) fn no_follow(options: &mut OpenOptions) {
    let _ = options;
}

/// Without `O_NOFOLLOW`: a plain open.
pub(crate) fn open_nofollow(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// Owners are not checked.
pub(crate) fn check_owner(meta: &fs::Metadata) -> Result<(), String> {
    let _ = meta;
    Ok(())
}
