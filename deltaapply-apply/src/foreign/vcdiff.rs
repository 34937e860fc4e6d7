//! Applying a VCDIFF patch (RFC 3284, as xdelta3 writes it; `format-spec/vcdiff.md`).
//!
//! The plan walks every window header first, reading only headers: each is checked
//! against the patch's length, its source segment against the old file (VCD_SOURCE) or
//! the target the earlier windows make (VCD_TARGET); a compressed section must be LZMA
//! (the only secondary compressor supported) and its declared uncompressed length
//! within what its window can need (`Section::max_len`), and the first of each kind
//! gives the dictionary its decoder holds. That gives the file's size (the sum of the
//! target windows) and the memory bound, checked against the caller's limit before
//! anything is decoded: the largest window's target plus its sections as stored and
//! uncompressed, the LZMA dictionaries, plus fixed buffers. Decoding then takes one
//! window at a time: its sections are read and decompressed (each decoder stops at the
//! declared length, which must use up the section), its instructions checked to make exactly
//! its target length before the target is allocated, COPYs from the source segment are
//! positioned reads of the old file (never loaded whole) or, for VCD_TARGET, of the
//! output written so far; the window's adler32 is checked if it has one, and the
//! window goes to the sink.

use std::io;

use super::{ForeignError, OldFile, PatchFile};
use crate::Error;
use crate::apply::{Sink, read_exact_at};
use crate::vcdiff::secondary::{self, LZMA_ID, MAX_SECTION_HEAD, Section};
use crate::vcdiff::{
    CodeTable, DecodeError, FileHeader, MAX_FILE_HEADER, MAX_VARINT_LEN, MAX_WINDOW_HEADER, Place,
    SegmentIn, VcdiffError, WindowHeader, check_instructions, decode_window,
};

mod lzma;

/// The applier's own memory beyond a window: the address cache, the sink's buffer,
/// header reads.
const FIXED: u64 = 256 << 10;
/// Windows `describe` lists one by one (all are counted).
pub const DESCRIBED_WINDOWS: usize = 1000;

/// A VCDIFF patch ready to decode.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// Its file header.
    pub(super) header: FileHeader,
    /// Its windows.
    pub(super) windows: u64,
    /// The size of the file it makes: its windows' target lengths together.
    pub(super) target_size: u64,
    /// The largest window's target plus sections (stored and uncompressed), the LZMA
    /// decoders, plus [`FIXED`].
    pub(super) memory: u64,
    /// The largest window's own part of `memory`: its target and sections.
    pub(super) window_memory: u64,
    /// The dictionary size of each kind of section's LZMA stream, if one is compressed.
    pub(super) dicts: [Option<u32>; 3],
    /// The first [`DESCRIBED_WINDOWS`] window headers, if asked for.
    pub(super) listed: Vec<WindowHeader>,
}

fn vcdiff_err(patch: &PatchFile, source: VcdiffError) -> ForeignError {
    ForeignError::Vcdiff {
        path: patch.path.clone(),
        source,
    }
}

/// Walks the headers (see the module documentation). `old_size` is the old file's
/// size, or `None` to leave VCD_SOURCE segments unchecked (`inspect` has no old file).
pub(super) fn plan(
    patch: &PatchFile,
    old_size: Option<u64>,
    list: bool,
) -> Result<Plan, ForeignError> {
    let head = patch.head(0, MAX_FILE_HEADER)?;
    let header = FileHeader::decode(&head, patch.len).map_err(|e| vcdiff_err(patch, e))?;
    let mut offset = header.len;
    let (mut windows, mut made, mut largest) = (0u64, 0u64, 0u64);
    let mut listed = Vec::new();
    let mut dicts = [None; 3];
    while offset < patch.len {
        let place = Place::Window {
            index: windows,
            offset,
        };
        // `inspect` (no old file) shows windows compressed with a compressor this
        // decoder lacks; applying refuses them.
        let strict = old_size.is_some();
        let w = window_header(patch, &header, offset, place, strict)?;
        w.check_segment(old_size.unwrap_or(u64::MAX), made, place)
            .map_err(|e| vcdiff_err(patch, e))?;
        made = made.checked_add(w.target_len).ok_or_else(|| {
            vcdiff_err(
                patch,
                VcdiffError::Invalid {
                    place,
                    field: "target window length",
                    problem: format!(
                        "{} takes the file past 2^64 bytes after {made}",
                        w.target_len
                    ),
                },
            )
        })?;
        let mut need = w.target_len.saturating_add(w.sections_len());
        if header.compressor == Some(LZMA_ID) && w.delta_indicator != 0 {
            for section in Section::ALL {
                // A window with a compressed section is decoded into a copy of all
                // three sections uncompressed.
                if !w.is_compressed(section) {
                    need = need.saturating_add(w.section_len(section));
                    continue;
                }
                let at = offset + w.section_offset(section);
                let first = dicts[section.index()].is_none();
                let n = if first {
                    MAX_SECTION_HEAD
                } else {
                    MAX_VARINT_LEN
                };
                let head = patch.head(at, n.min(w.section_len(section) as usize))?;
                let c = secondary::split(section, &head, w.target_len, place)
                    .map_err(|e| vcdiff_err(patch, e))?;
                need = need.saturating_add(c.len);
                if first {
                    let dict = secondary::xz_dict_size(section, c.body, place)
                        .map_err(|e| vcdiff_err(patch, e))?;
                    dicts[section.index()] = Some(dict);
                }
            }
        }
        largest = largest.max(need);
        if list && listed.len() < DESCRIBED_WINDOWS {
            listed.push(w);
        }
        windows += 1;
        offset += w.total_len();
    }
    let decoders = dicts
        .iter()
        .flatten()
        .fold(0u64, |m, &d| m.saturating_add(lzma::memory(d)));
    Ok(Plan {
        header,
        windows,
        target_size: made,
        memory: largest.saturating_add(decoders).saturating_add(FIXED),
        window_memory: largest,
        dicts,
        listed,
    })
}

/// The header of the window at `offset`, refused if `strict` and its sections are
/// compressed with anything but LZMA.
fn window_header(
    patch: &PatchFile,
    header: &FileHeader,
    offset: u64,
    place: Place,
    strict: bool,
) -> Result<WindowHeader, ForeignError> {
    let head = patch.head(offset, MAX_WINDOW_HEADER)?;
    let w = WindowHeader::decode(&head, patch.len - offset, place)
        .and_then(|w| match strict {
            true => w.check_compressor(header, place).map(|()| w),
            false => Ok(w),
        })
        .map_err(|e| vcdiff_err(patch, e))?;
    Ok(w)
}

/// Why a source read failed.
enum SourceError {
    Old(io::Error),
    Output(Error),
}

/// Decodes the planned patch against `old` into `sink`, one window at a time.
pub(super) fn decode(
    patch: &PatchFile,
    plan: &Plan,
    old: &OldFile,
    sink: &mut Sink<'_, '_>,
) -> Result<(), ForeignError> {
    let table = CodeTable::default_table();
    let mut sections: Vec<u8> = Vec::new();
    let mut plain: Vec<u8> = Vec::new();
    let mut target: Vec<u8> = Vec::new();
    let mut decoders = lzma::Decoders::new(plan.dicts);
    let mut offset = plan.header.len;
    let mut index = 0u64;
    while offset < patch.len {
        let place = Place::Window { index, offset };
        let w = window_header(patch, &plan.header, offset, place, true)?;
        // The plan checked every window against the limit; a patch file that changed
        // since must still not write more than planned.
        w.check_segment(old.size, sink.written(), place)
            .map_err(|e| vcdiff_err(patch, e))?;
        if w.target_len > plan.target_size - sink.written()
            || w.target_len.saturating_add(w.sections_len()) > plan.window_memory
        {
            return Err(changed(patch, place));
        }
        let stored_len = w.total_len();
        let n = w.sections_len() as usize;
        sections.clear();
        reserve(&mut sections, n, patch)?;
        sections.resize(n, 0);
        read_exact_at(&patch.file, &mut sections, offset + w.header_len)
            .map_err(|e| patch.io(e))?;
        // The window as if stored uncompressed: its header with the uncompressed
        // lengths, its sections in `plain`.
        let (w, sections) = if w.delta_indicator == 0 {
            (w, &sections[..])
        } else {
            let budget = plan.window_memory - w.target_len - w.sections_len();
            let lens = decoders
                .window(&w, &sections, budget, place, &mut plain)
                .map_err(|e| match e {
                    lzma::Failure::Vcdiff(e) => vcdiff_err(patch, e),
                    lzma::Failure::Changed => changed(patch, place),
                    lzma::Failure::Alloc(n) => alloc_failed(patch, n),
                })?;
            let w = WindowHeader {
                delta_indicator: 0,
                data_len: lens[0],
                inst_len: lens[1],
                addr_len: lens[2],
                ..w
            };
            (w, &plain[..])
        };
        let inst = &sections[w.data_len as usize..][..w.inst_len as usize];
        check_instructions(&w, inst, &table, place).map_err(|e| vcdiff_err(patch, e))?;
        target.clear();
        reserve(&mut target, w.target_len as usize, patch)?;
        let seg = w.segment;
        let result = {
            let mut source = |at: u64, buf: &mut [u8]| -> Result<(), SourceError> {
                // `check_segment` put the segment inside its file; `at` is inside it.
                let seg = seg.expect("only a window with a segment reads one");
                match seg.file {
                    SegmentIn::Source => {
                        read_exact_at(&old.file, buf, seg.pos + at).map_err(SourceError::Old)
                    }
                    SegmentIn::Target => sink
                        .read_back(seg.pos + at, buf)
                        .map_err(SourceError::Output),
                }
            };
            decode_window(&w, sections, &table, place, &mut target, &mut source)
        };
        match result {
            Ok(()) => {}
            Err(DecodeError::Vcdiff(e)) => return Err(vcdiff_err(patch, e)),
            Err(DecodeError::Source(SourceError::Old(e))) => return Err(old.io(e)),
            Err(DecodeError::Source(SourceError::Output(e))) => return Err(e.into()),
        }
        sink.write(&target)?;
        offset += stored_len;
        index += 1;
    }
    Ok(())
}

fn changed(patch: &PatchFile, place: Place) -> ForeignError {
    patch.corrupt(format!(
        "{place} differs from when the patch was planned: the patch file is being modified"
    ))
}

fn alloc_failed(patch: &PatchFile, n: usize) -> ForeignError {
    patch.corrupt(format!(
        "cannot allocate {n} bytes for a window within the memory limit"
    ))
}

/// Reserves `n` bytes (admitted by the memory limit) or reports the allocation failure.
fn reserve(buf: &mut Vec<u8>, n: usize, patch: &PatchFile) -> Result<(), ForeignError> {
    buf.try_reserve_exact(n).map_err(|_| alloc_failed(patch, n))
}
