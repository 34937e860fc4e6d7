//! The journal of an in-place tree update: which patch it belongs to and the complete
//! list of commit operations, written atomically beside the tree before the first
//! change to it, so that a run interrupted during the commit can finish it.
//!
//! The file is UTF-8 text, one record per line, fields separated by a tab (tree paths
//! and link targets cannot hold tabs or newlines):
//!
//! ```text
//! deltaapply tree journal v1
//! patch <sha256 of the tree patch's payload>
//! old <old tree digest>
//! new <new tree digest>
//! delete\tPATH            remove an old file or link (absent is fine)
//! rmdir\tPATH             remove an old directory if it is empty
//! mkdir\tMODE\tPATH       create a directory with MODE (octal; its final mode follows)
//! place\tNAME\tSIZE\tSHA256\tPATH   rename staged file NAME over PATH
//! link\tPATH\tTARGET      make PATH a symbolic link to TARGET
//! mode\tMODE\tPATH        set the permission bits of a file or directory
//! end <sha256 of every byte before this line>
//! ```

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::container::FileId;
use crate::digest::Sha256Digest;
use crate::tree::format::{EntryKind, Listing, MODE_MASK};
use crate::tree::path::TreePath;

/// The first line this version writes.
const MAGIC: &str = "deltaapply tree journal v2";
/// The first line of the journals earlier versions wrote (always for a tree patch).
const MAGIC_V1: &str = "deltaapply tree journal v1";

/// The largest journal read: a million entries (the most a listing has) with two
/// operations each of full-length paths stay well below it.
pub const MAX_JOURNAL: u64 = 256 << 20;

/// One idempotent commit operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Remove an old file or link.
    Delete(TreePath),
    /// Remove an old directory if it is empty.
    DeleteDir(TreePath),
    /// Create a directory with this mode (writable by its owner, so that it can be
    /// filled; a [`Op::Mode`] gives it its exact mode at the end).
    Mkdir(TreePath, u32),
    /// Rename staged file `name` over the path, which must then hold `file`.
    Place {
        /// The staged file's name in the staging directory.
        name: String,
        /// What it holds.
        file: FileId,
        /// Where it goes.
        path: TreePath,
    },
    /// Make the path a symbolic link to the target.
    Link(TreePath, String),
    /// Set the permission bits.
    Mode(TreePath, u32),
}

impl Op {
    /// The tree path the operation changes.
    pub fn path(&self) -> &TreePath {
        match self {
            Op::Delete(p) | Op::DeleteDir(p) | Op::Mkdir(p, _) | Op::Link(p, _) => p,
            Op::Mode(p, _) => p,
            Op::Place { path, .. } => path,
        }
    }
}

/// A journal: the update it belongs to and its operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    /// SHA-256 of the tree patch's payload (it covers the index, so both trees and
    /// every recipe); `None` for a repair, which applies no patch.
    pub patch: Option<Sha256Digest>,
    /// The old tree's digest.
    pub old: Sha256Digest,
    /// The new tree's digest: the listing every operation is checked against before a
    /// resumed commit carries it out ([`Journal::check_against`]).
    pub new: Sha256Digest,
    /// The operations, in order.
    pub ops: Vec<Op>,
}

impl Journal {
    /// The journal's text.
    pub fn encode(&self) -> String {
        let patch = self
            .patch
            .map_or_else(|| "none".to_string(), |p| p.to_string());
        let mut s = format!(
            "{MAGIC}\npatch {patch}\nold {}\nnew {}\n",
            self.old, self.new
        );
        for op in &self.ops {
            // Writing to a String cannot fail.
            let _ = match op {
                Op::Delete(p) => writeln!(s, "delete\t{p}"),
                Op::DeleteDir(p) => writeln!(s, "rmdir\t{p}"),
                Op::Mkdir(p, mode) => writeln!(s, "mkdir\t{mode:o}\t{p}"),
                Op::Place { name, file, path } => {
                    writeln!(s, "place\t{name}\t{}\t{}\t{path}", file.size, file.sha256)
                }
                Op::Link(p, target) => writeln!(s, "link\t{p}\t{target}"),
                Op::Mode(p, mode) => writeln!(s, "mode\t{mode:o}\t{p}"),
            };
        }
        let end = Sha256Digest::of(s.as_bytes());
        let _ = writeln!(s, "end {end}");
        s
    }

    /// Parses a journal's text; an error says why it is not one this version wrote whole.
    /// Its checksum only tells a torn write from a whole one: it is no proof of who
    /// wrote it, which is why a resumed commit checks the operations against a trusted
    /// listing first.
    pub fn decode(text: &str) -> Result<Journal, String> {
        let body_end = text
            .trim_end_matches('\n')
            .rfind('\n')
            .map(|i| i + 1)
            .ok_or("too short")?;
        let (body, end) = text.split_at(body_end);
        let end = end
            .strip_prefix("end ")
            .and_then(|h| h.strip_suffix('\n'))
            .and_then(Sha256Digest::from_hex)
            .ok_or("no end line")?;
        if end != Sha256Digest::of(body.as_bytes()) {
            return Err("its checksum does not match its contents".into());
        }
        let mut lines = body.lines();
        let v1 = match lines.next() {
            Some(MAGIC) => false,
            Some(MAGIC_V1) => true,
            _ => return Err("it does not start with the journal line".into()),
        };
        let mut field = |name: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .ok_or_else(|| format!("no {name} line"))
        };
        let digest = |name: &str, value: &str| {
            Sha256Digest::from_hex(value).ok_or_else(|| format!("no {name} line"))
        };
        let patch = match field("patch")? {
            "none" if !v1 => None,
            value => Some(digest("patch", value)?),
        };
        let old = digest("old", field("old")?)?;
        let new = digest("new", field("new")?)?;
        let mut ops = Vec::new();
        for line in lines {
            ops.push(parse_op(line).ok_or_else(|| format!("bad operation {line:?}"))?);
        }
        Ok(Journal {
            patch,
            old,
            new,
            ops,
        })
    }

    /// Checks that every operation is one an update to `new` (the listing whose digest
    /// is the journal's `new`, taken from a verified patch or manifest) can have, as
    /// strictly as the signed index itself is checked: every file placed is one of the
    /// listing's files with its size and SHA-256 under its own staged name, every link
    /// is one of the listing's links with its target (validated with the listing),
    /// every directory made is one of its directories, every mode of a listed file is
    /// the listing's, and nothing the new tree has as a file is deleted.
    pub fn check_against<R>(&self, new: &Listing<R>) -> Result<(), String> {
        if new.id().sha256 != self.new {
            return Err("it is for another tree than the one given".into());
        }
        for op in &self.ops {
            let path = op.path();
            let entry = new.get(path);
            let kind = entry.map(|e| &e.kind);
            let ok = match op {
                Op::Delete(_) => !matches!(
                    kind,
                    Some(EntryKind::File { .. } | EntryKind::Symlink { .. })
                ),
                Op::DeleteDir(_) => !matches!(kind, Some(EntryKind::Dir)),
                Op::Mkdir(_, mode) => {
                    matches!(entry, Some(e) if matches!(e.kind, EntryKind::Dir) && *mode == e.mode | 0o700)
                }
                Op::Place { name, file, .. } => {
                    let position = new.position(path);
                    entry.and_then(|e| e.kind.file()) == Some(*file)
                        && position.is_some_and(|i| *name == format!("f{i}"))
                }
                Op::Link(_, target) => {
                    matches!(kind, Some(EntryKind::Symlink { target: t }) if t == target)
                }
                // A listed file gets exactly its mode; a directory its mode, or its
                // mode on disk made owner-writable for the commit (which a later
                // operation sets back); an unlisted path is a directory being emptied,
                // which the commit only touches if it is still a directory.
                Op::Mode(_, mode) => match entry {
                    Some(e) if matches!(e.kind, EntryKind::File { .. }) => *mode == e.mode,
                    Some(e) if matches!(e.kind, EntryKind::Dir) => {
                        *mode == e.mode || mode & 0o700 == 0o700
                    }
                    Some(_) => false,
                    None => true,
                },
            };
            if !ok {
                return Err(format!(
                    "its operation on {path} is not one an update to the new tree has"
                ));
            }
        }
        Ok(())
    }

    /// Writes the journal to `path` atomically: a temporary file beside it (created
    /// new, readable and writable by its owner only), synced, renamed, and the directory
    /// synced.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let tmp = temp_path(path);
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        crate::platform::create_mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(self.encode().as_bytes())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        crate::stage::sync_parent(path)
    }
}

/// The temporary name a journal is written under before its rename.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

fn parse_mode(s: &str) -> Option<u32> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| m & !MODE_MASK == 0)
}

fn parse_op(line: &str) -> Option<Op> {
    let fields: Vec<&str> = line.split('\t').collect();
    let path = |s: &str| TreePath::new(s).ok();
    Some(match fields.as_slice() {
        ["delete", p] => Op::Delete(path(p)?),
        ["rmdir", p] => Op::DeleteDir(path(p)?),
        ["mkdir", m, p] => Op::Mkdir(path(p)?, parse_mode(m)?),
        ["place", name, size, sha, p] => {
            let ok_name = name.len() > 1
                && name.starts_with('f')
                && name[1..].bytes().all(|b| b.is_ascii_digit());
            if !ok_name {
                return None;
            }
            Op::Place {
                name: (*name).to_string(),
                file: FileId {
                    size: size.parse().ok()?,
                    sha256: Sha256Digest::from_hex(sha)?,
                },
                path: path(p)?,
            }
        }
        ["link", p, target] if !target.is_empty() => Op::Link(path(p)?, (*target).to_string()),
        ["mode", m, p] => Op::Mode(path(p)?, parse_mode(m)?),
        _ => return None,
    })
}

/// Why a journal on disk was not read.
#[derive(Debug)]
pub enum ReadError {
    /// Reading it failed.
    Io(io::Error),
    /// It is not one this applier may trust to be its own: why.
    Refused(String),
}

/// Reads the journal at `path`, `Ok(None)` if there is none. It must be a regular file
/// (a link is never followed), owned by the user running the applier, writable by no
/// one else, and at most [`MAX_JOURNAL`] bytes.
pub fn read(path: &Path) -> Result<Option<String>, ReadError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Io(e)),
        Ok(meta) => check_private(&meta, false).map_err(ReadError::Refused)?,
    }
    let file = open_nofollow(path).map_err(ReadError::Io)?;
    let mut bytes = Vec::new();
    file.take(MAX_JOURNAL + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_JOURNAL {
        return Err(ReadError::Refused(format!(
            "it is larger than the {MAX_JOURNAL} bytes a journal can be"
        )));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Checks that what `meta` describes is a regular file (`dir` false) or a directory
/// (`dir` true), not a link, owned by the effective user and writable by no one else.
/// `Err` says what is wrong.
pub fn check_private(meta: &fs::Metadata, dir: bool) -> Result<(), String> {
    let kind_ok = if dir { meta.is_dir() } else { meta.is_file() };
    if !kind_ok {
        let wanted = if dir { "a directory" } else { "a regular file" };
        return Err(format!("it is not {wanted} (a link is never followed)"));
    }
    crate::platform::check_owner(meta)
}

/// Opens a file for reading without following a link in its last component.
fn open_nofollow(path: &Path) -> io::Result<fs::File> {
    crate::platform::open_nofollow(path)
}

/// Syncs a directory (no-op where directories cannot be opened).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    crate::platform::sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_edits() {
        let p = |s: &str| TreePath::new(s).unwrap();
        let j = Journal {
            patch: Some(Sha256Digest([1; 32])),
            old: Sha256Digest([2; 32]),
            new: Sha256Digest([3; 32]),
            ops: vec![
                Op::Delete(p("a b")),
                Op::DeleteDir(p("d")),
                Op::Mkdir(p("e"), 0o755),
                Op::Place {
                    name: "f3".into(),
                    file: FileId {
                        size: 4,
                        sha256: Sha256Digest([4; 32]),
                    },
                    path: p("e/x"),
                },
                Op::Link(p("l"), "e/x".into()),
                Op::Mode(p("e"), 0o700),
            ],
        };
        let text = j.encode();
        assert_eq!(Journal::decode(&text).unwrap(), j);
        assert!(Journal::decode(&text.replace("a b", "a c")).is_err());
        assert!(Journal::decode(&text[..text.len() - 2]).is_err());
        assert!(Journal::decode("").is_err());
    }
}
