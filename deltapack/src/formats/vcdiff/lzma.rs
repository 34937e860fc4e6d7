//! LZMA secondary compression of the windows' sections, as xdelta3 writes it
//! (`format-spec/vcdiff.md` §1.1 and §5): for each kind of section one `.xz` stream
//! (LZMA2, no check) running across the windows, each window's piece ended by a sync
//! flush and preceded by the section's uncompressed length. A window keeps a section
//! compressed only if that is smaller; since the stream carries its state from one
//! piece to the next, a section left plain must never have been fed to it, so the
//! choice is made in passes: compress every section of the kind that may gain, drop
//! those that did not gain, compress again without them, until none is dropped.

use std::io;

use deltaapply::vcdiff::write_varint;
use liblzma::stream::{Action, Check, Filters, LzmaOptions, PRESET_EXTREME, Status, Stream};

use deltaapply::vcdiff::secondary::Section;

/// Sections shorter than this are never compressed (xdelta3's SECONDARY_MIN_INPUT).
const MIN_INPUT: usize = 10;
/// The largest dictionary: xdelta3 -9's (LZMA preset 9).
const MAX_DICT: u64 = 64 << 20;

/// The compressed form of each of `sections` (one kind's, window by window) that is
/// kept: `Some(length varint, piece)` where it is smaller than the section.
pub(super) fn compress(kind: Section, sections: &[&[u8]]) -> io::Result<Vec<Option<Vec<u8>>>> {
    let mut keep: Vec<bool> = sections.iter().map(|s| s.len() >= MIN_INPUT).collect();
    loop {
        let pieces = pass(kind, sections, &keep)?;
        let mut dropped = false;
        for (i, p) in pieces.iter().enumerate() {
            if let Some(p) = p
                && p.len() >= sections[i].len()
            {
                keep[i] = false;
                dropped = true;
            }
        }
        if !dropped {
            return Ok(pieces);
        }
    }
}

/// One stream through the sections marked in `keep`.
fn pass(kind: Section, sections: &[&[u8]], keep: &[bool]) -> io::Result<Vec<Option<Vec<u8>>>> {
    let total: u64 = sections
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(s, _)| s.len() as u64)
        .sum();
    if total == 0 {
        return Ok(vec![None; sections.len()]);
    }
    // The smallest power of two holding everything fed: the decoder's memory.
    let dict = total.next_power_of_two().clamp(4096, MAX_DICT) as u32;
    let mut opts = LzmaOptions::new_preset(9 | PRESET_EXTREME).map_err(io::Error::other)?;
    opts.dict_size(dict);
    match kind {
        // Bytes of the new file: the preset's byte-wise context.
        Section::Data => {}
        // Opcodes and varints: no alignment to use.
        Section::Inst | Section::Addr => {
            opts.position_bits(0).literal_position_bits(0);
        }
    }
    let mut filters = Filters::new();
    filters.lzma2(&opts);
    let mut stream = Stream::new_stream_encoder(&filters, Check::None).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(sections.len());
    for (s, &k) in sections.iter().zip(keep) {
        if !k {
            out.push(None);
            continue;
        }
        let mut piece = Vec::with_capacity(s.len() / 2 + 64);
        write_varint(&mut piece, s.len() as u64);
        let mut input: &[u8] = s;
        while !input.is_empty() {
            piece.reserve(64 << 10);
            let before = stream.total_in();
            stream
                .process_vec(input, &mut piece, Action::Run)
                .map_err(io::Error::other)?;
            input = &input[(stream.total_in() - before) as usize..];
        }
        loop {
            piece.reserve(64 << 10);
            let status = stream
                .process_vec(&[], &mut piece, Action::SyncFlush)
                .map_err(io::Error::other)?;
            if status == Status::StreamEnd {
                break;
            }
        }
        out.push(Some(piece));
    }
    Ok(out)
}
