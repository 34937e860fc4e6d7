//! Applying a patch: check the header's origin (its signature) against the caller's
//! trusted keys, the header against the caller's limits, the old file against the
//! header, the payload against its hash, then decode into a staged file whose hash is
//! checked before it replaces the destination.
//!
//! Verified bytes: the payload is hashed, and later decoded, through the one handle
//! [`Patch::open`] opened, so a file renamed over the patch's path in between changes
//! nothing. A payload may be too large to hold, so the decoders read it a second time
//! (through that handle); storage that serves other bytes the second time (a failing
//! USB stick, a network filesystem, a file rewritten in place) is caught by hashing
//! again what the decoders consume, section by section, against the digests of the
//! first pass: any difference is refused before the output is committed.
//!
//! Memory: the bsdiff method streams (two zstd windows of at most `2^window_log`
//! bytes, one control window of at most 1 MiB, and fixed 128 KiB buffers); the zstd
//! reference method holds the old file plus one window; the full method one window.
//! [`crate::container::memory_bound`] is the exact figure and is checked against
//! [`Limits`] before anything is read.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, Read, Write};

use std::path::{Path, PathBuf};

use crate::codec::Reader;
use crate::container::DiffCoding;
use crate::container::TreeBody;
use crate::container::{AnyHeader, Body, FileId, HEADER_LEN, Header, HeaderBody, StreamSizes};
use crate::control::{OpReader, ZeroRunReader};
use crate::digest::{Hasher, IO_CHUNK, hash_reader};
use crate::exe::{ByteSink, FilteredOld, Output};
use crate::key::TrustedKeys;
use crate::lock::TargetLock;
pub(crate) use crate::posread::{Section, read_at, read_exact_at};
use crate::signature::{Origin, check_patch_origin};
use crate::stage::{Staged, inherit_permissions};
use crate::verified::{Verified, VerifiedSection};
use crate::{Error, Method};
use deltaapply_format::exe::{Range, TransformTable};

/// Resource limits the applier enforces before it decodes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest `apply_memory` a patch may declare.
    pub max_apply_memory: u64,
}

impl Default for Limits {
    /// 1 GiB: room for the zstd reference method on old files of several hundred MiB.
    /// Devices should pass their own figure.
    fn default() -> Self {
        Limits {
            max_apply_memory: 1 << 30,
        }
    }
}

/// Which step of applying a [`Progress`] report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Hashing the old file.
    CheckSource,
    /// Hashing the patch payload.
    CheckPayload,
    /// Decoding and writing the new file.
    Write,
}

/// A progress report: `done` of `total` bytes of `phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The current step.
    pub phase: Phase,
    /// Bytes processed in this step so far.
    pub done: u64,
    /// Bytes this step will process.
    pub total: u64,
}

/// What a successful apply did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApplyReport {
    /// The patch's method.
    pub method: Method,
    /// The old file the patch was checked against (`None` for the full method).
    pub source: Option<FileId>,
    /// The file written.
    pub target: FileId,
    /// Where it was written.
    pub dest: PathBuf,
    /// Who signed the patch, as far as the trusted keys given could tell.
    pub origin: Origin,
}

/// An opened patch whose header has been validated (the payload not yet): a file
/// patch (`Patch`), or, as `Patch<TreeBody>`, the container of a tree patch
/// ([`crate::tree::TreePatch`] opens and checks the rest).
#[derive(Debug)]
pub struct Patch<B = Body> {
    path: PathBuf,
    file: File,
    /// Where the container starts in `file` (non-zero for one inside a tree patch).
    start: u64,
    header: Header<B>,
}

/// An opened container, by what its header says it is.
#[derive(Debug)]
pub enum AnyPatch {
    /// A file patch.
    File(Patch),
    /// A tree patch's container.
    Tree(Patch<TreeBody>),
}

impl AnyPatch {
    /// Opens `path` and validates its header and length.
    pub fn open(path: &Path) -> Result<AnyPatch, Error> {
        let io_err = |source| Error::PatchIo {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        AnyPatch::within(path, file, 0, len)
    }

    /// The container occupying bytes `start..start + len` of `file` (which was opened
    /// from `path`, named in errors): a file's container inside a tree patch. The
    /// header is validated against `len` as if the container were a file of its own.
    pub fn within(path: &Path, file: File, start: u64, len: u64) -> Result<AnyPatch, Error> {
        let io_err = |source| Error::PatchIo {
            path: path.to_path_buf(),
            source,
        };
        let mut head = vec![0; HEADER_LEN.min(usize::try_from(len).unwrap_or(usize::MAX))];
        let mut filled = 0;
        while filled < head.len() {
            let n = read_at(&file, &mut head[filled..], start + filled as u64).map_err(io_err)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        head.truncate(filled);
        AnyPatch::with_head(path, file, start, len, &head)
    }

    /// [`AnyPatch::within`] with the container's first bytes (up to [`HEADER_LEN`])
    /// already read, by a pass that hashed them: the header is decoded from those.
    pub(crate) fn with_head(
        path: &Path,
        file: File,
        start: u64,
        len: u64,
        head: &[u8],
    ) -> Result<AnyPatch, Error> {
        let header = AnyHeader::decode(head, len).map_err(|source| Error::Format {
            path: path.to_path_buf(),
            source,
        })?;
        let path = path.to_path_buf();
        Ok(match header {
            AnyHeader::File(header) => AnyPatch::File(Patch {
                path,
                file,
                start,
                header,
            }),
            AnyHeader::Tree(header) => AnyPatch::Tree(Patch {
                path,
                file,
                start,
                header,
            }),
        })
    }
}

impl Patch {
    /// Opens the file patch at `path` and validates its header and length; a tree
    /// patch is [`Error::TreePatch`] (open it with [`AnyPatch::open`] or
    /// [`crate::tree::TreePatch::open`]).
    pub fn open(path: &Path) -> Result<Patch, Error> {
        match AnyPatch::open(path)? {
            AnyPatch::File(patch) => Ok(patch),
            AnyPatch::Tree(_) => Err(Error::TreePatch {
                path: path.to_path_buf(),
            }),
        }
    }
}

impl<B: HeaderBody> Patch<B> {
    /// The validated header.
    pub fn header(&self) -> &Header<B> {
        &self.header
    }

    /// The patch file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the header's signature block (format-spec `patch-v1.md` §3.5). With
    /// `trusted`, the patch must carry a valid signature by one of those keys; without,
    /// an unsigned patch passes as [`Origin::Unverified`] and a signed one must verify
    /// against the key it carries. Reads nothing beyond the header.
    pub fn check_origin(&self, trusted: Option<&TrustedKeys>) -> Result<Origin, Error> {
        check_patch_origin(&self.header, trusted).map_err(|source| Error::Untrusted {
            path: self.path.clone(),
            source,
        })
    }

    /// Hashes the payload and compares it with the header. No decoder sees a payload
    /// byte before this passes.
    pub fn verify_payload(&self, progress: &mut dyn FnMut(Progress)) -> Result<(), Error> {
        self.verify_sections(progress, &mut |_| {}).map(|_| ())
    }

    /// [`Patch::verify_payload`], handing every payload byte hashed to `each` as well,
    /// in order, and returning each section's digest (the bsdiff method's three
    /// streams, or the whole payload), which the decoders check what they read
    /// against.
    pub(crate) fn verify_sections(
        &self,
        progress: &mut dyn FnMut(Progress),
        each: &mut dyn FnMut(&[u8]),
    ) -> Result<Verified, Error> {
        let payload = self.header.payload;
        let section = self.section(0, payload.size);
        verify_sections(&self.path, section, payload, self.layout(), progress, each)
    }

    /// The payload's sections, as (offset into the payload, length): the control,
    /// diff and extra streams of the bsdiff method, else the whole payload.
    fn layout(&self) -> Vec<(u64, u64)> {
        match self.header.streams() {
            Some(s) => {
                // A transformed patch's table comes first (section 0).
                let t = s.transform;
                let streams = [
                    (t, s.control),
                    (t + s.control, s.diff),
                    (t + s.control + s.diff, s.extra),
                ];
                (t > 0)
                    .then_some((0, t))
                    .into_iter()
                    .chain(streams)
                    .collect()
            }
            None => vec![(0, self.header.payload.size)],
        }
    }

    /// A reader over `len` payload bytes starting `offset` bytes into the payload.
    pub(crate) fn section(&self, offset: u64, len: u64) -> Section<'_> {
        Section::new(&self.file, self.start + HEADER_LEN as u64 + offset, len)
    }

    /// A reader over section `k` of the payload `verified` vouches for, that hashes
    /// what it reads, for a decoder.
    fn verified_section<'p>(&'p self, verified: &Verified, k: usize) -> VerifiedSection<'p> {
        verified.section(k, |offset, len| self.section(offset, len))
    }

    /// The file the patch is read from.
    pub(crate) fn into_file(self) -> File {
        self.file
    }

    pub(crate) fn corrupt(&self, problem: impl std::fmt::Display) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            problem: problem.to_string(),
        }
    }
}

/// [`Patch::verify_sections`], for either kind of container: hashes the payload
/// `section` reads against `payload`, and each of `layout`'s sections on the way.
fn verify_sections(
    path: &Path,
    section: Section<'_>,
    payload: FileId,
    layout: Vec<(u64, u64)>,
    progress: &mut dyn FnMut(Progress),
    each: &mut dyn FnMut(&[u8]),
) -> Result<Verified, Error> {
    let total = payload.size;
    let mut hashers: Vec<Hasher> = layout.iter().map(|_| Hasher::new()).collect();
    let (mut at, mut k) = (0u64, 0usize);
    let mut done = 0;
    let (len, digest) = hash_reader(crate::cancel::Reader(section), &mut |chunk| {
        each(chunk);
        let mut rest = chunk;
        while let Some(&(offset, len)) = layout.get(k) {
            let take = (offset + len - at).min(rest.len() as u64) as usize;
            hashers[k].update(&rest[..take]);
            at += take as u64;
            rest = &rest[take..];
            if at < offset + len {
                break;
            }
            k += 1;
        }
        let n = chunk.len() as u64;
        done += n;
        progress(Progress {
            phase: Phase::CheckPayload,
            done,
            total,
        });
    })
    .map_err(|source| {
        Error::read(source, |source| Error::PatchIo {
            path: path.to_path_buf(),
            source,
        })
    })?;
    if len != total {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            problem: format!(
                "payload is {len} bytes, expected {total} (file changed while reading?)"
            ),
        });
    }
    if digest != payload.sha256 {
        return Err(Error::Format {
            path: path.to_path_buf(),
            source: crate::container::FormatError::PayloadHash {
                expected: payload.sha256,
                got: digest,
            },
        });
    }
    Ok(Verified {
        sections: layout
            .into_iter()
            .zip(hashers)
            .map(|((offset, len), h)| (offset, len, h.finish()))
            .collect(),
    })
}

/// Applies the patch at `patch` to `old`, writing `dest` atomically. `old` may equal
/// `dest` (in-place update). On any error `dest` is left as it was and no temporary
/// file remains (nor any an earlier applier of `dest` was killed before removing).
///
/// While it runs it holds `dest`'s [`TargetLock`]: another applier of the same
/// destination fails at once ([`LockError::Busy`](crate::lock::LockError::Busy)).
///
/// `trusted` is the set of publisher keys the caller trusts. With `Some`, a patch that
/// is unsigned, signed by another key, or whose signature does not verify is refused
/// ([`Error::Untrusted`]) before the old file or any payload byte is read. With
/// `None`, the patch's origin is not verified (every hash still is): the report's
/// [`ApplyReport::origin`] says so, and callers should tell their user.
pub fn apply_file(
    old: Option<&Path>,
    patch: &Path,
    dest: &Path,
    limits: &Limits,
    trusted: Option<&TrustedKeys>,
    progress: &mut dyn FnMut(Progress),
) -> Result<ApplyReport, Error> {
    let patch = Patch::open(patch)?;
    apply_patch(old, &patch, dest, limits, trusted, progress)
}

/// Like [`apply_file`], for a patch already opened.
pub fn apply_patch(
    old: Option<&Path>,
    patch: &Patch,
    dest: &Path,
    limits: &Limits,
    trusted: Option<&TrustedKeys>,
    progress: &mut dyn FnMut(Progress),
) -> Result<ApplyReport, Error> {
    let _lock = TargetLock::acquire(dest)?;
    apply_unlocked(old, patch, dest, limits, trusted, progress)
}

/// [`apply_patch`] for a caller that holds `dest`'s [`TargetLock`] already (the
/// updater), or writes where no other applier can (a tree's staging directory).
pub fn apply_unlocked(
    old: Option<&Path>,
    patch: &Patch,
    dest: &Path,
    limits: &Limits,
    trusted: Option<&TrustedKeys>,
    progress: &mut dyn FnMut(Progress),
) -> Result<ApplyReport, Error> {
    let header = patch.header();
    // The origin comes first: a patch from an untrusted source gets no further than
    // its header, so no byte it controls reaches the old-file check or a decoder.
    let origin = patch.check_origin(trusted)?;
    if header.apply_memory > limits.max_apply_memory {
        return Err(Error::MemoryLimit {
            path: patch.path.clone(),
            needed: header.apply_memory,
            limit: limits.max_apply_memory,
        });
    }
    // The old file is checked (and, for the reference method, loaded) before the
    // payload, so that the common "wrong base" case fails fast with the clearest error.
    let old_file = |expected: FileId, keep, progress: &mut dyn FnMut(Progress)| {
        let path = old.ok_or_else(|| Error::MissingSource {
            path: patch.path.clone(),
        })?;
        check_source(path, expected, keep, progress)
    };
    let decode = match header.body {
        Body::Bsdiff { source, streams } => {
            Decode::Bsdiff(old_file(source, false, progress)?, source.size, streams)
        }
        Body::ZstdRef { source } => Decode::Reference(old_file(source, true, progress)?),
        Body::Full => Decode::Full,
    };
    let verified = patch.verify_sections(progress, &mut |_| {})?;
    // The transform table is read and checked before anything is staged.
    let table = match &decode {
        Decode::Bsdiff(_, source_size, streams) if streams.transform > 0 => {
            // At most MAX_TABLE_LEN bytes (the header checked), read and confirmed whole.
            let (mut section, mut bytes) = (patch.verified_section(&verified, 0), Vec::new());
            let read = (&mut section)
                .take(streams.transform)
                .read_to_end(&mut bytes);
            read.map_err(|source| Error::PatchIo {
                path: patch.path.clone(),
                source,
            })?;
            section
                .confirm("transform table")
                .map_err(|p| patch.corrupt(p))?;
            TransformTable::decode(&bytes, *source_size, header.target.size)
                .map_err(|e| patch.corrupt(e))?
        }
        _ => TransformTable::default(),
    };

    // Everything is decoded into a temporary file, which replaces the destination only
    // after the decoders have confirmed that they read the verified bytes and the
    // output has its expected hash; dropping it on any error removes it.
    let staged = Staged::beside(dest, inherit_permissions(dest, old))?;
    // Only a size a trusted signature vouches for is acted on: a corrupt or hostile
    // header's size gets the error that its payload earns, not a "no room" one.
    if matches!(origin, Origin::Trusted { .. }) {
        staged.reserve(header.target.size)?;
    }
    let mut sink = Sink::new(&staged, header.target.size, progress);
    match &decode {
        Decode::Bsdiff(src, source_size, streams) => {
            let old = (src, *source_size, &table.old[..]);
            apply_bsdiff(patch, &verified, old, *streams, &table.new, &mut sink)?
        }
        Decode::Reference(src) => {
            // Loaded by `check_source(.., true, ..)` above; an empty prefix would only
            // make the decoder fail (and the output its hash check).
            let prefix = src.bytes.as_deref().unwrap_or_default();
            decode_single_frame(patch, &verified, Some(prefix), &mut sink)?;
        }
        Decode::Full => decode_single_frame(patch, &verified, None, &mut sink)?,
    }
    let (size, sha256) = sink.finish()?;
    if size != header.target.size || sha256 != header.target.sha256 {
        return Err(Error::TargetMismatch {
            path: patch.path.clone(),
            expected: header.target,
            got_size: size,
            got_sha256: sha256,
        });
    }
    staged.commit()?;
    Ok(ApplyReport {
        method: header.method(),
        source: header.source(),
        target: header.target,
        dest: dest.to_path_buf(),
        origin,
    })
}

/// What decoding a file patch takes, by method: the checked old file where it has one.
enum Decode {
    /// The old file, its size, and the payload's streams.
    Bsdiff(Source, u64, StreamSizes),
    /// The old file, loaded.
    Reference(Source),
    /// Nothing but the payload.
    Full,
}

/// Decodes the one zstd frame of the reference and full methods into the sink.
fn decode_single_frame(
    patch: &Patch,
    verified: &Verified,
    prefix: Option<&[u8]>,
    sink: &mut Sink<'_, '_>,
) -> Result<(), Error> {
    let mut section = patch.verified_section(verified, 0);
    check_frame_content_size(patch, &mut section)?;
    let reader = io::BufReader::new(section);
    let decoder = match prefix {
        Some(prefix) => zstd::stream::read::Decoder::with_ref_prefix(reader, prefix),
        None => zstd::stream::read::Decoder::with_buffer(reader),
    };
    let mut dec = decoder.map_err(|e| patch.corrupt(e))?.single_frame();
    dec.window_log_max(u32::from(patch.header.window_log))
        .map_err(|e| patch.corrupt(e))?;
    copy_all(patch, &mut dec, sink)?;
    expect_end(patch, dec.finish(), "payload")
}

/// The single-frame methods' memory bound relies on the frame declaring its content
/// size (zstd then sizes its buffer by it): check that it does, and that it is the
/// target size.
fn check_frame_content_size(patch: &Patch, section: &mut VerifiedSection<'_>) -> Result<(), Error> {
    let header = &patch.header;
    let window_log = u32::from(header.window_log);
    check_frame(
        patch,
        section,
        window_log,
        "payload",
        Some(header.target.size),
    )
}

/// Checks the header of the zstd frame at the start of `section`: it must be a zstd
/// frame (not a skippable one) whose window is at most `2^max_log`. libzstd skips its
/// own window check for frames it can decode in one call, so this is where the
/// header's `window_log` is enforced. With `content_size`, the frame must also declare
/// exactly that content size. The bytes checked are the ones the decoder then reads
/// (the section keeps them), not a separate read of the file.
fn check_frame(
    patch: &Patch,
    section: &mut VerifiedSection<'_>,
    max_log: u32,
    name: &str,
    content_size: Option<u64>,
) -> Result<(), Error> {
    const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
    let head = section.peek().map_err(|source| Error::PatchIo {
        path: patch.path.clone(),
        source,
    })?;
    let no_frame = || patch.corrupt(format!("{name} does not start with a zstd frame"));
    let mut r = Reader::new(head);
    if head.len() < 6 || r.array::<4>("zstd magic").map_err(|_| no_frame())? != ZSTD_MAGIC {
        return Err(no_frame());
    }
    let invalid = || patch.corrupt(format!("{name} has an invalid zstd frame header"));
    let descriptor = r.u8("Frame_Header_Descriptor").map_err(|_| invalid())?;
    let content = zstd::zstd_safe::get_frame_content_size(head).map_err(|_| invalid())?;
    match (content_size, content) {
        (None, _) => {}
        (Some(expected), Some(got)) if expected == got => {}
        (Some(expected), Some(got)) => {
            return Err(patch.corrupt(format!(
                "zstd frame declares {got} bytes, the header says {expected}"
            )));
        }
        (Some(_), None) => {
            return Err(patch.corrupt("zstd frame does not declare its content size"));
        }
    }
    let single_segment = descriptor & 0x20 != 0;
    let window = if single_segment {
        content.ok_or_else(invalid)?
    } else {
        let window_descriptor = r.u8("Window_Descriptor").map_err(|_| invalid())?;
        let base = 1u64 << (10 + u32::from(window_descriptor >> 3));
        base + base / 8 * u64::from(window_descriptor & 7)
    };
    if window > 1u64 << max_log {
        return Err(patch.corrupt(format!(
            "{name} zstd frame needs a {window}-byte window, above the 2^{max_log} the header allows"
        )));
    }
    Ok(())
}

struct Source {
    path: PathBuf,
    file: File,
    /// The whole file, when the method needs it in memory.
    bytes: Option<Vec<u8>>,
}

/// Checks `path` against `expected` (size first, then SHA-256), optionally keeping
/// its bytes.
fn check_source(
    path: &Path,
    expected: FileId,
    keep: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Source, Error> {
    let io_err = |source| Error::SourceIo {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    let wrong = |got_sha256| Error::WrongSource {
        path: path.to_path_buf(),
        expected,
        got_size: size,
        got_sha256,
    };
    if size != expected.size {
        return Err(wrong(None));
    }
    let total = expected.size;
    let mut done = 0;
    let mut report = |n| {
        done += n;
        progress(Progress {
            phase: Phase::CheckSource,
            done,
            total,
        });
    };
    // Reading one byte past the expected size catches a file that grew meanwhile.
    let limited = (&file).take(expected.size.saturating_add(1));
    // For the reference method the bytes are kept: the size was checked against the
    // header, and `apply_memory` (which includes it) against the caller's limit, so
    // this allocation is bounded.
    let mut bytes = if keep {
        let capacity = usize::try_from(expected.size).map_err(|_| {
            io_err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "old file does not fit in memory",
            ))
        })?;
        Some(Vec::with_capacity(capacity))
    } else {
        None
    };
    let (len, digest) = hash_reader(crate::cancel::Reader(limited), &mut |chunk| {
        if let Some(b) = bytes.as_mut() {
            b.extend_from_slice(chunk);
        }
        report(chunk.len() as u64);
    })
    .map_err(|e| Error::read(e, io_err))?;
    if len != expected.size || digest != expected.sha256 {
        return Err(Error::WrongSource {
            path: path.to_path_buf(),
            expected,
            got_size: len,
            got_sha256: Some(digest),
        });
    }
    Ok(Source {
        path: path.to_path_buf(),
        file,
        bytes,
    })
}

/// The bsdiff decoder loop: positioned reads of the old file, sequential output.
fn apply_bsdiff(
    patch: &Patch,
    verified: &Verified,
    (old, old_size, old_ranges): (&Source, u64, &[Range]),
    streams: StreamSizes,
    new_ranges: &[Range],
    sink: &mut Sink<'_, '_>,
) -> Result<(), Error> {
    let window_log = u32::from(patch.header.window_log);
    let control_window = window_log.min(u32::from(crate::container::MAX_CONTROL_WINDOW_LOG));
    // Sections 0, 1, 2 are the streams; a transform table before them shifts them.
    let first = usize::from(streams.transform > 0);
    let decoder = |k, log, name| -> Result<_, Error> {
        let mut section = patch.verified_section(verified, first + k);
        check_frame(patch, &mut section, log, name, None)?;
        let mut d = zstd::stream::read::Decoder::new(section)
            .map_err(|e| patch.corrupt(e))?
            .single_frame();
        d.window_log_max(log).map_err(|e| patch.corrupt(e))?;
        Ok(d)
    };
    debug_assert_eq!(
        verified.sections[first..]
            .iter()
            .map(|s| s.1)
            .collect::<Vec<_>>(),
        [streams.control, streams.diff, streams.extra]
    );
    let mut old_reader = FilteredOld::new(&old.file, &old.path, old_ranges, old_size);
    let mut sink = Output::new(sink, new_ranges, patch.header.target.size);
    let mut ops = OpReader::new(io::BufReader::with_capacity(
        16 << 10,
        decoder(0, control_window, "control stream")?,
    ));
    let diff_decoder = decoder(1, window_log, "diff stream")?;
    let mut diff = match streams.diff_coding {
        DiffCoding::Plain => DiffReader::Plain(diff_decoder),
        DiffCoding::ZeroRun => DiffReader::ZeroRun(ZeroRunReader::new(
            io::BufReader::with_capacity(16 << 10, diff_decoder),
        )),
    };
    let mut extra = decoder(2, window_log, "extra stream")?;

    let target = patch.header.target.size;
    let mut cursor: u64 = 0;
    let mut new_buf = vec![0u8; IO_CHUNK];
    let mut old_buf = vec![0u8; IO_CHUNK];
    while let Some(op) = ops.next_op().map_err(|e| patch.corrupt(e))? {
        let remaining = target - sink.written();
        let record = ops.records_read() - 1;
        if op.diff_len > remaining || op.extra_len > remaining - op.diff_len {
            return Err(patch.corrupt(format!(
                "control record {record} writes past the target size {target}"
            )));
        }
        // Only the first record may produce nothing (it positions the cursor); this
        // bounds the records, and so the work, by the target size.
        if record > 0 && op.diff_len == 0 && op.extra_len == 0 {
            return Err(patch.corrupt(format!("control record {record} produces no bytes")));
        }
        if cursor
            .checked_add(op.diff_len)
            .is_none_or(|end| end > old_size)
        {
            return Err(patch.corrupt(format!(
                "control record {record} reads old bytes {cursor}..{} beyond the old size {old_size}",
                cursor.saturating_add(op.diff_len)
            )));
        }
        let mut left = op.diff_len;
        while left > 0 {
            let n = left.min(IO_CHUNK as u64) as usize;
            read_stream(patch, &mut diff, &mut new_buf[..n], "diff")?;
            old_reader.read_exact_at(&mut old_buf[..n], cursor)?;
            for (d, o) in new_buf[..n].iter_mut().zip(&old_buf[..n]) {
                *d = d.wrapping_add(*o);
            }
            sink.write(&new_buf[..n])?;
            cursor += n as u64;
            left -= n as u64;
        }
        let mut left = op.extra_len;
        while left > 0 {
            let n = left.min(IO_CHUNK as u64) as usize;
            read_stream(patch, &mut extra, &mut new_buf[..n], "extra")?;
            sink.write(&new_buf[..n])?;
            left -= n as u64;
        }
        cursor = cursor
            .checked_add_signed(op.seek)
            .filter(|&c| c <= old_size)
            .ok_or_else(|| {
                patch.corrupt(format!(
                    "control record seeks the old cursor outside 0..={old_size}"
                ))
            })?;
    }
    let produced = sink.written();
    sink.finish()?;
    if produced != target {
        return Err(patch.corrupt(format!(
            "control stream produces {produced} bytes, the header says {target}"
        )));
    }
    let left_over = |name: &str| patch.corrupt(format!("{name} stream has bytes left over"));
    let diff = match diff {
        DiffReader::Plain(d) => d,
        DiffReader::ZeroRun(mut z) => {
            match z.at_end() {
                Ok(true) => {}
                Ok(false) => return Err(left_over("diff")),
                Err(e) => return Err(patch.corrupt(format!("diff stream: {e}"))),
            }
            z.into_inner().into_inner()
        }
    };
    for (name, mut stream) in [("diff", diff), ("extra", extra)] {
        let mut probe = [0u8; 1];
        match stream.read(&mut probe) {
            Ok(0) => {}
            Ok(_) => return Err(left_over(name)),
            Err(e) => return Err(patch.corrupt(format!("{name} stream: {e}"))),
        }
        expect_end(patch, stream.finish(), name)?;
    }
    let mut control = ops.into_inner();
    match control.fill_buf() {
        Ok([]) => {}
        Ok(_) => return Err(patch.corrupt("control stream has bytes left over")),
        Err(e) => return Err(patch.corrupt(format!("control stream: {e}"))),
    }
    expect_end(patch, control.into_inner().finish(), "control")
}

/// Each zstd stream is exactly one frame filling its section: bytes after the frame
/// (another frame, or anything else) are refused, so no second frame can ask for a
/// window the memory bound did not count. The section has then been read to its end,
/// and what was read must be what was verified.
fn expect_end(
    patch: &Patch,
    mut rest: io::BufReader<VerifiedSection<'_>>,
    name: &str,
) -> Result<(), Error> {
    match rest.fill_buf() {
        Ok([]) => rest
            .into_inner()
            .confirm(name)
            .map_err(|p| patch.corrupt(p)),
        Ok(_) => Err(patch.corrupt(format!("{name} has bytes after its zstd frame"))),
        Err(e) => Err(patch.corrupt(format!("{name}: {e}"))),
    }
}

type StreamDecoder<'p> = zstd::stream::read::Decoder<'static, io::BufReader<VerifiedSection<'p>>>;

/// The diff stream, plain or zero-run coded.
enum DiffReader<'p> {
    Plain(StreamDecoder<'p>),
    ZeroRun(ZeroRunReader<io::BufReader<StreamDecoder<'p>>>),
}

impl Read for DiffReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            DiffReader::Plain(d) => d.read(buf),
            DiffReader::ZeroRun(z) => z.read(buf),
        }
    }
}

fn read_stream(patch: &Patch, r: &mut impl Read, buf: &mut [u8], name: &str) -> Result<(), Error> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => patch.corrupt(format!("{name} stream ends early")),
        _ => patch.corrupt(format!("{name} stream: {e}")),
    })
}

/// Copies a decoder's whole output into the sink, refusing more than the target size.
fn copy_all(patch: &Patch, r: &mut impl Read, sink: &mut Sink<'_, '_>) -> Result<(), Error> {
    let mut buf = vec![0u8; IO_CHUNK];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(patch.corrupt(e)),
        };
        if n as u64 > sink.limit - sink.written {
            return Err(patch.corrupt(format!(
                "payload decodes to more than the target size {}",
                sink.limit
            )));
        }
        sink.write(&buf[..n])?;
    }
}

/// The staged output: buffered, hashed, counted, bounded (the foreign formats' appliers
/// write through it too).
pub(crate) struct Sink<'s, 'p> {
    out: BufWriter<crate::fault::Checked<&'s File>>,
    path: &'s Path,
    hasher: Hasher,
    written: u64,
    limit: u64,
    progress: &'p mut dyn FnMut(Progress),
    reported: u64,
}

impl<'s, 'p> Sink<'s, 'p> {
    /// A sink into `staged` that will be given at most `limit` bytes (the caller
    /// checks the free space first where the size is vouched for, [`Staged::reserve`]).
    pub(crate) fn new(
        staged: &'s Staged,
        limit: u64,
        progress: &'p mut dyn FnMut(Progress),
    ) -> Self {
        Sink {
            out: BufWriter::with_capacity(IO_CHUNK, crate::fault::Checked(staged.file())),
            path: staged.path(),
            hasher: Hasher::new(),
            written: 0,
            limit,
            progress,
            reported: 0,
        }
    }

    /// Writes and hashes `bytes` (the caller keeps within the limit).
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if crate::cancel::requested() {
            return Err(Error::Cancelled);
        }
        self.hasher.update(bytes);
        self.out
            .write_all(bytes)
            .map_err(|source| Error::OutputIo {
                path: self.path.to_path_buf(),
                source,
            })?;
        self.written += bytes.len() as u64;
        if self.written - self.reported >= 1 << 20 || self.written == self.limit {
            self.reported = self.written;
            (self.progress)(Progress {
                phase: Phase::Write,
                done: self.written,
                total: self.limit,
            });
        }
        Ok(())
    }

    /// Reads back `buf.len()` bytes written from `offset` (which must be below
    /// [`Sink::written`]): what is buffered is flushed first.
    pub(crate) fn read_back(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let io_err = |source| Error::OutputIo {
            path: self.path.to_path_buf(),
            source,
        };
        self.out.flush().map_err(io_err)?;
        read_exact_at(self.out.get_ref().0, buf, offset).map_err(io_err)
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Flushes; returns the size and SHA-256 of what was written.
    pub(crate) fn finish(self) -> Result<(u64, deltaapply_format::Sha256Digest), Error> {
        let path = self.path.to_path_buf();
        self.out.into_inner().map_err(|e| Error::OutputIo {
            path,
            source: e.into_error(),
        })?;
        Ok((self.written, self.hasher.finish()))
    }
}

impl ByteSink for Sink<'_, '_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.write(bytes)
    }
    fn written(&self) -> u64 {
        self.written
    }
}
