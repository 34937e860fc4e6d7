//! A path inside a publish directory ([`RelPath`]), and the Windows device names that
//! no path component may be. The manifest (its file paths) and the tree paths both
//! use these rules; this module depends on neither.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A path inside a publish directory: 1 to 8 components of letters, digits, `.`, `_`,
/// `-`, separated by `/`; no component empty or starting with `.`; at most 255 bytes.
/// So it can never name anything outside the directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RelPath(String);

impl RelPath {
    /// Validates `s`.
    pub fn new(s: &str) -> Result<RelPath, String> {
        if s.is_empty() || s.len() > 255 {
            return Err(format!("{s:?}: a path must be 1 to 255 bytes"));
        }
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > 8 {
            return Err(format!("{s:?}: more than 8 components"));
        }
        for part in parts {
            if part.is_empty()
                || part.starts_with('.')
                || !part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(format!(
                    "{s:?}: each component must be letters, digits, '.', '_', '-', not empty and not starting with '.'"
                ));
            }
            if is_windows_device(part) {
                return Err(format!("{s:?}: {part:?} is a Windows device name"));
            }
        }
        Ok(RelPath(s.to_string()))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path below `root`.
    pub fn under(&self, root: &std::path::Path) -> std::path::PathBuf {
        self.0.split('/').fold(root.to_path_buf(), |p, c| p.join(c))
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RelPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RelPath::new(&s).map_err(serde::de::Error::custom)
    }
}

/// `CON`, `nul.txt`, `COM1`…: names Windows reserves in every directory.
pub fn is_windows_device(component: &str) -> bool {
    let stem = component
        .split('.')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rel_paths() {
        for good in ["full/abc.dpatch", "patches/0123-x_y.dpatch", "a"] {
            assert!(RelPath::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a/",
            ".hidden",
            "a/.b",
            "a\\b",
            "a\0b",
            "C:x",
            "a/b/c/d/e/f/g/h/i",
            "full/CON",
            "nul.txt",
            "x/com1.dpatch",
        ] {
            assert!(RelPath::new(bad).is_err(), "{bad:?}");
        }
    }
}
