//! Applying a BSDIFF40 patch: the header checked against the file
//! ([`crate::bsdiff40::Header`]), every control record against the target
//! ([`crate::bsdiff40::Walk`]) before it is carried out, the old file read with
//! positioned reads where each record points (never loaded), the output streamed into
//! the sink. Memory: the three bzip2 decoders (the block size each stream's header
//! declares, at most 3.7 MB each) plus fixed buffers, whatever the file sizes.

use std::io::{self, BufRead, BufReader, Read};

use super::{ForeignError, OldFile, PatchFile};
use crate::apply::{Section, Sink, read_exact_at};
use crate::bsdiff40::{HEADER_LEN, Header, RECORD_LEN, Walk};
use crate::digest::IO_CHUNK;

/// What bzip2 decompression of one stream takes beyond its blocks (libbzip2's manual:
/// "100k + 4 × block size" for the default, fast decoder).
const BZIP2_BASE: u64 = 100_000;
/// Bytes per unit of a stream's block size digit (`BZh1`..`BZh9`: 100 kB units, four
/// bytes per block byte).
const BZIP2_PER_LEVEL: u64 = 400_000;
/// The applier's own buffers: two I/O chunks, three stream buffers, the sink's.
const FIXED: u64 = 4 * IO_CHUNK as u64 + 3 * STREAM_BUF as u64;
/// Read buffer of each compressed stream.
const STREAM_BUF: usize = 16 << 10;

/// A BSDIFF40 patch ready to decode.
pub(super) struct Plan {
    /// Its header.
    pub(super) header: Header,
    /// The memory decoding it takes, at most.
    pub(super) memory: u64,
}

/// The patch's header, checked against its length.
pub(super) fn header(patch: &PatchFile) -> Result<Header, ForeignError> {
    let head = patch.head(0, HEADER_LEN)?;
    Header::decode(&head, patch.len).map_err(|source| ForeignError::Bsdiff40 {
        path: patch.path.clone(),
        source,
    })
}

/// The header and the memory bound, from the streams' bzip2 headers.
pub(super) fn plan(patch: &PatchFile) -> Result<Plan, ForeignError> {
    let header = header(patch)?;
    let memory = memory(patch, &header)?;
    Ok(Plan { header, memory })
}

/// The memory decoding needs: each stream must start with a bzip2 stream header
/// (`BZh` and the block size digit), which sizes its decoder.
pub(super) fn memory(patch: &PatchFile, header: &Header) -> Result<u64, ForeignError> {
    let mut total = FIXED;
    for ((offset, len), name) in header.sections().into_iter().zip(NAMES) {
        let head = patch.head(offset, 4.min(len as usize))?;
        match head.as_slice() {
            [b'B', b'Z', b'h', level @ b'1'..=b'9'] => {
                total += BZIP2_BASE + BZIP2_PER_LEVEL * u64::from(level - b'0');
            }
            _ => {
                return Err(patch.corrupt(format!(
                    "the {name} stream (offset {offset}, {len} bytes) is not a bzip2 stream"
                )));
            }
        }
    }
    Ok(total)
}

const NAMES: [&str; 3] = ["control", "diff", "extra"];

/// One stream's decoder, over its section of the patch file.
type Stream<'f> = bzip2::bufread::BzDecoder<BufReader<Section<'f>>>;

/// Decodes `plan`'s patch against `old` into `sink`.
pub(super) fn decode(
    patch: &PatchFile,
    plan: &Plan,
    old: &OldFile,
    sink: &mut Sink<'_, '_>,
) -> Result<(), ForeignError> {
    let [control, diff, extra] = plan.header.sections().map(|(offset, len)| {
        let section = Section::new(&patch.file, offset, len);
        bzip2::bufread::BzDecoder::new(BufReader::with_capacity(STREAM_BUF, section))
    });
    let mut control = BufReader::with_capacity(STREAM_BUF, control);
    let (mut diff, mut extra) = (diff, extra);
    let mut walk = Walk::new(plan.header.new_size);
    let mut new_buf = vec![0u8; IO_CHUNK];
    let mut old_buf = vec![0u8; IO_CHUNK];
    let mut record = [0u8; RECORD_LEN];
    while read_record(patch, &mut control, &mut record, walk.records())? {
        let step = walk
            .take(&record)
            .map_err(|source| ForeignError::Bsdiff40 {
                path: patch.path.clone(),
                source,
            })?;
        let mut left = step.control.add;
        // The walk checked that `old_pos + add` fits an i64.
        let mut pos = step.old_pos;
        while left > 0 {
            let n = left.min(IO_CHUNK as u64) as usize;
            read_stream(patch, &mut diff, &mut new_buf[..n], "diff")?;
            read_old(old, pos, &mut old_buf[..n])?;
            for (d, o) in new_buf[..n].iter_mut().zip(&old_buf[..n]) {
                *d = d.wrapping_add(*o);
            }
            sink.write(&new_buf[..n])?;
            pos += n as i64;
            left -= n as u64;
        }
        let mut left = step.control.copy;
        while left > 0 {
            let n = left.min(IO_CHUNK as u64) as usize;
            read_stream(patch, &mut extra, &mut new_buf[..n], "extra")?;
            sink.write(&new_buf[..n])?;
            left -= n as u64;
        }
    }
    if !walk.is_complete() {
        return Err(patch.corrupt(format!(
            "the control stream ends after {} records making {} of the {} bytes the header declares",
            walk.records(),
            walk.written(),
            plan.header.new_size
        )));
    }
    debug_assert_eq!(sink.written(), plan.header.new_size);
    expect_end(patch, control.into_inner(), "control")?;
    expect_end(patch, diff, "diff")?;
    expect_end(patch, extra, "extra")
}

/// Reads the next 24-byte record; `false` at the clean end of the control stream.
fn read_record(
    patch: &PatchFile,
    control: &mut impl BufRead,
    record: &mut [u8; RECORD_LEN],
    index: u64,
) -> Result<bool, ForeignError> {
    let mut filled = 0;
    while filled < RECORD_LEN {
        match control.read(&mut record[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(patch.corrupt(format!(
                    "the control stream ends inside record {index} ({filled} of {RECORD_LEN} bytes)"
                )));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(stream_error(patch, "control", &e)),
        }
    }
    Ok(true)
}

/// Fills `buf` from a diff or extra stream.
fn read_stream(
    patch: &PatchFile,
    stream: &mut Stream<'_>,
    buf: &mut [u8],
    name: &str,
) -> Result<(), ForeignError> {
    stream.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => patch.corrupt(format!(
            "the {name} stream ends before the control stream says"
        )),
        _ => stream_error(patch, name, &e),
    })
}

fn stream_error(patch: &PatchFile, name: &str, e: &io::Error) -> ForeignError {
    patch.corrupt(format!("the {name} stream does not decode as bzip2 ({e})"))
}

/// The old bytes `pos..pos + buf.len()`; those outside the old file count as 0, as
/// in bspatch.
fn read_old(old: &OldFile, pos: i64, buf: &mut [u8]) -> Result<(), ForeignError> {
    buf.fill(0);
    let size = i64::try_from(old.size).unwrap_or(i64::MAX);
    let start = pos.max(0);
    let end = pos.saturating_add(buf.len() as i64).min(size);
    if start < end {
        let at = (start - pos) as usize;
        let n = (end - start) as usize;
        read_exact_at(&old.file, &mut buf[at..at + n], start as u64).map_err(|e| old.io(e))?;
    }
    Ok(())
}

/// A stream must be read out: no decoded byte left over, and no byte of its section
/// after its bzip2 stream.
fn expect_end(patch: &PatchFile, mut stream: Stream<'_>, name: &str) -> Result<(), ForeignError> {
    let mut probe = [0u8; 1];
    match stream.read(&mut probe) {
        Ok(0) => {}
        Ok(_) => {
            return Err(patch.corrupt(format!(
                "the {name} stream has bytes left over after the last control record"
            )));
        }
        Err(e) => return Err(stream_error(patch, name, &e)),
    }
    let mut rest = stream.into_inner();
    match rest.fill_buf() {
        Ok([]) => Ok(()),
        Ok(_) => Err(patch.corrupt(format!(
            "the {name} section has bytes after its bzip2 stream"
        ))),
        Err(e) => Err(patch.io(e)),
    }
}
