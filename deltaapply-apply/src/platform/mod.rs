//! Everything that differs between operating systems, behind one seam: `unix.rs` on
//! Unix (tested on x86_64 Linux), `portable.rs` elsewhere (what std alone can do:
//! no directory sync, no modes, no links, no owner checks). A Windows port is one file,
//! `windows.rs` with the same functions (an atomic replace by `MoveFileExW` with
//! `MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH`, ...), chosen below.
//!
//! The concerns, each a group of functions with the same signatures in every backend:
//! - atomic replace: [`sync_dir`] (the rename itself is `std::fs::rename`, through
//!   `tempfile`'s persist), [`free_space`] (the preflight before a new file is written);
//! - file modes: [`new_file_permissions`], [`default_permissions`],
//!   [`create_mode`], [`private_dir`], [`set_mode_of`], [`permission_bits`],
//!   [`set_mode_nofollow`];
//! - locking: [`same_file`], [`REMOVE_HELD_LOCK`];
//! - trees: [`symlink`], [`open_nofollow`], [`check_owner`].

#[cfg(not(unix))]
mod portable;
#[cfg(unix)]
mod unix;

#[cfg(not(unix))]
pub(crate) use portable::*;
#[cfg(unix)]
pub(crate) use unix::*;

/// What [`set_mode_nofollow`] found at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ModeSet {
    /// The mode was set (or modes do not exist here).
    Set,
    /// The path is neither a file nor a directory (a fifo, a device...).
    NotFileOrDir,
    /// The path is a symbolic link: nothing was changed.
    Link,
    /// The file cannot be opened (its owner may not read it): set it by path after
    /// checking it is no link.
    Denied,
}
