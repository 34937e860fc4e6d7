//! The patch container, format version 1: a fixed 296-byte header followed by the
//! payload. `format-spec/patch-v1.md` is the normative description; this module and
//! that document must agree, and `tests/vectors.rs` checks it against `testdata/vectors`.
//!
//! Decoding is strict: every field is range-checked, reserved bytes must be zero, and
//! the header carries a checksum so that a flipped bit is reported as such rather than
//! as a confusing mismatch later.

use crate::codec::{CodecError, Reader, Writer};
use crate::digest::Sha256Digest;
use crate::method::{Method, PatchKind};

/// The eight bytes every patch starts with.
pub const MAGIC: [u8; 8] = *b"\x89DPATCH\n";
/// The container version this crate writes and reads.
pub const VERSION: u16 = 1;
/// Total header length of a version-1 patch, signature block included.
pub const HEADER_LEN: usize = 296;
/// Bytes `0..CHECKED_LEN` are covered by the header checksum.
const CHECKED_LEN: usize = 176;
/// Bytes `0..SIGNED_LEN` are covered by the signature (checksum included).
pub const SIGNED_LEN: usize = 192;
/// Domain-separation prefix of the message a patch signature signs.
pub const SIGNATURE_CONTEXT: &[u8] = b"deltapack patch v1\0";

/// Size and SHA-256 of a file or byte string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FileId {
    /// Length in bytes.
    pub size: u64,
    /// SHA-256 of the bytes.
    pub sha256: Sha256Digest,
}

/// Where the payload's zstd streams are, for the bsdiff method (all other methods
/// have a single stream filling the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct StreamSizes {
    /// Compressed length of the control stream.
    pub control: u64,
    /// Compressed length of the diff stream.
    pub diff: u64,
    /// Compressed length of the extra stream.
    pub extra: u64,
    /// How the diff stream's bytes are coded before compression.
    pub diff_coding: DiffCoding,
    /// Length of the executable transform table before the control stream
    /// (`method_flags` bit 2, [`crate::exe`]); `0`: no transform.
    #[serde(skip_serializing_if = "is_zero")]
    pub transform: u64,
}

/// The coding of a bsdiff patch's diff stream (header byte 14, `method_flags` bit 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiffCoding {
    /// The decompressed stream is the diff bytes themselves.
    #[default]
    Plain,
    /// The decompressed stream is pairs (zero count, literal count, literal bytes) that
    /// expand to the diff bytes; see [`crate::control::ZeroRunReader`]. Smaller when the
    /// diff is long zero runs (exact matches) between scattered differences.
    ZeroRun,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `method_flags` bit 0: the bsdiff diff stream is zero-run coded.
const FLAG_ZERO_RUN_DIFF: u8 = 1;
/// `method_flags` bit 2: the bsdiff payload starts with an executable transform table.
/// (Bit 1 stays unassigned: a test vector checks that an unassigned bit is refused.)
const FLAG_TRANSFORM: u8 = 4;

/// The optional signature block of a patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureSlot {
    /// No signature: the block is all zero.
    Unsigned,
    /// An ed25519 signature by `public_key` over [`Header::signed_message`].
    Ed25519 {
        /// The signer's public key.
        public_key: [u8; 32],
        /// The signature.
        signature: [u8; 64],
    },
}

/// A decoded, self-consistent patch header: the fields every container has, and in
/// `body` the ones only its kind has. `Header` alone is a file patch's header
/// ([`Body`]); a tree patch's is [`TreeHeader`]. [`AnyHeader::decode`] tells them
/// apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<B = Body> {
    /// The method, with the fields only it has (or, for a tree patch, its old tree).
    pub body: B,
    /// log2 of the largest zstd window any payload stream uses.
    pub window_log: u8,
    /// The file (or tree) applying the patch produces.
    pub target: FileId,
    /// The bytes after the header.
    pub payload: FileId,
    /// Upper bound, in bytes, of the memory applying needs beyond the applier's own
    /// baseline. For a file patch always equal to [`memory_bound`] of the other
    /// fields; a tree patch declares its own figure, at least [`BASE_APPLY_MEMORY`].
    pub apply_memory: u64,
    /// The signature block.
    pub signature: SignatureSlot,
}

/// A tree patch's header (`format-spec/tree-v1.md` §2).
pub type TreeHeader = Header<TreeBody>;

/// What a file patch is, with the header fields only its method has: a bsdiff patch
/// has a source and a stream layout, a zstd-reference patch a source, a full image
/// neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Method 1.
    Bsdiff {
        /// The file the patch applies to.
        source: FileId,
        /// The payload's three streams.
        streams: StreamSizes,
    },
    /// Method 2.
    ZstdRef {
        /// The file the patch applies to (the reference).
        source: FileId,
    },
    /// Method 3.
    Full,
}

/// The header field only a tree patch (method byte 4) has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeBody {
    /// The old tree's identity; `None` for a full tree image.
    pub source: Option<FileId>,
}

/// A decoded container header, by what the container is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyHeader {
    /// A patch of one file.
    File(Header),
    /// A patch of a release directory.
    Tree(TreeHeader),
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Body {}
    impl Sealed for super::TreeBody {}
}

/// The kind-specific part of a [`Header`]: [`Body`] or [`TreeBody`].
pub trait HeaderBody: sealed::Sealed + Copy {
    /// What the container is.
    fn kind(&self) -> PatchKind;
    /// The file (or tree) the patch applies to, if any.
    fn source(&self) -> Option<FileId>;
    /// The bsdiff stream layout, for method 1.
    fn streams(&self) -> Option<StreamSizes>;
    /// The header of this kind, if `artifact` is one (else what it is).
    fn pick(artifact: AnyHeader) -> Result<Header<Self>, PatchKind>;
    /// The kind's name in [`FormatError::WrongKind`].
    const NAME: &'static str;
}

impl HeaderBody for Body {
    fn kind(&self) -> PatchKind {
        PatchKind::File(self.method())
    }
    fn source(&self) -> Option<FileId> {
        match *self {
            Body::Bsdiff { source, .. } | Body::ZstdRef { source } => Some(source),
            Body::Full => None,
        }
    }
    fn streams(&self) -> Option<StreamSizes> {
        match *self {
            Body::Bsdiff { streams, .. } => Some(streams),
            _ => None,
        }
    }
    fn pick(artifact: AnyHeader) -> Result<Header, PatchKind> {
        match artifact {
            AnyHeader::File(h) => Ok(h),
            AnyHeader::Tree(_) => Err(PatchKind::Tree),
        }
    }
    const NAME: &'static str = "file patch";
}

impl HeaderBody for TreeBody {
    fn kind(&self) -> PatchKind {
        PatchKind::Tree
    }
    fn source(&self) -> Option<FileId> {
        self.source
    }
    fn streams(&self) -> Option<StreamSizes> {
        None
    }
    fn pick(artifact: AnyHeader) -> Result<TreeHeader, PatchKind> {
        match artifact {
            AnyHeader::Tree(h) => Ok(h),
            AnyHeader::File(h) => Err(h.body.kind()),
        }
    }
    const NAME: &'static str = "tree patch";
}

impl Body {
    /// From a method and the fields the other methods lack, if they fit together:
    /// bsdiff needs a source and streams, zstd a source and no streams, the full method
    /// neither.
    pub fn from_parts(
        method: Method,
        source: Option<FileId>,
        streams: Option<StreamSizes>,
    ) -> Option<Body> {
        Some(match (method, source, streams) {
            (Method::Bsdiff, Some(source), Some(streams)) => Body::Bsdiff { source, streams },
            (Method::ZstdRef, Some(source), None) => Body::ZstdRef { source },
            (Method::Full, None, None) => Body::Full,
            _ => return None,
        })
    }

    /// The method.
    pub fn method(&self) -> Method {
        match self {
            Body::Bsdiff { .. } => Method::Bsdiff,
            Body::ZstdRef { .. } => Method::ZstdRef,
            Body::Full => Method::Full,
        }
    }

    /// The file the patch applies to, if any.
    pub fn source(&self) -> Option<FileId> {
        HeaderBody::source(self)
    }

    /// The bsdiff stream layout, for method 1.
    pub fn streams(&self) -> Option<StreamSizes> {
        HeaderBody::streams(self)
    }
}

/// What is wrong with a patch's bytes. Offsets are from the start of the patch file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    /// Fewer bytes than the header needs.
    #[error("truncated: the header needs {HEADER_LEN} bytes, the file has {got}")]
    TruncatedHeader {
        /// Bytes present.
        got: u64,
    },
    /// Not a patch at all.
    #[error("not a deltapack patch (bad magic bytes)")]
    BadMagic,
    /// A container version this decoder does not know.
    #[error("unsupported patch format version {version} (this applier reads version {VERSION})")]
    UnsupportedVersion {
        /// The version found.
        version: u16,
    },
    /// The header length field disagrees with the version.
    #[error("header length {got} is not {HEADER_LEN}, as version {VERSION} requires")]
    BadHeaderLength {
        /// The length found.
        got: u16,
    },
    /// A method number this decoder does not know.
    #[error("unknown method {code}")]
    UnknownMethod {
        /// The method number found.
        code: u8,
    },
    /// A reserved byte is not zero.
    #[error("reserved byte at offset {offset} is {value:#04x}, must be 0")]
    ReservedNotZero {
        /// Offset of the byte.
        offset: usize,
        /// Its value.
        value: u8,
    },
    /// The header checksum does not match: a header byte was changed.
    #[error("header checksum mismatch: the header is corrupt")]
    HeaderChecksum,
    /// A field is outside its allowed range.
    #[error("field {field} is invalid: {problem}")]
    BadField {
        /// The field's name in the spec.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The file is shorter or longer than header plus payload.
    #[error("file is {got} bytes, header and payload need exactly {expected}: {}", if got < expected { "truncated" } else { "trailing bytes" })]
    WrongFileLength {
        /// `HEADER_LEN + payload_size`.
        expected: u64,
        /// The file's length.
        got: u64,
    },
    /// The payload's SHA-256 does not match the header.
    #[error("payload sha256 is {got}, the header says {expected}: the payload is corrupt")]
    PayloadHash {
        /// From the header.
        expected: Sha256Digest,
        /// Computed.
        got: Sha256Digest,
    },
    /// A signature block that cannot be used.
    #[error("signature block: {problem}")]
    BadSignatureBlock {
        /// What is wrong.
        problem: &'static str,
    },
    /// A valid header of another kind than the one asked for ([`Header::decode`] of a
    /// tree patch, [`TreeHeader::decode_tree`] of a file patch).
    #[error("a {got} patch where a {expected} was expected")]
    WrongKind {
        /// What was asked for.
        expected: &'static str,
        /// What the header is.
        got: PatchKind,
    },
}

/// Smallest and largest window log a patch may declare. zstd itself allows 10..=31.
pub const MIN_WINDOW_LOG: u8 = 10;
/// See [`MIN_WINDOW_LOG`].
pub const MAX_WINDOW_LOG: u8 = 31;
/// Fixed allowance for decoder state and I/O buffers, included in every memory bound
/// (three zstd decoders' state and read buffers plus the applier's own buffers come
/// to about 2.2 MiB).
pub const BASE_APPLY_MEMORY: u64 = 4 << 20;
/// The control stream of a bsdiff patch never uses a window larger than this.
pub const MAX_CONTROL_WINDOW_LOG: u8 = 20;

/// The memory, in bytes, that applying a file patch with these parameters may need
/// beyond the applier's baseline. This is the formula `format-spec/patch-v1.md` gives.
/// The single-frame methods count `min(window, target)` because their frame must
/// declare its content size (the applier checks), which caps zstd's buffer at that
/// size. A tree patch declares its own figure (the largest of its files' bounds plus
/// its index), at least [`BASE_APPLY_MEMORY`].
pub fn memory_bound(method: Method, window_log: u8, source_size: u64, target_size: u64) -> u64 {
    let window = 1u64 << window_log;
    match method {
        Method::Bsdiff => {
            2 * window + (1u64 << window_log.min(MAX_CONTROL_WINDOW_LOG)) + BASE_APPLY_MEMORY
        }
        Method::ZstdRef => source_size.saturating_add(window.min(target_size) + BASE_APPLY_MEMORY),
        Method::Full => window.min(target_size) + BASE_APPLY_MEMORY,
    }
}

impl Header {
    /// An unsigned header for a payload, with `apply_memory` computed by
    /// [`memory_bound`] (the only value a decoder accepts).
    ///
    /// # Panics
    ///
    /// If the parts do not fit the method ([`Body::from_parts`]): a bug in the caller.
    pub fn unsigned(
        method: Method,
        window_log: u8,
        source: Option<FileId>,
        target: FileId,
        payload: FileId,
        streams: Option<StreamSizes>,
    ) -> Header {
        let body = Body::from_parts(method, source, streams)
            .unwrap_or_else(|| panic!("{method} with source {source:?}, streams {streams:?}"));
        Header::new(body, window_log, target, payload)
    }

    /// An unsigned header for a payload, with `apply_memory` computed by
    /// [`memory_bound`].
    pub fn new(body: Body, window_log: u8, target: FileId, payload: FileId) -> Header {
        let source_size = body.source().map_or(0, |s| s.size);
        Header {
            body,
            window_log,
            target,
            payload,
            apply_memory: memory_bound(body.method(), window_log, source_size, target.size),
            signature: SignatureSlot::Unsigned,
        }
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.body.method()
    }

    /// Decodes and validates a file patch's header ([`AnyHeader::decode`]); a tree
    /// patch's is [`FormatError::WrongKind`].
    pub fn decode(bytes: &[u8], file_len: u64) -> Result<Header, FormatError> {
        Header::decode_kind(bytes, file_len)
    }
}

impl TreeHeader {
    /// Decodes and validates a tree patch's header ([`AnyHeader::decode`]); a file
    /// patch's is [`FormatError::WrongKind`].
    pub fn decode_tree(bytes: &[u8], file_len: u64) -> Result<TreeHeader, FormatError> {
        Header::decode_kind(bytes, file_len)
    }

    /// An unsigned tree patch header from the tree `source` (`None`: the empty tree)
    /// to `target`, declaring `apply_memory`.
    pub fn tree(
        source: Option<FileId>,
        window_log: u8,
        target: FileId,
        payload: FileId,
        apply_memory: u64,
    ) -> TreeHeader {
        Header {
            body: TreeBody { source },
            window_log,
            target,
            payload,
            apply_memory,
            signature: SignatureSlot::Unsigned,
        }
    }
}

impl<B: HeaderBody> Header<B> {
    /// What the container is.
    pub fn kind(&self) -> PatchKind {
        self.body.kind()
    }

    /// The file (or tree) the patch applies to, if any.
    pub fn source(&self) -> Option<FileId> {
        self.body.source()
    }

    /// The bsdiff stream layout, for method 1.
    pub fn streams(&self) -> Option<StreamSizes> {
        self.body.streams()
    }

    /// A header of this kind ([`AnyHeader::decode`]); a valid header of the other kind
    /// is [`FormatError::WrongKind`].
    fn decode_kind(bytes: &[u8], file_len: u64) -> Result<Header<B>, FormatError> {
        B::pick(AnyHeader::decode(bytes, file_len)?).map_err(|got| FormatError::WrongKind {
            expected: B::NAME,
            got,
        })
    }

    /// The fields every kind has, for the encoder.
    fn parts(&self) -> Parts {
        Parts {
            kind: self.kind(),
            source: self.source(),
            streams: self.streams(),
            window_log: self.window_log,
            target: self.target,
            payload: self.payload,
            apply_memory: self.apply_memory,
            signature: self.signature,
        }
    }

    /// Encodes the header to its 296 bytes, computing the checksum.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        self.parts().encode()
    }

    /// The exact bytes a signature over this header signs: a context string followed
    /// by the first 192 header bytes (everything but the signature block).
    pub fn signed_message(&self) -> Vec<u8> {
        self.parts().signed_message()
    }
}

impl AnyHeader {
    /// What the container is.
    pub fn kind(&self) -> PatchKind {
        match self {
            AnyHeader::File(h) => h.kind(),
            AnyHeader::Tree(h) => h.kind(),
        }
    }

    /// The file (or tree) the patch applies to, if any.
    pub fn source(&self) -> Option<FileId> {
        match self {
            AnyHeader::File(h) => h.source(),
            AnyHeader::Tree(h) => h.source(),
        }
    }

    /// The file (or tree) applying the patch produces.
    pub fn target(&self) -> FileId {
        match self {
            AnyHeader::File(h) => h.target,
            AnyHeader::Tree(h) => h.target,
        }
    }

    /// Its `apply_memory`.
    pub fn apply_memory(&self) -> u64 {
        match self {
            AnyHeader::File(h) => h.apply_memory,
            AnyHeader::Tree(h) => h.apply_memory,
        }
    }

    /// The signature block.
    pub fn signature_mut(&mut self) -> &mut SignatureSlot {
        match self {
            AnyHeader::File(h) => &mut h.signature,
            AnyHeader::Tree(h) => &mut h.signature,
        }
    }

    /// [`Header::encode`].
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        match self {
            AnyHeader::File(h) => h.encode(),
            AnyHeader::Tree(h) => h.encode(),
        }
    }

    /// [`Header::signed_message`].
    pub fn signed_message(&self) -> Vec<u8> {
        match self {
            AnyHeader::File(h) => h.signed_message(),
            AnyHeader::Tree(h) => h.signed_message(),
        }
    }
}

/// A header's fields, whatever its kind: what is encoded.
struct Parts {
    kind: PatchKind,
    source: Option<FileId>,
    streams: Option<StreamSizes>,
    window_log: u8,
    target: FileId,
    payload: FileId,
    apply_memory: u64,
    signature: SignatureSlot,
}

impl Parts {
    fn signed_message(&self) -> Vec<u8> {
        let encoded = self.encode();
        let mut message = SIGNATURE_CONTEXT.to_vec();
        message.extend_from_slice(&encoded[..SIGNED_LEN]);
        message
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut w = Writer::with_capacity(HEADER_LEN);
        w.bytes(&MAGIC);
        w.u16(VERSION);
        w.u16(HEADER_LEN as u16);
        w.u8(self.kind.code());
        w.u8(self.window_log);
        let streams = self.streams.unwrap_or_default();
        let zero_run = streams.diff_coding == DiffCoding::ZeroRun;
        let transform = streams.transform > 0;
        w.u8(if zero_run { FLAG_ZERO_RUN_DIFF } else { 0 }
            | if transform { FLAG_TRANSFORM } else { 0 });
        w.zeros(1);
        let source = self.source.unwrap_or(FileId {
            size: 0,
            sha256: Sha256Digest([0; 32]),
        });
        w.u64(source.size);
        w.bytes(&source.sha256.0);
        w.u64(self.target.size);
        w.bytes(&self.target.sha256.0);
        w.u64(self.payload.size);
        w.bytes(&self.payload.sha256.0);
        w.u64(self.apply_memory);
        let streams = self.streams.unwrap_or_default();
        w.u64(streams.control);
        w.u64(streams.diff);
        w.u64(streams.extra);
        w.zeros(8);
        debug_assert_eq!(w.len(), CHECKED_LEN);
        let check = header_check(w.as_slice());
        w.bytes(&check);
        debug_assert_eq!(w.len(), SIGNED_LEN);
        match self.signature {
            SignatureSlot::Unsigned => w.zeros(HEADER_LEN - SIGNED_LEN),
            SignatureSlot::Ed25519 {
                public_key,
                signature,
            } => {
                w.u8(1);
                w.zeros(7);
                w.bytes(&public_key);
                w.bytes(&signature);
            }
        }
        w.into_vec()
            .try_into()
            .expect("header is exactly HEADER_LEN bytes")
    }
}

impl AnyHeader {
    /// Decodes and validates a header of either kind. `file_len` is the length of the
    /// whole patch file, which must be exactly header plus payload.
    pub fn decode(bytes: &[u8], file_len: u64) -> Result<AnyHeader, FormatError> {
        // Magic and version first, so that a short file that is not a patch, or a
        // patch of another version, is reported as such rather than as truncated.
        let truncated = |_: CodecError| FormatError::TruncatedHeader {
            got: bytes.len() as u64,
        };
        let mut r = Reader::new(bytes);
        let magic = r
            .bytes(bytes.len().min(MAGIC.len()), "magic")
            .map_err(truncated)?;
        if magic != &MAGIC[..magic.len()] {
            return Err(FormatError::BadMagic);
        }
        // Version and header length are read together: fewer than 12 bytes is H0a.
        let mut fixed = r.sub(4, "version and header_len").map_err(truncated)?;
        let version = fixed.u16("version").map_err(truncated)?;
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion { version });
        }
        let header_len = fixed.u16("header_len").map_err(truncated)?;
        if header_len as usize != HEADER_LEN {
            return Err(FormatError::BadHeaderLength { got: header_len });
        }
        // The whole header (H0b), split into the checksummed fields, the checksum and
        // the signature block. Bytes after the header are not the header's business.
        let mut header = Reader::new(bytes)
            .sub(HEADER_LEN, "header")
            .map_err(truncated)?;
        let mut r = header
            .sub(CHECKED_LEN, "checked fields")
            .map_err(truncated)?;
        let check = header.array::<16>("header_check").map_err(truncated)?;
        let mut signature_block = header
            .sub(HEADER_LEN - SIGNED_LEN, "signature block")
            .map_err(truncated)?;
        header.expect_end("header").map_err(truncated)?;
        // The checksum comes before field checks so that a flipped bit is reported as
        // corruption, not as whichever field it happened to land in.
        if header_check(r.rest()) != check {
            return Err(FormatError::HeaderChecksum);
        }
        r.skip(12, "magic, version and header_len")
            .map_err(truncated)?;
        let method_code = r.u8("method").map_err(truncated)?;
        let kind = PatchKind::from_code(method_code)
            .ok_or(FormatError::UnknownMethod { code: method_code })?;
        let window_log = r.u8("window_log").map_err(truncated)?;
        let method_flags = r.u8("method_flags").map_err(truncated)?;
        expect_zero(&mut r, 1, truncated)?;
        let mut file_id = |size, sha256| -> Result<FileId, FormatError> {
            Ok(FileId {
                size: r.u64(size).map_err(truncated)?,
                sha256: Sha256Digest(r.array(sha256).map_err(truncated)?),
            })
        };
        let source = file_id("source_size", "source_sha256")?;
        let target = file_id("target_size", "target_sha256")?;
        let payload = file_id("payload_size", "payload_sha256")?;
        let apply_memory = r.u64("apply_memory").map_err(truncated)?;
        let streams = StreamSizes {
            control: r.u64("control_size").map_err(truncated)?,
            diff: r.u64("diff_size").map_err(truncated)?,
            extra: r.u64("extra_size").map_err(truncated)?,
            diff_coding: DiffCoding::Plain,
            transform: 0,
        };
        expect_zero(&mut r, 8, truncated)?;
        r.expect_end("checked fields").map_err(truncated)?;
        let signature = decode_signature(&mut signature_block)?;

        if !(MIN_WINDOW_LOG..=MAX_WINDOW_LOG).contains(&window_log) {
            return Err(bad(
                "window_log",
                format!("{window_log} is outside {MIN_WINDOW_LOG}..={MAX_WINDOW_LOG}"),
            ));
        }
        let zero_source = source.size == 0 && source.sha256.0 == [0; 32];
        if kind == PatchKind::File(Method::Full) && !zero_source {
            return Err(bad("source", "must be all zero for the full method".into()));
        }
        let no_streams = || {
            if streams != StreamSizes::default() {
                return Err(bad("stream sizes", "must be zero for this method".into()));
            }
            if method_flags != 0 {
                return Err(bad("method_flags", "must be zero for this method".into()));
            }
            Ok(())
        };
        let body = match kind {
            PatchKind::File(Method::Bsdiff) => {
                let sum = streams
                    .control
                    .checked_add(streams.diff)
                    .and_then(|s| s.checked_add(streams.extra));
                // With a transform, the table fills what the streams leave.
                let transform = match sum {
                    Some(sum) if method_flags & FLAG_TRANSFORM == 0 && sum == payload.size => 0,
                    Some(sum) if method_flags & FLAG_TRANSFORM != 0 && sum <= payload.size => {
                        let table = payload.size - sum;
                        if !(crate::exe::MIN_TABLE_LEN..=crate::exe::MAX_TABLE_LEN).contains(&table)
                        {
                            return Err(bad(
                                "stream sizes",
                                format!(
                                    "the transform table would be {table} bytes, outside {}..={}",
                                    crate::exe::MIN_TABLE_LEN,
                                    crate::exe::MAX_TABLE_LEN
                                ),
                            ));
                        }
                        table
                    }
                    _ => {
                        let table = if method_flags & FLAG_TRANSFORM != 0 {
                            " + a transform table"
                        } else {
                            ""
                        };
                        return Err(bad(
                            "stream sizes",
                            format!(
                                "control {} + diff {} + extra {}{table} does not equal payload_size {}",
                                streams.control, streams.diff, streams.extra, payload.size
                            ),
                        ));
                    }
                };
                if method_flags & !(FLAG_ZERO_RUN_DIFF | FLAG_TRANSFORM) != 0 {
                    return Err(bad(
                        "method_flags",
                        format!("{method_flags:#04x} has unknown bits"),
                    ));
                }
                let diff_coding = if method_flags & FLAG_ZERO_RUN_DIFF != 0 {
                    DiffCoding::ZeroRun
                } else {
                    DiffCoding::Plain
                };
                Kinded::File(Body::Bsdiff {
                    source,
                    streams: StreamSizes {
                        diff_coding,
                        transform,
                        ..streams
                    },
                })
            }
            PatchKind::File(Method::ZstdRef) => {
                no_streams()?;
                Kinded::File(Body::ZstdRef { source })
            }
            PatchKind::File(Method::Full) => {
                no_streams()?;
                Kinded::File(Body::Full)
            }
            // A tree patch from the empty tree (a release's full tree image) has an
            // all-zero source; any other names the old tree.
            PatchKind::Tree => {
                no_streams()?;
                Kinded::Tree(TreeBody {
                    source: (!zero_source).then_some(source),
                })
            }
        };
        let (memory_ok, expected_memory) = match &body {
            Kinded::File(b) => {
                let source_size = b.source().map_or(0, |s| s.size);
                let expected = memory_bound(b.method(), window_log, source_size, target.size);
                (apply_memory == expected, expected)
            }
            Kinded::Tree(_) => (apply_memory >= BASE_APPLY_MEMORY, BASE_APPLY_MEMORY),
        };
        if !memory_ok {
            return Err(bad(
                "apply_memory",
                format!(
                    "{apply_memory} does not match the bound {expected_memory} its other fields imply"
                ),
            ));
        }
        let expected_len = (HEADER_LEN as u64).checked_add(payload.size);
        if expected_len != Some(file_len) {
            return Err(FormatError::WrongFileLength {
                expected: expected_len.unwrap_or(u64::MAX),
                got: file_len,
            });
        }
        Ok(match body {
            Kinded::File(body) => AnyHeader::File(Header {
                body,
                window_log,
                target,
                payload,
                apply_memory,
                signature,
            }),
            Kinded::Tree(body) => AnyHeader::Tree(Header {
                body,
                window_log,
                target,
                payload,
                apply_memory,
                signature,
            }),
        })
    }
}

/// The kind-specific fields, while decoding.
enum Kinded {
    File(Body),
    Tree(TreeBody),
}

fn header_check(bytes: &[u8]) -> [u8; 16] {
    let digest = Sha256Digest::of(bytes);
    digest.0[..16].try_into().expect("16 of 32 bytes")
}

/// Decodes the signature block. Only its shape is checked here; whether the
/// signature verifies, and against which key, is [`crate::signature::check_patch_origin`]'s job.
fn decode_signature(r: &mut Reader<'_>) -> Result<SignatureSlot, FormatError> {
    let short = |_| FormatError::BadSignatureBlock {
        problem: "the signature block is shorter than 104 bytes",
    };
    let algorithm = r.u8("sig_algorithm").map_err(short)?;
    let reserved = r.array::<7>("signature reserved bytes").map_err(short)?;
    let public_key = r.array::<32>("public_key").map_err(short)?;
    let signature = r.array::<64>("signature").map_err(short)?;
    r.expect_end("signature block")
        .map_err(|_| FormatError::BadSignatureBlock {
            problem: "the signature block is longer than 104 bytes",
        })?;
    match algorithm {
        0 => {
            if reserved != [0; 7] || public_key != [0; 32] || signature != [0; 64] {
                return Err(FormatError::BadSignatureBlock {
                    problem: "unsigned patch has non-zero bytes in its signature block",
                });
            }
            Ok(SignatureSlot::Unsigned)
        }
        1 => {
            if reserved != [0; 7] {
                return Err(FormatError::BadSignatureBlock {
                    problem: "reserved bytes of the signature block are not zero",
                });
            }
            Ok(SignatureSlot::Ed25519 {
                public_key,
                signature,
            })
        }
        _ => Err(FormatError::BadSignatureBlock {
            problem: "unknown signature algorithm",
        }),
    }
}

fn expect_zero(
    r: &mut Reader<'_>,
    n: usize,
    truncated: impl Fn(CodecError) -> FormatError,
) -> Result<(), FormatError> {
    for _ in 0..n {
        let offset = r.position();
        let value = r.u8("reserved byte").map_err(&truncated)?;
        if value != 0 {
            return Err(FormatError::ReservedNotZero { offset, value });
        }
    }
    Ok(())
}

fn bad(field: &'static str, problem: String) -> FormatError {
    FormatError::BadField { field, problem }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        let payload = FileId {
            size: 30,
            sha256: Sha256Digest([7; 32]),
        };
        Header {
            body: Body::Bsdiff {
                source: FileId {
                    size: 100,
                    sha256: Sha256Digest([1; 32]),
                },
                streams: StreamSizes {
                    control: 10,
                    diff: 15,
                    extra: 5,
                    diff_coding: DiffCoding::ZeroRun,
                    transform: 0,
                },
            },
            window_log: 20,
            target: FileId {
                size: 120,
                sha256: Sha256Digest([2; 32]),
            },
            payload,
            apply_memory: memory_bound(Method::Bsdiff, 20, 100, 120),
            signature: SignatureSlot::Unsigned,
        }
    }

    #[test]
    fn round_trip() {
        let h = sample();
        let bytes = h.encode();
        assert_eq!(Header::decode(&bytes, HEADER_LEN as u64 + 30).unwrap(), h);
    }

    #[test]
    fn every_bit_flip_is_rejected() {
        // A flip that turns the signature algorithm to 1 decodes, and is then refused
        // by the origin check, which is what the applier runs next.
        let bytes = sample().encode();
        for bit in 0..HEADER_LEN * 8 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            let rejected = Header::decode(&b, HEADER_LEN as u64 + 30).map_or(true, |h| {
                crate::signature::check_patch_origin(&h, None).is_err()
            });
            assert!(rejected, "bit {bit}");
        }
    }
}
