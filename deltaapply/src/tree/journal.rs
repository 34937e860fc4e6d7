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
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::container::FileId;
use crate::digest::Sha256Digest;
use crate::tree::format::MODE_MASK;
use crate::tree::path::TreePath;

const MAGIC: &str = "deltaapply tree journal v1";

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

/// A journal: the patch it belongs to and its operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    /// SHA-256 of the tree patch's payload (it covers the index, so both trees and
    /// every recipe).
    pub patch: Sha256Digest,
    /// The old tree's digest.
    pub old: Sha256Digest,
    /// The new tree's digest.
    pub new: Sha256Digest,
    /// The operations, in order.
    pub ops: Vec<Op>,
}

impl Journal {
    /// The journal's text.
    pub fn encode(&self) -> String {
        let mut s = format!(
            "{MAGIC}\npatch {}\nold {}\nnew {}\n",
            self.patch, self.old, self.new
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
        if lines.next() != Some(MAGIC) {
            return Err("it does not start with the journal line".into());
        }
        let mut digest = |name: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .and_then(Sha256Digest::from_hex)
                .ok_or_else(|| format!("no {name} line"))
        };
        let patch = digest("patch")?;
        let old = digest("old")?;
        let new = digest("new")?;
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

    /// Writes the journal to `path` atomically: a temporary file beside it (created
    /// new), synced, renamed, and the directory synced.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let tmp = temp_path(path);
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
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

/// Reads the journal at `path`, `Ok(None)` if there is none.
pub fn read(path: &Path) -> io::Result<Option<String>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Syncs a directory (no-op where directories cannot be opened).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_edits() {
        let p = |s: &str| TreePath::new(s).unwrap();
        let j = Journal {
            patch: Sha256Digest([1; 32]),
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
