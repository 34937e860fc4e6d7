//! Helpers shared by the integration tests: the committed vectors in
//! `testdata/vectors`, scratch directories whose destination file must survive a
//! failed apply, and header editing.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use deltaapply::signature::SignatureError;
use deltaapply::{ApplyReport, Error, FormatError, Limits, Method, TrustedKeys};
use sha2::{Digest, Sha256};

/// Field offsets of the v1 header (format-spec §3.2).
pub mod at {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const HEADER_LEN: usize = 10;
    pub const METHOD: usize = 12;
    pub const WINDOW_LOG: usize = 13;
    /// Bit 0: the bsdiff diff stream is zero-run coded (§5.2.5).
    pub const METHOD_FLAGS: usize = 14;
    pub const RESERVED: usize = 15;
    pub const SOURCE_SIZE: usize = 16;
    pub const SOURCE_SHA: usize = 24;
    pub const TARGET_SIZE: usize = 56;
    pub const TARGET_SHA: usize = 64;
    pub const PAYLOAD_SIZE: usize = 96;
    pub const PAYLOAD_SHA: usize = 104;
    pub const APPLY_MEMORY: usize = 136;
    pub const CONTROL_SIZE: usize = 144;
    pub const DIFF_SIZE: usize = 152;
    pub const EXTRA_SIZE: usize = 160;
    /// Bytes `0..CHECKED` are covered by the checksum at `CHECK..CHECK + 16`.
    pub const CHECKED: usize = 176;
    pub const CHECK: usize = 176;
    /// Bytes `0..SIGNED` (the checksum included) are what a signature signs.
    pub const SIGNED: usize = 192;
    /// The signature block: algorithm, 7 reserved bytes, public key, signature.
    pub const SIG_ALGORITHM: usize = 192;
    pub const SIG_RESERVED: usize = 193;
    pub const PUBLIC_KEY: usize = 200;
    pub const SIGNATURE: usize = 232;
    /// Total header length; the payload starts here.
    pub const PAYLOAD: usize = 296;
}

/// A valid vector of one method, with its inputs.
#[derive(Debug, Clone, Copy)]
pub struct Valid {
    pub method: Method,
    pub patch: &'static str,
    pub old: Option<&'static str>,
    pub new: &'static str,
}

/// One valid, deltapack-made vector per method.
pub const VALID: [Valid; 3] = [
    Valid {
        method: Method::Bsdiff,
        patch: "bsdiff-valid.dpatch",
        old: Some("exe.old"),
        new: "exe.new",
    },
    Valid {
        method: Method::ZstdRef,
        patch: "zstd-valid.dpatch",
        old: Some("text.old"),
        new: "text.new",
    },
    Valid {
        method: Method::Full,
        patch: "full-valid.dpatch",
        old: None,
        new: "exe.new",
    },
];

impl Valid {
    pub fn patch_bytes(&self) -> Vec<u8> {
        read_vector(self.patch)
    }
    pub fn old_path(&self) -> Option<PathBuf> {
        self.old.map(vector)
    }
    pub fn new_bytes(&self) -> Vec<u8> {
        read_vector(self.new)
    }
}

/// `testdata/vectors`.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/vectors")
}

/// A file in `testdata/vectors`.
pub fn vector(name: &str) -> PathBuf {
    vectors_dir().join(name)
}

pub fn read_vector(name: &str) -> Vec<u8> {
    let path = vector(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); regenerate with `cargo run -p deltapack --example make_vectors -- testdata/vectors`",
            path.display()
        )
    })
}

/// What the destination holds before every apply: a failed apply must leave it so.
pub const SENTINEL: &[u8] = b"the destination before the apply\n";

/// A temporary directory holding only the destination file, pre-created with
/// [`SENTINEL`] (or, for in-place tests, a copy of the old file).
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub dest: PathBuf,
    before: Vec<u8>,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch::holding("out.bin", SENTINEL)
    }

    /// A scratch directory whose destination `name` holds `content`.
    pub fn holding(name: &str, content: &[u8]) -> Scratch {
        let dir = tempfile::tempdir().expect("temp dir");
        let dest = dir.path().join(name);
        std::fs::write(&dest, content).expect("write destination");
        Scratch {
            dir,
            dest,
            before: content.to_vec(),
        }
    }

    /// The names in the directory, sorted.
    pub fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .expect("read scratch dir")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    /// Panics unless the directory holds exactly the destination, with `expected`.
    pub fn assert_dest(&self, expected: &[u8], context: &str) {
        let name = self
            .dest
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(
            self.listing(),
            [name],
            "{context}: a temporary file was left beside the destination"
        );
        let got = std::fs::read(&self.dest).expect("read destination");
        assert!(
            got == expected,
            "{context}: destination has {} bytes (sha256 {}), expected {} bytes (sha256 {})",
            got.len(),
            hex(&sha256(&got)),
            expected.len(),
            hex(&sha256(expected))
        );
    }

    /// Puts the destination back as it was (after an apply that succeeded).
    pub fn reset(&self) {
        std::fs::write(&self.dest, &self.before).expect("rewrite destination");
    }

    /// Panics unless the destination is as it was and nothing else is in the directory.
    pub fn assert_untouched(&self, context: &str) {
        self.assert_dest(&self.before.clone(), context);
    }
}

/// A directory for patches made on the fly (kept apart from [`Scratch`], whose
/// listing must hold only the destination).
pub struct Workbench {
    pub dir: tempfile::TempDir,
}

impl Workbench {
    pub fn new() -> Workbench {
        Workbench {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Writes `bytes` to `name` in the workbench and returns its path.
    ///
    /// The file is overwritten and then cut to length rather than truncated first:
    /// ext4 flushes a file truncated to zero and rewritten when it is closed, which
    /// costs milliseconds per case in the sweeps.
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        use std::io::Write;
        let path = self.dir.path().join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .expect("open workbench file");
        f.write_all(bytes).expect("write workbench file");
        f.set_len(bytes.len() as u64).expect("cut workbench file");
        path
    }
}

/// Applies with the library, with the default limits unless `max_apply_memory` is
/// given, trusting `trusted` (none: the origin is not verified).
pub fn apply(
    old: Option<&Path>,
    patch: &Path,
    dest: &Path,
    max_apply_memory: Option<u64>,
    trusted: Option<&TrustedKeys>,
) -> Result<ApplyReport, Error> {
    let limits = max_apply_memory.map_or_else(Limits::default, |max_apply_memory| Limits {
        max_apply_memory,
    });
    deltaapply::apply_file(old, patch, dest, &limits, trusted, &mut |_| {})
}

/// The error's variant as the vectors name it: `Format/TruncatedHeader`, `Corrupt`, ...
pub fn error_kind(e: &Error) -> String {
    match e {
        Error::Format { source, .. } => format!("Format/{}", format_kind(source)),
        Error::PatchIo { .. } => "PatchIo".into(),
        Error::Corrupt { .. } => "Corrupt".into(),
        Error::WrongSource { .. } => "WrongSource".into(),
        Error::MissingSource { .. } => "MissingSource".into(),
        Error::MemoryLimit { .. } => "MemoryLimit".into(),
        Error::TargetMismatch { .. } => "TargetMismatch".into(),
        Error::SourceIo { .. } => "SourceIo".into(),
        Error::OutputIo { .. } => "OutputIo".into(),
        Error::NoSpace { .. } => "NoSpace".into(),
        Error::Untrusted { source, .. } => format!("Untrusted/{}", signature_kind(source)),
        Error::TreePatch { .. } => "TreePatch".into(),
        Error::NotTreePatch { .. } => "NotTreePatch".into(),
        Error::TreeFormat { .. } => "TreeFormat".into(),
        Error::Lock(_) => "Lock".into(),
        Error::Cancelled => "Cancelled".into(),
    }
}

fn signature_kind(e: &SignatureError) -> &'static str {
    match e {
        SignatureError::Unsigned => "Unsigned",
        SignatureError::BadPatchSignature { .. } => "BadPatchSignature",
        SignatureError::UntrustedPatchKey { .. } => "UntrustedPatchKey",
        // Manifest signature errors, never the result of a patch's origin check.
        _ => "Manifest",
    }
}

fn format_kind(e: &FormatError) -> &'static str {
    match e {
        FormatError::TruncatedHeader { .. } => "TruncatedHeader",
        FormatError::BadMagic => "BadMagic",
        FormatError::UnsupportedVersion { .. } => "UnsupportedVersion",
        FormatError::BadHeaderLength { .. } => "BadHeaderLength",
        FormatError::UnknownMethod { .. } => "UnknownMethod",
        FormatError::ReservedNotZero { .. } => "ReservedNotZero",
        FormatError::HeaderChecksum => "HeaderChecksum",
        FormatError::BadField { .. } => "BadField",
        FormatError::WrongFileLength { .. } => "WrongFileLength",
        FormatError::PayloadHash { .. } => "PayloadHash",
        FormatError::BadSignatureBlock { .. } => "BadSignatureBlock",
        FormatError::WrongKind { .. } => "WrongKind",
    }
}

/// The error and all its sources, joined with `: ` (what `deltaapply` prints).
pub fn chain(e: &Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn get_u64(patch: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(patch[offset..offset + 8].try_into().unwrap())
}

pub fn set_u64(patch: &mut [u8], offset: usize, value: u64) {
    patch[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

/// Recomputes `header_check` as format-spec §3.4 defines it: the first 16 bytes of
/// SHA-256 of header bytes 0..176, stored at 176..192.
pub fn reseal(patch: &mut [u8]) {
    let digest = sha256(&patch[..at::CHECKED]);
    patch[at::CHECK..at::CHECK + 16].copy_from_slice(&digest[..16]);
}

/// Recomputes `payload_size`, `payload_sha256` and the checksum for the payload the
/// patch now has, so that only the decoders can object to it.
pub fn reseal_payload(patch: &mut [u8]) {
    let payload_len = (patch.len() - at::PAYLOAD) as u64;
    let digest = sha256(&patch[at::PAYLOAD..]);
    set_u64(patch, at::PAYLOAD_SIZE, payload_len);
    patch[at::PAYLOAD_SHA..at::PAYLOAD_SHA + 32].copy_from_slice(&digest);
    reseal(patch);
}

/// The memory bound of format-spec §4, written out independently of the library
/// except for the fixed allowance, which is the library's constant (the spec and the
/// code are being brought in line on its value).
pub fn spec_memory_bound(method: Method, window_log: u8, source: u64, target: u64) -> u64 {
    let base = deltaapply::container::BASE_APPLY_MEMORY;
    let w = 1u64 << window_log;
    match method {
        Method::Bsdiff => 2 * w + (1 << window_log.min(20)) + base,
        Method::ZstdRef => source.saturating_add(w.min(target) + base),
        Method::Full => w.min(target) + base,
    }
}

/// Deterministic pseudo-random numbers (splitmix64) for the sweeps.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}
