//! The ways a patch can turn a source file into a target file.

use std::fmt;
use std::str::FromStr;

/// A patch method, as numbered in the container header.
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
    /// A whole release directory: an index of the old and new trees followed by one
    /// container of the other methods per file that cannot be copied from the old
    /// tree (`format-spec/tree-v1.md`). Applies to a directory, never to a file.
    Tree,
}

impl Method {
    /// The methods that turn one file into another, in the order `auto` breaks ties.
    pub const ALL: [Method; 3] = [Method::Bsdiff, Method::ZstdRef, Method::Full];

    /// Every method a header may name: the file methods and [`Method::Tree`].
    const ANY: [Method; 4] = [Method::Bsdiff, Method::ZstdRef, Method::Full, Method::Tree];

    /// The number stored in the header.
    pub fn code(self) -> u8 {
        match self {
            Method::Bsdiff => 1,
            Method::ZstdRef => 2,
            Method::Full => 3,
            Method::Tree => 4,
        }
    }

    /// The method with header number `code`, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ANY.into_iter().find(|m| m.code() == code)
    }

    /// The name used on command lines and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Method::Bsdiff => "bsdiff",
            Method::ZstdRef => "zstd",
            Method::Full => "full",
            Method::Tree => "tree",
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
        Self::ANY
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown method {s:?} (expected bsdiff, zstd, full or tree)"))
    }
}

impl serde::Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
