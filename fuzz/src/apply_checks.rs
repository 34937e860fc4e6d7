//! What the fuzz targets of the decoders that read files run: the input is written to
//! files in a scratch directory on tmpfs (`/dev/shm` when there is one) and applied
//! with the library's own entry points (`deltaapply::apply_file`,
//! `deltaapply::foreign::apply_foreign`) under a small memory limit; then what must
//! hold is checked (the destination is the declared result or untouched, nothing is
//! left behind), and the output is compared with an in-memory decode of the same
//! bytes read with output buffers of random sizes. Also the state file and the HTTP
//! `Content-Range` parser, which need the facade rather than the format crate.
//!
//! The same file is compiled into `deltaapply/tests/fuzz_regressions.rs` (`#[path]`,
//! beside `format_checks.rs`), which replays `testdata/fuzz/<target>/*` with plain
//! `cargo test`.
//!
//! Input of the apply targets: a 4-byte little-endian length, that many bytes of old
//! file (fewer if the input ends first), then the patch. `scripts/fuzz-seeds.sh`
//! builds seeds of this shape from `testdata/vectors`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use deltaapply::container::{self, HEADER_LEN};
use deltaapply::foreign::{self, Check, ForeignApply};
use deltaapply::{Limits, Method, Sha256Digest};

use super::format_checks::{End, ReadSizes, read_all};

/// The memory limit every decoder here runs under.
const MEMORY_LIMIT: u64 = 64 << 20;
/// The largest output a target lets a patch declare (a larger one is shrunk, or
/// skipped where the format gives no room to shrink it), so that one input costs
/// milliseconds, not a gigabyte of tmpfs.
const MAX_OUTPUT: u64 = 1 << 20;

/// The old file and the patch of an apply target's input.
pub fn split_old(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return (&[], data);
    };
    let len = (u32::from_le_bytes(*len) as usize).min(rest.len());
    rest.split_at(len)
}

/// The scratch directory of this process (one per process: targets run one input at
/// a time, and each leaves it as it found it).
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new()
                .prefix("deltaapply-fuzz")
                .tempdir_in(shm)
        } else {
            tempfile::Builder::new().prefix("deltaapply-fuzz").tempdir()
        };
        dir.expect("a scratch directory")
    })
    .path()
}

/// The scratch files of one run: old, patch and destination.
struct Files {
    old: PathBuf,
    patch: PathBuf,
    dest: PathBuf,
}

impl Files {
    fn write(old: &[u8], patch: &[u8]) -> Files {
        let dir = scratch();
        let files = Files {
            old: dir.join("old"),
            patch: dir.join("patch"),
            dest: dir.join("new"),
        };
        fs::write(&files.old, old).unwrap();
        fs::write(&files.patch, patch).unwrap();
        files
    }

    /// After a run: the destination exists only if the apply succeeded, and nothing
    /// else was left (no temporary file, no lock file). Returns what it holds.
    fn finish(self, ok: bool) -> Option<Vec<u8>> {
        let mut names: Vec<String> = fs::read_dir(scratch())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let expected: &[&str] = if ok {
            &["new", "old", "patch"]
        } else {
            &["old", "patch"]
        };
        assert_eq!(names, expected, "scratch directory after a run (ok: {ok})");
        let out = ok.then(|| fs::read(&self.dest).unwrap());
        for p in [&self.old, &self.patch, &self.dest] {
            let _ = fs::remove_file(p);
        }
        out
    }
}

/// Rewrites a patch-v1 header so that it passes the header checks for `method` with
/// this old file and payload: magic, version, method, window log (10..=24), the
/// source (the old file's, or zero), target size at most [`MAX_OUTPUT`], payload size
/// and hash, stream sizes that sum to the payload, apply_memory, checksum, no
/// signature. What is left to the input is the rest of the fields (the target hash,
/// the stream split, the diff coding) and the payload: the decoder's input.
pub fn fix_header(patch: &mut Vec<u8>, method: Method, old: &[u8]) {
    if patch.len() < HEADER_LEN {
        patch.resize(HEADER_LEN, 0);
    }
    let payload_len = (patch.len() - HEADER_LEN) as u64;
    let payload_sha = Sha256Digest::of(&patch[HEADER_LEN..]);
    let h = &mut patch[..HEADER_LEN];
    let u64_at = |h: &[u8], at: usize| u64::from_le_bytes(h[at..at + 8].try_into().unwrap());
    let put = |h: &mut [u8], at: usize, v: u64| h[at..at + 8].copy_from_slice(&v.to_le_bytes());
    h[..8].copy_from_slice(&container::MAGIC);
    h[8..10].copy_from_slice(&container::VERSION.to_le_bytes());
    h[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    h[12] = method.code();
    if !(10..=24).contains(&h[13]) {
        h[13] = 10 + h[13] % 15;
    }
    let window_log = h[13];
    h[14] = if method == Method::Bsdiff {
        h[14] & 1
    } else {
        0
    };
    h[15] = 0;
    let source_size = if method == Method::Full {
        h[16..56].fill(0);
        0
    } else {
        put(h, 16, old.len() as u64);
        h[24..56].copy_from_slice(&Sha256Digest::of(old).0);
        old.len() as u64
    };
    let target = u64_at(h, 56);
    let target = if target > MAX_OUTPUT {
        target % (MAX_OUTPUT + 1)
    } else {
        target
    };
    put(h, 56, target);
    put(h, 96, payload_len);
    h[104..136].copy_from_slice(&payload_sha.0);
    put(
        h,
        136,
        container::memory_bound(method, window_log, source_size, target),
    );
    if method == Method::Bsdiff {
        let control = u64_at(h, 144).min(payload_len);
        let diff = u64_at(h, 152).min(payload_len - control);
        put(h, 144, control);
        put(h, 152, diff);
        put(h, 160, payload_len - control - diff);
    } else {
        h[144..168].fill(0);
    }
    h[168..176].fill(0);
    let check = Sha256Digest::of(&h[..176]);
    h[176..192].copy_from_slice(&check.0[..16]);
    h[192..].fill(0);
}

/// Targets `apply_bsdiff`, `apply_zstd_ref`, `apply_full`: one method's decoder, from
/// `deltaapply::apply_file`.
pub fn apply_method(data: &[u8], method: Method) {
    let (old, patch) = split_old(data);
    let mut patch = patch.to_vec();
    fix_header(&mut patch, method, old);
    let header = container::Header::decode(&patch, patch.len() as u64)
        .expect("fix_header makes a header that decodes");
    let files = Files::write(old, &patch);
    let result = deltaapply::apply_file(
        Some(&files.old),
        &files.patch,
        &files.dest,
        &Limits {
            max_apply_memory: MEMORY_LIMIT,
        },
        None,
        &mut |_| {},
    );
    let out = files.finish(result.is_ok());
    let Some(out) = out else { return };
    assert_eq!(out.len() as u64, header.target.size);
    assert_eq!(Sha256Digest::of(&out), header.target.sha256);
    // The single-frame methods, decoded again in memory with random read sizes.
    let prefix = match method {
        Method::ZstdRef => Some(old),
        Method::Full => None,
        _ => return,
    };
    let payload = &patch[HEADER_LEN..];
    let got = zstd_in_memory(payload, prefix, u32::from(header.window_log), out.len() + 1);
    assert_eq!(got, (out, End::Eof), "the in-memory decode differs");
}

/// One zstd frame decoded in memory, with output buffers of random sizes.
fn zstd_in_memory(
    frame: &[u8],
    prefix: Option<&[u8]>,
    window_log: u32,
    cap: usize,
) -> (Vec<u8>, End) {
    let decoder = match prefix {
        Some(p) => zstd::stream::read::Decoder::with_ref_prefix(frame, p),
        None => zstd::stream::read::Decoder::with_buffer(frame),
    };
    let Ok(decoder) = decoder else {
        return (Vec::new(), End::Error(std::io::ErrorKind::Other));
    };
    let mut d = decoder.single_frame();
    if d.window_log_max(window_log).is_err() {
        return (Vec::new(), End::Error(std::io::ErrorKind::Other));
    }
    let mut sizes = ReadSizes::for_input(frame);
    read_all(&mut d, &mut sizes, cap)
}

/// Target `foreign_bsdiff40`: a BSDIFF40 patch, from `deltaapply::foreign`; what it
/// makes is compared with an in-memory bspatch that reads its bzip2 streams with
/// output buffers of random sizes.
pub fn foreign_bsdiff40(data: &[u8]) {
    let (old, patch) = split_old(data);
    if !patch.starts_with(&deltaapply::bsdiff40::MAGIC) {
        return;
    }
    // The new size cannot be shrunk without changing the patch: skip large ones.
    match deltaapply::bsdiff40::Header::decode(patch, patch.len() as u64) {
        Ok(h) if h.new_size > MAX_OUTPUT => return,
        _ => {}
    }
    let out = foreign_apply(old, patch, None);
    let Some(out) = out else { return };
    let h = deltaapply::bsdiff40::Header::decode(patch, patch.len() as u64).unwrap();
    assert_eq!(out.len() as u64, h.new_size);
    let again = bspatch_in_memory(old, patch, &h);
    assert_eq!(
        again.as_deref(),
        Some(&out[..]),
        "the in-memory bspatch differs"
    );
}

/// Target `foreign_zstd`: a `zstd --patch-from` frame, from `deltaapply::foreign`,
/// compared with an in-memory decode read with output buffers of random sizes.
pub fn foreign_zstd(data: &[u8]) {
    let (old, patch) = split_old(data);
    let header = deltaapply::zstd_frame::FrameHeader::decode(patch);
    let expected = match header {
        Ok(h) => match h.content_size {
            Some(size) if size > MAX_OUTPUT => return,
            Some(_) => None,
            None => Some(MAX_OUTPUT),
        },
        Err(_) => None,
    };
    let Some(out) = foreign_apply(old, patch, expected) else {
        return;
    };
    let h = header.expect("an applied frame has a valid header");
    let window_log = (64 - h.window_size.saturating_sub(1).leading_zeros()).max(10);
    let again = zstd_in_memory(patch, Some(old), window_log, MAX_OUTPUT as usize + 1);
    if h.content_size.is_some() {
        assert_eq!(again, (out, End::Eof), "the in-memory decode differs");
    } else {
        // Without a content size, the applier stops at the expected size.
        assert!(again.0.starts_with(&out), "the in-memory decode differs");
    }
}

/// Target `foreign_vcdiff`: `apply_foreign` and `describe` on a VCDIFF patch (input:
/// old file and patch), 64 MiB limit, when its windows declare at most
/// [`MAX_OUTPUT`] bytes: the output, if any, has the declared length, and nothing is
/// left behind.
pub fn foreign_vcdiff(data: &[u8]) {
    let (old, patch) = split_old(data);
    if !patch.starts_with(&deltaapply::vcdiff::MAGIC) {
        return;
    }
    let declared = super::format_checks::vcdiff(patch);
    if declared.is_some_and(|d| d > MAX_OUTPUT) {
        return;
    }
    // Headers that do not decode go through the applier's own refusals too.
    if let Some(out) = foreign_apply(old, patch, None) {
        assert_eq!(Some(out.len() as u64), declared, "output length");
    }
}

/// Applies a foreign patch in the scratch directory; the output if it succeeded.
fn foreign_apply(old: &[u8], patch: &[u8], expected_size: Option<u64>) -> Option<Vec<u8>> {
    let files = Files::write(old, patch);
    let _ = foreign::describe(&files.patch);
    let result = foreign::apply_foreign(
        &ForeignApply {
            old: &files.old,
            patch: &files.patch,
            dest: &files.dest,
            check: Check::Unverified,
            expected_size,
            max_memory: MEMORY_LIMIT,
        },
        &mut |_| {},
    );
    if let Ok(report) = &result {
        assert!(expected_size.is_none_or(|e| e == report.target.size));
    }
    files.finish(result.is_ok())
}

/// bspatch in memory, as `format-spec/foreign.md` describes it, over the format
/// crate's checks ([`deltaapply::bsdiff40::Walk`]); `None` where it refuses the patch.
fn bspatch_in_memory(
    old: &[u8],
    patch: &[u8],
    h: &deltaapply::bsdiff40::Header,
) -> Option<Vec<u8>> {
    let [c, d, e] = h.sections();
    let section = |(at, len): (u64, u64)| &patch[at as usize..(at + len) as usize];
    let mut sizes = ReadSizes::for_input(patch);
    let mut stream = |s| {
        let (bytes, end) = read_all(
            &mut bzip2::read::BzDecoder::new(section(s)),
            &mut sizes,
            usize::MAX,
        );
        (end == End::Eof).then_some(bytes)
    };
    let (control, diff, extra) = (stream(c)?, stream(d)?, stream(e)?);
    // The applier's streams are one bzip2 stream each: no bytes after it.
    for s in [c, d, e] {
        let mut dec = bzip2::bufread::BzDecoder::new(section(s));
        std::io::copy(&mut dec, &mut std::io::sink()).ok()?;
        if !dec.into_inner().is_empty() {
            return None;
        }
    }
    let mut walk = deltaapply::bsdiff40::Walk::new(h.new_size);
    let mut out = Vec::new();
    let (mut di, mut ei) = (0usize, 0usize);
    let mut records = control.chunks(24);
    for record in records.by_ref() {
        let step = walk.take(record.try_into().ok()?).ok()?;
        let add = step.control.add as usize;
        let copy = step.control.copy as usize;
        let diff = diff.get(di..di + add)?;
        for (k, &byte) in diff.iter().enumerate() {
            let at = step.old_pos + k as i64;
            let o = usize::try_from(at)
                .ok()
                .and_then(|i| old.get(i))
                .copied()
                .unwrap_or(0);
            out.push(byte.wrapping_add(o));
        }
        out.extend_from_slice(extra.get(ei..ei + copy)?);
        di += add;
        ei += copy;
    }
    (walk.is_complete() && di == diff.len() && ei == extra.len()).then_some(out)
}

/// Target `state_file`: the updater's state file; one that parses renders to a file
/// that parses to the same state.
pub fn state_file(data: &[u8]) {
    if let Ok(state) = deltaapply::update::State::parse(data) {
        let text = state.render();
        assert_eq!(
            deltaapply::update::State::parse(text.as_bytes()).unwrap(),
            state
        );
        for product in state.products() {
            for channel in state.channels(product) {
                assert!(state.accepted(product, channel).is_some());
            }
        }
    }
}

/// Target `content_range`: the `Content-Range` value of a 206 answer. The rest of the
/// HTTP answer handling (status, Content-Length, validators) reads a live
/// `reqwest::Response` and has no I/O-free entry point to fuzz.
pub fn content_range(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((start, end, total)) = deltaapply::fetch::parse_content_range(text) {
        assert!(start <= end);
        assert!(total.is_none_or(|t| end < t));
        let total_text = total.map_or("*".to_string(), |t| t.to_string());
        let canonical = format!("bytes {start}-{end}/{total_text}");
        assert_eq!(
            deltaapply::fetch::parse_content_range(&canonical),
            Some((start, end, total))
        );
    }
}
