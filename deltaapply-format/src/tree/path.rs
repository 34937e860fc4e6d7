//! The validated path of an entry in a release tree, and the check that a list of such
//! paths can be written to any filesystem without two entries landing on one file.
//!
//! Unlike a publish directory's [`crate::relpath::RelPath`], whose names we choose, a
//! release tree holds whatever names the product has (spaces, non-ASCII letters), so
//! [`TreePath`] allows any UTF-8 name except what could escape the tree or mean
//! something else on some platform.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Longest tree path, in bytes.
pub const MAX_TREE_PATH: usize = 4096;

/// Longest component of a tree path, in bytes (the common filesystem limit).
pub const MAX_COMPONENT: usize = 255;

/// Most components in a tree path.
pub const MAX_DEPTH: usize = 128;

/// A path inside a release tree: `/`-separated UTF-8 components, each non-empty, not
/// `.` or `..`, without NUL, `\`, `:` or control characters, not a Windows device name
/// (`CON`, `nul.txt`, `COM1`…), not ending in a space or a dot (Windows drops those);
/// at most [`MAX_DEPTH`] components of [`MAX_COMPONENT`] bytes, [`MAX_TREE_PATH`] in
/// all. So it is always relative and never leaves the tree by its own text; a path
/// that passes through a symbolic link is a separate, on-disk check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TreePath(String);

/// Why a tree path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tree path {path:?} {problem}")]
pub struct TreePathError {
    /// The path as given (lossily, if it was not UTF-8).
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

impl TreePath {
    /// Validates `s`.
    pub fn new(s: &str) -> Result<TreePath, TreePathError> {
        let refuse = |problem: String| TreePathError {
            path: s.to_string(),
            problem,
        };
        if s.is_empty() {
            return Err(refuse("is empty".into()));
        }
        if s.len() > MAX_TREE_PATH {
            return Err(refuse(format!("is longer than {MAX_TREE_PATH} bytes")));
        }
        if s.starts_with('/') {
            return Err(refuse("is absolute".into()));
        }
        let components: Vec<&str> = s.split('/').collect();
        if components.len() > MAX_DEPTH {
            return Err(refuse(format!("has more than {MAX_DEPTH} components")));
        }
        for c in components {
            if let Some(problem) = component_problem(c) {
                return Err(refuse(problem));
            }
        }
        Ok(TreePath(s.to_string()))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its components.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Its parent directory, or `None` at the top of the tree.
    pub fn parent(&self) -> Option<TreePath> {
        self.0
            .rsplit_once('/')
            .map(|(parent, _)| TreePath(parent.to_string()))
    }

    /// The path below `root`, built component by component.
    pub fn under(&self, root: &Path) -> PathBuf {
        let mut path = root.to_path_buf();
        for c in self.components() {
            path.push(c);
        }
        path
    }

    /// The key two paths share when a case-insensitive filesystem would take them for
    /// one file: the lowercased text. (Unicode normalisation, as on macOS, is not
    /// folded.)
    pub fn fold_key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for TreePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn component_problem(c: &str) -> Option<String> {
    if c.is_empty() {
        return Some("has an empty component (`//` or a trailing `/`)".into());
    }
    if c == "." || c == ".." {
        return Some(format!("has a {c:?} component"));
    }
    if c.len() > MAX_COMPONENT {
        return Some(format!("has a component longer than {MAX_COMPONENT} bytes"));
    }
    if let Some(bad) = c
        .chars()
        .find(|&ch| ch.is_control() || ch == '\\' || ch == ':')
    {
        return Some(format!("has the character {bad:?} in a component"));
    }
    if c.ends_with(' ') || c.ends_with('.') {
        return Some(format!(
            "has a component ending in {:?}, which Windows drops",
            &c[c.len() - 1..]
        ));
    }
    if crate::relpath::is_windows_device(c) {
        return Some(format!("has {c:?}, a name Windows reserves"));
    }
    None
}

/// A problem with a tree's list of paths as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeListError {
    /// The same path twice.
    #[error("tree path {0:?} is listed twice")]
    Duplicate(String),
    /// Two paths that differ only in case: one file on a case-insensitive filesystem.
    #[error(
        "tree paths {0:?} and {1:?} differ only in case: on a case-insensitive filesystem \
         they are one file"
    )]
    CaseCollision(String, String),
    /// A path is listed both as a file (or link) and as a directory above another path.
    #[error("tree path {0:?} is a file, but {1:?} needs it to be a directory")]
    FileAsDirectory(String, String),
}

/// Checks that `paths` (files, links and directories of one tree) name distinct files
/// on every filesystem: no duplicates, no two paths differing only in case, and no
/// path that is both a non-directory entry and the parent of another. Each entry
/// comes with whether it is a directory.
pub fn check_tree_paths<'a>(
    entries: impl IntoIterator<Item = (&'a TreePath, bool)>,
) -> Result<(), TreeListError> {
    let mut by_fold: BTreeMap<String, (&TreePath, bool)> = BTreeMap::new();
    let mut all = Vec::new();
    for (path, is_dir) in entries {
        if let Some((seen, _)) = by_fold.insert(path.fold_key(), (path, is_dir)) {
            return Err(if seen == path {
                TreeListError::Duplicate(path.to_string())
            } else {
                TreeListError::CaseCollision(seen.to_string(), path.to_string())
            });
        }
        all.push(path);
    }
    for path in all {
        let mut parent = path.parent();
        while let Some(p) = parent {
            if let Some((entry, false)) = by_fold.get(&p.fold_key()) {
                return Err(TreeListError::FileAsDirectory(
                    entry.to_string(),
                    path.to_string(),
                ));
            }
            parent = p.parent();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_names() {
        for ok in [
            "a",
            "bin/app",
            "lib/python3.12/site-packages/numpy/__init__.py",
            "docs/Read me (v2).txt",
            "données/été.csv",
            ".hidden/.config",
            "a..b",
            "...x",
        ] {
            let p = TreePath::new(ok).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.as_str(), ok);
        }
    }

    #[test]
    fn refuses_escapes_and_platform_traps() {
        let long_component = "x".repeat(256);
        let deep = vec!["d"; 129].join("/");
        let long_path = vec!["y".repeat(200); 21].join("/");
        for bad in [
            "",
            "/etc/passwd",
            "../up",
            "a/../../up",
            "a/./b",
            ".",
            "a//b",
            "a/",
            "a\\b",
            "C:/x",
            "a\0b",
            "line\nbreak",
            "tab\tname",
            "CON",
            "dir/nul.txt",
            "com1",
            "trailing.",
            "trailing ",
            long_component.as_str(),
            deep.as_str(),
            long_path.as_str(),
        ] {
            assert!(TreePath::new(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn parents_and_under() {
        let p = TreePath::new("a/b/c").unwrap();
        assert_eq!(p.parent().unwrap().as_str(), "a/b");
        assert_eq!(p.parent().unwrap().parent().unwrap().as_str(), "a");
        assert_eq!(p.parent().unwrap().parent().unwrap().parent(), None);
        assert_eq!(p.under(Path::new("/root")), PathBuf::from("/root/a/b/c"));
    }

    #[test]
    fn tree_lists() {
        let p = |s: &str| TreePath::new(s).unwrap();
        let (a, b, d) = (p("bin/app"), p("bin/lib.so"), p("bin"));
        assert_eq!(
            check_tree_paths([(&a, false), (&b, false), (&d, true)]),
            Ok(())
        );
        assert_eq!(
            check_tree_paths([(&a, false), (&a, false)]),
            Err(TreeListError::Duplicate("bin/app".into()))
        );
        let upper = p("BIN/App");
        assert!(matches!(
            check_tree_paths([(&a, false), (&upper, false)]),
            Err(TreeListError::CaseCollision(..))
        ));
        let file = p("bin");
        assert!(matches!(
            check_tree_paths([(&a, false), (&file, false)]),
            Err(TreeListError::FileAsDirectory(..))
        ));
    }
}
