//! The release manifest: what a publish directory holds, signed as exact bytes by a
//! detached signature file. Normative description: `format-spec/manifest-v1.md`.
//!
//! The manifest names the newest release of one product and channel, its artifacts
//! (each with its size and SHA-256, a full image, and patches to it from older
//! releases), and the older releases still supported (with their full images, so that
//! the next build can diff against them and an applier can recognise them by hash).
//!
//! [`Manifest::parse`] refuses anything larger than [`MAX_MANIFEST_SIZE`], anything not
//! UTF-8, and every field outside its range, so that the rest of the code can trust the
//! values it reads. Signature checking ([`crate::signature::verify_manifest`]) comes
//! first: this parser only ever sees signed bytes.

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::method::PatchKind;

mod time;
mod tree;
mod validate;

pub use crate::relpath::RelPath;
pub use time::Timestamp;
pub use tree::tree_entries;
pub use validate::{check_artifact_name, check_label};

/// The manifest format this code reads and writes.
pub const MANIFEST_FORMAT: u32 = 1;

/// Largest manifest accepted, in bytes. A release with 100 file artifacts and 5
/// patches each is about 100 KiB; a tree artifact lists every entry of the tree,
/// about 400 bytes per file for the newest release and 250 for an older one, so this
/// holds a 10,000-file tree with four older releases.
pub const MAX_MANIFEST_SIZE: u64 = 16 << 20;

/// Most artifacts in one release.
pub const MAX_ARTIFACTS: usize = 1000;

/// Most older releases listed, and most patches to one artifact.
pub const MAX_PREVIOUS: usize = 64;

/// Longest product, channel, version or artifact name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// File name of the manifest in a publish directory.
pub const MANIFEST_FILE: &str = "manifest.toml";

/// File name of its detached signature file.
pub const SIGNATURE_FILE: &str = "manifest.toml.sig";

/// A parsed, validated manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: u32,
    /// What is released, e.g. `example-app`.
    pub product: String,
    /// Which stream of releases, e.g. `stable`.
    pub channel: String,
    /// The newest release's version (free-form text; order is given by `sequence`).
    pub version: String,
    /// Increases by at least one with every manifest published for this product and
    /// channel; appliers refuse a manifest older than one they accepted.
    pub sequence: u64,
    /// When the manifest was made.
    pub created: Timestamp,
    /// After this instant appliers refuse the manifest (a frozen feed).
    pub expires: Timestamp,
    /// The newest release's files.
    #[serde(rename = "artifact")]
    pub artifacts: Vec<Artifact>,
    /// Older releases still supported, newest first.
    #[serde(rename = "previous", default, skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<PreviousRelease>,
}

/// One file of a release (the newest, or an older one in `previous`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Its name, unique within the release (a plain file name).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: Sha256Digest,
    /// The full image, usable from any installed state.
    pub full: FullImage,
    /// Patches to it from releases older than its own, newest base first.
    #[serde(rename = "patch", default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<PatchEntry>,
    /// `tree` for a directory; absent for a file.
    #[serde(default, skip_serializing_if = "ArtifactKind::is_file")]
    pub kind: ArtifactKind,
    /// A tree's entries (`format-spec/tree-v1.md` §3), sorted by path. For a tree,
    /// `size` is the total of its files' sizes and `sha256` its listing digest; the
    /// full image and the patches are tree patches.
    #[serde(rename = "entry", default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<TreeEntry>,
}

/// Whether an artifact is one file or a directory tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactKind {
    /// A single file.
    #[default]
    File,
    /// A directory tree.
    Tree,
}

impl ArtifactKind {
    /// True for [`ArtifactKind::File`].
    pub fn is_file(&self) -> bool {
        *self == ArtifactKind::File
    }
}

/// One entry of a tree artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeEntry {
    /// Path inside the tree (a [`crate::tree::TreePath`]).
    pub path: String,
    /// `file`, `dir` or `symlink`.
    pub kind: TreeEntryKind,
    /// Permission bits (within 0o777; absent for a link).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mode: u32,
    /// A file's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// A file's SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256Digest>,
    /// A link's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The file's content on its own, for the per-file fallback: a signed patch-v1
    /// container of method full (listed for the newest release's files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<FileRef>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// The kind of a [`TreeEntry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TreeEntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
}

/// A published file named by path, size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// Path relative to the manifest.
    pub path: RelPath,
    /// Its size.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: Sha256Digest,
}

/// A published file: where it is, and its exact size and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullImage {
    /// Path relative to the manifest, e.g. `full/<sha256>.dpatch`.
    pub path: RelPath,
    /// Size of the file in bytes.
    pub size: u64,
    /// SHA-256 of the file.
    pub sha256: Sha256Digest,
    /// How the artifact is compressed inside it: `zstd` (a patch-v1 container of
    /// method full, whose payload is one zstd frame).
    pub compression: String,
    /// Memory applying it needs (the container's `apply_memory`).
    pub apply_memory: u64,
}

/// A patch from an older release to an artifact of the newest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchEntry {
    /// The older release's version.
    pub base_version: String,
    /// Size of the file the patch applies to.
    pub base_size: u64,
    /// SHA-256 of the file the patch applies to.
    pub base_sha256: Sha256Digest,
    /// Path of the patch file relative to the manifest.
    pub path: RelPath,
    /// Size of the patch file.
    pub size: u64,
    /// SHA-256 of the patch file.
    pub sha256: Sha256Digest,
    /// The patch's method (`tree` for a tree's patch).
    pub method: PatchKind,
    /// Memory applying it needs (the patch's `apply_memory`).
    pub apply_memory: u64,
}

/// An older release that is still supported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousRelease {
    /// Its version.
    pub version: String,
    /// Its sequence number (lower than the manifest's).
    pub sequence: u64,
    /// Its files, with their full images and the patches to them from releases
    /// older than it (kept from the manifest that published it, so that an applier
    /// can chain patches).
    #[serde(rename = "artifact")]
    pub artifacts: Vec<Artifact>,
}

/// Why manifest bytes were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Larger than [`MAX_MANIFEST_SIZE`].
    #[error("manifest is {size} bytes, more than the {MAX_MANIFEST_SIZE} allowed")]
    TooLarge {
        /// Its size.
        size: u64,
    },
    /// Not UTF-8.
    #[error("manifest is not UTF-8 text")]
    NotUtf8,
    /// Not TOML of the expected shape.
    #[error("manifest is not valid: {0}")]
    Syntax(String),
    /// A format this code does not read.
    #[error(
        "manifest format {format} is not supported (this applier reads format {MANIFEST_FORMAT})"
    )]
    UnsupportedFormat {
        /// The manifest's format.
        format: u32,
    },
    /// A field is out of range or inconsistent with another.
    #[error("manifest field {field}: {problem}")]
    Invalid {
        /// Where, e.g. `artifact[0].patch[1].path`.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

impl Manifest {
    /// Parses and validates manifest bytes (which should already have passed the
    /// signature check).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(ManifestError::TooLarge {
                size: bytes.len() as u64,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotUtf8)?;
        // The format is read on its own first, so that a newer manifest is reported as
        // such rather than as a shape error.
        #[derive(Deserialize)]
        struct FormatOnly {
            format: Option<u32>,
        }
        let format = toml::from_str::<FormatOnly>(text)
            .map_err(|e| ManifestError::Syntax(e.to_string().trim_end().to_string()))?
            .format;
        match format {
            Some(MANIFEST_FORMAT) => {}
            Some(format) => return Err(ManifestError::UnsupportedFormat { format }),
            None => return Err(ManifestError::Syntax("missing field `format`".into())),
        }
        let manifest: Manifest = toml::from_str(text)
            .map_err(|e| ManifestError::Syntax(e.to_string().trim_end().to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The artifact called `name`.
    pub fn artifact(&self, name: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.name == name)
    }

    /// Every release's artifacts with the release's version, newest release first.
    pub fn all_artifacts(&self) -> impl Iterator<Item = (&str, &Artifact)> {
        let newest = self.artifacts.iter().map(|a| (self.version.as_str(), a));
        let older = self
            .previous
            .iter()
            .flat_map(|r| r.artifacts.iter().map(move |a| (r.version.as_str(), a)));
        newest.chain(older)
    }

    /// Whether the manifest has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
format = 1
product = "p"
channel = "stable"
version = "1.1"
sequence = 2
created = 2026-11-01T00:00:00Z
expires = 2027-01-01T00:00:00Z

[[artifact]]
name = "app.bin"
size = 10
sha256 = "1111111111111111111111111111111111111111111111111111111111111111"

[artifact.full]
path = "full/aa.dpatch"
size = 5
sha256 = "2222222222222222222222222222222222222222222222222222222222222222"
compression = "zstd"
apply_memory = 4194314

[[artifact.patch]]
base_version = "1.0"
base_size = 9
base_sha256 = "3333333333333333333333333333333333333333333333333333333333333333"
path = "patches/bb.dpatch"
size = 4
sha256 = "4444444444444444444444444444444444444444444444444444444444444444"
method = "bsdiff"
apply_memory = 4194320

[[previous]]
version = "1.0"
sequence = 1

[[previous.artifact]]
name = "app.bin"
size = 9
sha256 = "3333333333333333333333333333333333333333333333333333333333333333"

[previous.artifact.full]
path = "full/cc.dpatch"
size = 5
sha256 = "5555555555555555555555555555555555555555555555555555555555555555"
compression = "zstd"
apply_memory = 4194313
"#;

    #[test]
    fn a_good_manifest_parses() {
        let m = Manifest::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(
            m.artifacts[0].patches[0].method,
            PatchKind::File(crate::method::Method::Bsdiff)
        );
        assert_eq!(m.previous[0].version, "1.0");
        assert!(!m.is_expired(Timestamp::parse("2026-12-01T00:00:00Z").unwrap()));
        assert!(m.is_expired(m.expires));
    }

    #[test]
    fn hostile_manifests_are_refused() {
        let edit = |from: &str, to: &str| {
            assert!(GOOD.contains(from), "{from}");
            GOOD.replacen(from, to, 1).into_bytes()
        };
        let nested = format!(
            "format = 1\nx = {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("not UTF-8", b"format = 1\nproduct = \"\xff\"\n".to_vec()),
            ("too large", vec![b'#'; (MAX_MANIFEST_SIZE + 1) as usize]),
            ("deep nesting", nested.into_bytes()),
            ("format 2", edit("format = 1", "format = 2")),
            ("no format", edit("format = 1", "")),
            ("missing field", edit("sequence = 2", "")),
            ("sequence 0", edit("sequence = 2", "sequence = 0")),
            ("negative size", edit("size = 10", "size = -10")),
            ("string size", edit("size = 10", "size = \"10\"")),
            (
                "expired before created",
                edit(
                    "expires = 2027-01-01T00:00:00Z",
                    "expires = 2026-01-01T00:00:00Z",
                ),
            ),
            (
                "local time",
                edit(
                    "created = 2026-11-01T00:00:00Z",
                    "created = 2026-11-01T00:00:00",
                ),
            ),
            (
                "offset time",
                edit(
                    "created = 2026-11-01T00:00:00Z",
                    "created = 2026-11-01T00:00:00+02:00",
                ),
            ),
            (
                "string time",
                edit(
                    "created = 2026-11-01T00:00:00Z",
                    "created = \"2026-11-01T00:00:00Z\"",
                ),
            ),
            (
                "path traversal",
                edit(
                    "path = \"patches/bb.dpatch\"",
                    "path = \"../../etc/passwd\"",
                ),
            ),
            (
                "absolute path",
                edit("path = \"full/aa.dpatch\"", "path = \"/etc/passwd\""),
            ),
            (
                "device name",
                edit("path = \"full/aa.dpatch\"", "path = \"full/NUL\""),
            ),
            (
                "backslash",
                edit("path = \"full/aa.dpatch\"", "path = \"full\\\\aa.dpatch\""),
            ),
            (
                "uppercase hash",
                edit(
                    "1111111111111111111111111111111111111111111111111111111111111111",
                    "111111111111111111111111111111111111111111111111111111111111111A",
                ),
            ),
            (
                "short hash",
                edit(
                    "1111111111111111111111111111111111111111111111111111111111111111",
                    "11",
                ),
            ),
            (
                "unknown method",
                edit("method = \"bsdiff\"", "method = \"xdelta\""),
            ),
            (
                "full as a patch",
                edit("method = \"bsdiff\"", "method = \"full\""),
            ),
            (
                "unknown compression",
                edit("compression = \"zstd\"", "compression = \"xz\""),
            ),
            (
                "artifact name with slash",
                edit("name = \"app.bin\"", "name = \"bin/app\""),
            ),
            (
                "hidden artifact name",
                edit("name = \"app.bin\"", "name = \".app\""),
            ),
            (
                "control character in version",
                edit("version = \"1.1\"", "version = \"1.\\u0007\""),
            ),
            (
                "space in product",
                edit("product = \"p\"", "product = \"a b\""),
            ),
            (
                "long product",
                edit(
                    "product = \"p\"",
                    &format!("product = \"{}\"", "p".repeat(200)),
                ),
            ),
            (
                "patch from itself",
                edit("base_version = \"1.0\"", "base_version = \"1.1\""),
            ),
            (
                "patch from unlisted base",
                edit("base_version = \"1.0\"", "base_version = \"0.9\""),
            ),
            ("previous not older", edit("sequence = 1", "sequence = 2")),
            (
                "previous same version",
                edit(
                    "[[previous]]\nversion = \"1.0\"",
                    "[[previous]]\nversion = \"1.1\"",
                ),
            ),
            (
                "duplicate key",
                edit("sequence = 2", "sequence = 2\nsequence = 3"),
            ),
            (
                "no artifacts",
                GOOD.split("[[artifact]]")
                    .next()
                    .unwrap()
                    .as_bytes()
                    .to_vec(),
            ),
        ];
        for (what, bytes) in cases {
            let result = Manifest::parse(&bytes);
            assert!(result.is_err(), "{what}: accepted");
        }
        let dup = format!(
            "{GOOD}\n[[artifact]]\nname = \"app.bin\"\nsize = 1\nsha256 = \"{}\"\n[artifact.full]\npath = \"full/x\"\nsize = 1\nsha256 = \"{}\"\ncompression = \"zstd\"\napply_memory = 1\n",
            "6".repeat(64),
            "7".repeat(64)
        );
        assert!(matches!(
            Manifest::parse(dup.as_bytes()),
            Err(ManifestError::Invalid { .. })
        ));
        assert_eq!(
            Manifest::parse(&GOOD.replacen("format = 1", "format = 2", 1).into_bytes()),
            Err(ManifestError::UnsupportedFormat { format: 2 })
        );
    }
}
