//! The ways a patch can turn a source file into a target file, and what a container
//! is: a file patch of one of those methods, or a tree patch.

use std::fmt;
use std::str::FromStr;

/// A file patch method, as numbered in the container header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// Suffix-array matching with approximate matches: control, diff and extra
    /// streams, each zstd-compressed. Applies with positioned reads of the old file
    /// and bounded memory.
    Bsdiff,
    /// One zstd frame compressed with the whole old file as reference prefix.
    /// Applying holds the old file in memory.
    ZstdRef,
    /// The target file, zstd-compressed; needs no source.
    Full,
}

impl Method {
    /// The methods that turn one file into another, in the order `auto` breaks ties.
    pub const ALL: [Method; 3] = [Method::Bsdiff, Method::ZstdRef, Method::Full];

    /// The number stored in the header.
    pub fn code(self) -> u8 {
        match self {
            Method::Bsdiff => 1,
            Method::ZstdRef => 2,
            Method::Full => 3,
        }
    }

    /// The method with header number `code`, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }

    /// The name used on command lines and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Method::Bsdiff => "bsdiff",
            Method::ZstdRef => "zstd",
            Method::Full => "full",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown method {s:?} (expected bsdiff, zstd or full)"))
    }
}

impl serde::Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// What a container is, as its header's method byte says: a file patch of a
/// [`Method`], or a tree patch (method byte 4: an index of the old and new trees
/// followed by one file patch per file that cannot be copied from the old tree,
/// `format-spec/tree-v1.md`), which applies to a directory, never to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchKind {
    /// A patch of one file.
    File(Method),
    /// A patch of a whole release directory.
    Tree,
}

impl PatchKind {
    /// The method byte of a tree patch.
    const TREE_CODE: u8 = 4;

    /// Every kind a header may name, in method-byte order.
    const ANY: [PatchKind; 4] = [
        PatchKind::File(Method::Bsdiff),
        PatchKind::File(Method::ZstdRef),
        PatchKind::File(Method::Full),
        PatchKind::Tree,
    ];

    /// The method byte stored in the header.
    pub fn code(self) -> u8 {
        match self {
            PatchKind::File(m) => m.code(),
            PatchKind::Tree => Self::TREE_CODE,
        }
    }

    /// The kind with method byte `code`, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ANY.into_iter().find(|k| k.code() == code)
    }

    /// The name used in manifests and JSON: the file method's, or `tree`.
    pub fn name(self) -> &'static str {
        match self {
            PatchKind::File(m) => m.name(),
            PatchKind::Tree => "tree",
        }
    }
}

impl From<Method> for PatchKind {
    fn from(m: Method) -> Self {
        PatchKind::File(m)
    }
}

impl fmt::Display for PatchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PatchKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ANY
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown method {s:?} (expected bsdiff, zstd, full or tree)"))
    }
}

impl serde::Serialize for PatchKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for PatchKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
