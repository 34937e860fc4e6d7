//! Comparing an installed directory with a release's listing: which listed entries
//! are missing, of another kind, modified, or reachable only through a symbolic link.
//! Only listed paths are looked at, so files the user added never count. Each file is
//! hashed at most once however many listings it is compared with.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::digest::{Sha256Digest, hash_reader};
use crate::tree::format::{EntryKind, Listing, MODE_MASK};
use crate::tree::path::TreePath;

/// How an installed entry differs from the listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "problem")]
pub enum Mismatch {
    /// Nothing is there.
    Missing,
    /// Something of another kind is there (`file`, `dir`, `symlink` or `other`).
    Kind {
        /// What was found.
        found: &'static str,
    },
    /// A file with other content.
    Modified {
        /// Its size.
        size: u64,
        /// Its SHA-256 (when the size matched and it was hashed).
        sha256: Option<Sha256Digest>,
    },
    /// A link with another target.
    LinkTarget {
        /// The target found.
        found: String,
    },
    /// The right content with other permission bits.
    Mode {
        /// The bits found.
        found: u32,
    },
    /// A directory on the way is a symbolic link (or not a directory).
    ThroughLink {
        /// The ancestor that is not a real directory.
        at: String,
    },
}

impl Mismatch {
    /// True when only the permission bits differ (the content is right).
    pub fn is_mode_only(&self) -> bool {
        matches!(self, Mismatch::Mode { .. })
    }
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Missing => f.write_str("missing"),
            Mismatch::Kind { found } => write!(f, "a {found} is there instead"),
            Mismatch::Modified { size, sha256 } => match sha256 {
                Some(h) => write!(f, "modified ({size} bytes, sha256 {h})"),
                None => write!(f, "modified ({size} bytes, another size)"),
            },
            Mismatch::LinkTarget { found } => write!(f, "links to {found:?} instead"),
            Mismatch::Mode { found } => write!(f, "has mode {found:o}"),
            Mismatch::ThroughLink { at } => {
                write!(f, "lies under {at:?}, which is not a real directory")
            }
        }
    }
}

/// One listed entry that the installed tree does not match.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    /// The entry's path.
    pub path: TreePath,
    /// How it differs.
    #[serde(flatten)]
    pub mismatch: Mismatch,
}

/// What is at one path of the installed tree.
#[derive(Debug, Clone)]
enum Seen {
    Missing,
    File {
        size: u64,
        mode: u32,
        sha256: Option<Sha256Digest>,
    },
    Dir {
        mode: u32,
    },
    Symlink {
        target: Option<String>,
    },
    Other,
}

/// Compares an installed tree with listings, remembering what it has read.
#[derive(Debug)]
pub struct Prober {
    root: PathBuf,
    seen: HashMap<TreePath, Seen>,
}

impl Prober {
    /// A prober for the tree at `root`.
    pub fn new(root: &Path) -> Prober {
        Prober {
            root: root.to_path_buf(),
            seen: HashMap::new(),
        }
    }

    /// Every entry of `listing` the installed tree does not match, in listing order.
    /// `hashed` is told the bytes of each file hashed (for progress).
    pub fn compare(
        &mut self,
        listing: &Listing,
        hashed: &mut dyn FnMut(u64),
    ) -> io::Result<Vec<Difference>> {
        let mut out = Vec::new();
        for entry in listing.entries() {
            if let Some(at) = self.blocked(&entry.path)? {
                out.push(Difference {
                    path: entry.path.clone(),
                    mismatch: Mismatch::ThroughLink { at },
                });
                continue;
            }
            let want_hash = match entry.kind {
                EntryKind::File { size, .. } => Some(size),
                _ => None,
            };
            let seen = self.look(&entry.path, want_hash, hashed)?;
            let mismatch = match (&entry.kind, seen) {
                (_, Seen::Missing) => Some(Mismatch::Missing),
                (
                    EntryKind::File { size, sha256, .. },
                    Seen::File {
                        size: s,
                        mode,
                        sha256: h,
                    },
                ) => {
                    if s != *size || h != Some(*sha256) {
                        Some(Mismatch::Modified { size: s, sha256: h })
                    } else if mode != entry.mode {
                        Some(Mismatch::Mode { found: mode })
                    } else {
                        None
                    }
                }
                (EntryKind::Dir, Seen::Dir { mode }) => {
                    (mode != entry.mode).then_some(Mismatch::Mode { found: mode })
                }
                (EntryKind::Symlink { target }, Seen::Symlink { target: found }) => {
                    (found.as_deref() != Some(target.as_str())).then(|| Mismatch::LinkTarget {
                        found: found.unwrap_or_default(),
                    })
                }
                (_, seen) => Some(Mismatch::Kind {
                    found: match seen {
                        Seen::File { .. } => "file",
                        Seen::Dir { .. } => "dir",
                        Seen::Symlink { .. } => "symlink",
                        _ => "other",
                    },
                }),
            };
            if let Some(mismatch) = mismatch {
                out.push(Difference {
                    path: entry.path.clone(),
                    mismatch,
                });
            }
        }
        Ok(out)
    }

    /// The first ancestor of `path` that is not a real directory, if any.
    fn blocked(&mut self, path: &TreePath) -> io::Result<Option<String>> {
        let mut ancestors = Vec::new();
        let mut parent = path.parent();
        while let Some(p) = parent {
            parent = p.parent();
            ancestors.push(p);
        }
        for a in ancestors.into_iter().rev() {
            match self.look(&a, None, &mut |_| {})? {
                Seen::Dir { .. } => {}
                _ => return Ok(Some(a.to_string())),
            }
        }
        Ok(None)
    }

    /// What is at `path`; a file is hashed when its size is `hash_if_size`.
    fn look(
        &mut self,
        path: &TreePath,
        hash_if_size: Option<u64>,
        hashed: &mut dyn FnMut(u64),
    ) -> io::Result<Seen> {
        if let Some(seen) = self.seen.get(path) {
            let needs_hash = matches!(seen, Seen::File { size, sha256: None, .. } if Some(*size) == hash_if_size);
            if !needs_hash {
                return Ok(seen.clone());
            }
        }
        let full = path.under(&self.root);
        let seen = match fs::symlink_metadata(&full) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Seen::Missing,
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => Seen::Missing,
            Err(e) => return Err(e),
            Ok(meta) => {
                let mode = permission_bits(&meta);
                let ft = meta.file_type();
                if ft.is_file() {
                    let sha256 = if Some(meta.len()) == hash_if_size {
                        let (len, digest) =
                            hash_reader(fs::File::open(&full)?, &mut |c| hashed(c.len() as u64))?;
                        (len == meta.len()).then_some(digest)
                    } else {
                        None
                    };
                    Seen::File {
                        size: meta.len(),
                        mode,
                        sha256,
                    }
                } else if ft.is_dir() {
                    Seen::Dir { mode }
                } else if ft.is_symlink() {
                    Seen::Symlink {
                        target: fs::read_link(&full)
                            .ok()
                            .and_then(|t| t.to_str().map(str::to_string)),
                    }
                } else {
                    Seen::Other
                }
            }
        };
        self.seen.insert(path.clone(), seen.clone());
        Ok(seen)
    }
}

fn permission_bits(meta: &fs::Metadata) -> u32 {
    crate::platform::permission_bits(meta) & MODE_MASK
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::tree::format::Entry;
    use std::os::unix::fs::PermissionsExt;

    fn entry(path: &str, mode: u32, kind: EntryKind) -> Entry {
        Entry {
            path: TreePath::new(path).unwrap(),
            mode,
            kind,
        }
    }

    #[test]
    fn finds_each_kind_of_difference_and_ignores_user_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("d")).unwrap();
        fs::set_permissions(root.join("d"), fs::Permissions::from_mode(0o755)).unwrap();
        for (name, body, mode) in [
            ("a", "alpha", 0o644),
            ("b", "BETA", 0o644),
            ("x", "x", 0o600),
        ] {
            fs::write(root.join(name), body).unwrap();
            fs::set_permissions(root.join(name), fs::Permissions::from_mode(mode)).unwrap();
        }
        fs::write(root.join("user-file"), "mine").unwrap();
        std::os::unix::fs::symlink("/", root.join("l")).unwrap();
        let file = |body: &[u8]| EntryKind::File {
            size: body.len() as u64,
            sha256: Sha256Digest::of(body),
            recipe: (),
        };
        let listing = Listing::new(vec![
            entry("a", 0o644, file(b"alpha")),
            entry("b", 0o644, file(b"beta")),
            entry("c", 0o644, file(b"gone")),
            entry("d", 0o755, EntryKind::Dir),
            entry("l", 0, EntryKind::Symlink { target: "d".into() }),
            entry("x", 0o644, file(b"x")),
        ])
        .unwrap();
        let mut hashed = 0;
        let diffs = Prober::new(root)
            .compare(&listing, &mut |n| hashed += n)
            .unwrap();
        let got: Vec<(String, String)> = diffs
            .iter()
            .map(|d| (d.path.to_string(), d.mismatch.to_string()))
            .collect();
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(matches!(
            diffs[0].mismatch,
            Mismatch::Modified {
                sha256: Some(_),
                ..
            }
        ));
        assert_eq!(diffs[1].mismatch, Mismatch::Missing);
        assert_eq!(
            diffs[2].mismatch,
            Mismatch::LinkTarget { found: "/".into() }
        );
        assert_eq!(diffs[3].mismatch, Mismatch::Mode { found: 0o600 });
        assert_eq!(hashed, 5 + 4 + 1);

        // A directory replaced by a link: entries under it are "through a link".
        fs::remove_dir(root.join("d")).unwrap();
        std::os::unix::fs::symlink("/tmp", root.join("d")).unwrap();
        let listing = Listing::new(vec![
            entry("d", 0o755, EntryKind::Dir),
            entry("d/f", 0o644, file(b"f")),
        ])
        .unwrap();
        let diffs = Prober::new(root).compare(&listing, &mut |_| {}).unwrap();
        assert_eq!(diffs[0].mismatch, Mismatch::Kind { found: "symlink" });
        assert_eq!(diffs[1].mismatch, Mismatch::ThroughLink { at: "d".into() });
    }
}
