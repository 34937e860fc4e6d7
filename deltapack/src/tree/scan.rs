//! Reading a release directory into a validated listing, without following symbolic
//! links. Every refusal names the path on disk and what is wrong with it, because the
//! fix (renaming a file, removing a device node) is the release engineer's.

use std::fs;
use std::path::{Path, PathBuf};

use deltaapply::hash_reader;
use deltaapply::tree::{Entry, EntryKind, Listing, TreeFormatError, TreePath, TreePathError};

/// A directory read into a [`Listing`], with where each entry is on disk.
#[derive(Debug, Clone)]
pub struct ScannedTree {
    root: PathBuf,
    listing: Listing,
}

impl ScannedTree {
    /// The directory that was scanned.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The validated listing of its entries (the root itself is not an entry).
    pub fn listing(&self) -> &Listing {
        &self.listing
    }

    /// Where `entry` (an entry of [`ScannedTree::listing`]) is on disk.
    pub fn disk_path(&self, entry: &Entry) -> PathBuf {
        entry.path.under(&self.root)
    }
}

/// Why a directory cannot be a release tree.
#[derive(Debug, thiserror::Error)]
pub enum TreeScanError {
    /// A file or directory could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The root is not a directory (or is a symbolic link to one).
    #[error("{} is not a directory (a tree's root must be a real directory, not a link)", path.display())]
    NotADirectory {
        /// The root given.
        path: PathBuf,
    },
    /// A name or a link target that is not UTF-8.
    #[error("{} has a {what} that is not UTF-8: rename it (tree patches carry UTF-8 names)", path.display())]
    NotUtf8 {
        /// The entry.
        path: PathBuf,
        /// `"name"` or `"link target"`.
        what: &'static str,
    },
    /// A fifo, socket or device node.
    #[error("{} is a {kind}: a release tree holds only files, directories and symbolic links", path.display())]
    Special {
        /// The entry.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A name that a tree path cannot hold (see [`TreePath`]).
    #[error("{} cannot be in a release tree", path.display())]
    BadPath {
        /// The entry.
        path: PathBuf,
        /// Why the path was refused.
        #[source]
        source: TreePathError,
    },
    /// The entries as a whole are not a valid tree (a link that is absolute, leaves the
    /// tree or passes through another link; names that collide on a case-insensitive
    /// filesystem).
    #[error("{} is not a valid release tree", root.display())]
    Listing {
        /// The root scanned.
        root: PathBuf,
        /// What the listing check refused (it names the entry).
        #[source]
        source: TreeFormatError,
    },
}

/// Reads the tree at `root`: directories (mode), regular files (mode, size, SHA-256)
/// and symbolic links (their text), without following links. The result depends only
/// on what is on disk.
pub fn scan_tree(root: &Path) -> Result<ScannedTree, TreeScanError> {
    let meta = fs::symlink_metadata(root).map_err(io(root))?;
    if !meta.is_dir() {
        return Err(TreeScanError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let mut entries = Vec::new();
    let mut pending: Vec<(PathBuf, Option<String>)> = vec![(root.to_path_buf(), None)];
    while let Some((dir, rel)) = pending.pop() {
        let mut children = Vec::new();
        for child in fs::read_dir(&dir).map_err(io(&dir))? {
            let child = child.map_err(io(&dir))?;
            children.push(child.path());
        }
        // read_dir's order is the filesystem's; sorting keeps errors deterministic.
        children.sort();
        for path in children {
            let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
                TreeScanError::NotUtf8 {
                    path: path.clone(),
                    what: "name",
                }
            })?;
            let rel_text = match &rel {
                Some(parent) => format!("{parent}/{name}"),
                None => name.to_string(),
            };
            let tree_path = TreePath::new(&rel_text).map_err(|source| TreeScanError::BadPath {
                path: path.clone(),
                source,
            })?;
            let meta = fs::symlink_metadata(&path).map_err(io(&path))?;
            let file_type = meta.file_type();
            let (mode, kind) =
                if file_type.is_symlink() {
                    let target = fs::read_link(&path).map_err(io(&path))?;
                    let target = target.into_os_string().into_string().map_err(|_| {
                        TreeScanError::NotUtf8 {
                            path: path.clone(),
                            what: "link target",
                        }
                    })?;
                    (0, EntryKind::Symlink { target })
                } else if file_type.is_dir() {
                    pending.push((path.clone(), Some(rel_text)));
                    (mode_of(&meta, 0o755), EntryKind::Dir)
                } else if file_type.is_file() {
                    let file = fs::File::open(&path).map_err(io(&path))?;
                    let (size, sha256) = hash_reader(file, &mut |_| {}).map_err(io(&path))?;
                    (
                        mode_of(&meta, 0o644),
                        EntryKind::File {
                            size,
                            sha256,
                            recipe: (),
                        },
                    )
                } else {
                    return Err(TreeScanError::Special {
                        kind: special_kind(&file_type),
                        path,
                    });
                };
            entries.push(Entry {
                path: tree_path,
                mode,
                kind,
            });
        }
    }
    let listing = Listing::new(entries).map_err(|source| TreeScanError::Listing {
        root: root.to_path_buf(),
        source,
    })?;
    Ok(ScannedTree {
        root: root.to_path_buf(),
        listing,
    })
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> TreeScanError + '_ {
    move |source| TreeScanError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(unix)]
fn mode_of(meta: &fs::Metadata, _default: u32) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & deltaapply::tree::format::MODE_MASK
}

#[cfg(not(unix))]
fn mode_of(_meta: &fs::Metadata, default: u32) -> u32 {
    default
}

#[cfg(unix)]
fn special_kind(t: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_t: &fs::FileType) -> &'static str {
    "special file"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("bin/sub")).unwrap();
        fs::create_dir(dir.path().join("empty")).unwrap();
        fs::write(dir.path().join("bin/app"), b"app").unwrap();
        fs::write(dir.path().join("README"), b"read me").unwrap();
        dir
    }

    #[cfg(unix)]
    #[test]
    fn records_every_kind_with_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tree();
        fs::set_permissions(
            dir.path().join("bin/app"),
            fs::Permissions::from_mode(0o4751),
        )
        .unwrap();
        std::os::unix::fs::symlink("bin/app", dir.path().join("app")).unwrap();
        let scanned = scan_tree(dir.path()).unwrap();
        let listed: Vec<String> = scanned
            .listing()
            .entries()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            listed,
            [
                "README (7 bytes, mode 644)",
                "app -> bin/app",
                "bin/ (mode 755)",
                "bin/app (3 bytes, mode 751)",
                "bin/sub/ (mode 755)",
                "empty/ (mode 755)",
            ]
        );
        let app = &scanned.listing().entries()[3];
        assert_eq!(scanned.disk_path(app), dir.path().join("bin/app"));
        assert_eq!(
            app.kind.file().unwrap().sha256,
            deltaapply::Sha256Digest::of(b"app")
        );
        // Deterministic: a second scan gives the same tree identity.
        assert_eq!(
            scan_tree(dir.path()).unwrap().listing().id(),
            scanned.listing().id()
        );
    }

    #[cfg(unix)]
    #[test]
    fn refuses_special_files() {
        let dir = tree();
        let fifo = dir.path().join("bin/pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("skipped: no mkfifo on this system (sockets are tested too)");
            return;
        }
        let err = scan_tree(dir.path()).unwrap_err();
        assert!(
            matches!(&err, TreeScanError::Special { kind: "fifo", path } if *path == fifo),
            "{err}"
        );
        assert!(err.to_string().contains("bin/pipe"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn refuses_sockets() {
        let dir = tree();
        let path = dir.path().join("ctl.sock");
        let _socket = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let err = scan_tree(dir.path()).unwrap_err();
        assert!(
            matches!(err, TreeScanError::Special { kind: "socket", .. }),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn refuses_links_out_of_the_tree() {
        let chain = |err: &TreeScanError| match std::error::Error::source(err) {
            Some(source) => format!("{err}: {source}"),
            None => err.to_string(),
        };
        for (target, problem) in [("/etc/passwd", "absolute"), ("../../x", "out of the tree")] {
            let dir = tree();
            std::os::unix::fs::symlink(target, dir.path().join("bin/link")).unwrap();
            let err = scan_tree(dir.path()).unwrap_err();
            assert!(
                matches!(err, TreeScanError::Listing { .. }),
                "{}",
                chain(&err)
            );
            assert!(
                chain(&err).contains(problem) && chain(&err).contains("bin/link"),
                "{}",
                chain(&err)
            );
        }
        let dir = tree();
        std::os::unix::fs::symlink("bin", dir.path().join("via")).unwrap();
        std::os::unix::fs::symlink("via/app", dir.path().join("through")).unwrap();
        let err = scan_tree(dir.path()).unwrap_err();
        assert!(
            chain(&err).contains("another symbolic link"),
            "{}",
            chain(&err)
        );
        // A link that goes up but stays inside, even dangling, is fine.
        let dir = tree();
        std::os::unix::fs::symlink("../gone", dir.path().join("bin/up")).unwrap();
        scan_tree(dir.path()).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn refuses_non_utf8_names_and_targets() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let dir = tree();
        let bad = dir.path().join(OsStr::from_bytes(b"caf\xe9"));
        fs::write(&bad, b"x").unwrap();
        let err = scan_tree(dir.path()).unwrap_err();
        assert!(
            matches!(&err, TreeScanError::NotUtf8 { what: "name", path } if *path == bad),
            "{err}"
        );

        let dir = tree();
        std::os::unix::fs::symlink(OsStr::from_bytes(b"caf\xe9"), dir.path().join("l")).unwrap();
        let err = scan_tree(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                TreeScanError::NotUtf8 {
                    what: "link target",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn refuses_names_a_tree_path_cannot_hold() {
        let dir = tree();
        fs::write(dir.path().join("bin/nul.txt"), b"x").unwrap();
        let err = scan_tree(dir.path()).unwrap_err();
        assert!(matches!(err, TreeScanError::BadPath { .. }), "{err}");
        assert!(err.to_string().contains("nul.txt"), "{err}");
    }

    #[test]
    fn the_root_must_be_a_real_directory() {
        let dir = tree();
        let err = scan_tree(&dir.path().join("README")).unwrap_err();
        assert!(matches!(err, TreeScanError::NotADirectory { .. }), "{err}");
        #[cfg(unix)]
        {
            let link = dir.path().join("bin-link");
            std::os::unix::fs::symlink("bin", &link).unwrap();
            let err = scan_tree(&link).unwrap_err();
            assert!(matches!(err, TreeScanError::NotADirectory { .. }), "{err}");
        }
        let err = scan_tree(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, TreeScanError::Io { .. }), "{err}");
    }
}
