//! Revision 5's vectors (patch-v1 §5.2.6): a bsdiff patch with the executable
//! transform between two synthetic x86 code images, and copies with a broken
//! transform table that a decoder must reject (X1–X6, and H11 for the table length).

use deltaapply::Sha256Digest;
use deltaapply::exe::{Direction, Filter, Range, TransformTable, code_file};
use deltapack::methods::{Transformed, bsdiff_transformed};
use deltapack::suffix::SuffixIndex;

use super::{
    BAD_PATCH, HEADER_LEN, METHOD_FLAGS_AT, PAYLOAD_SIZE_AT, Rng, VectorSet, get_u64, reseal,
    resealed, set_u64, settings,
};

const PAYLOAD_SHA_AT: usize = 104;
const VADDR: u64 = 0x0040_1000;

/// Synthetic x86-64 code: functions of random filler bytes, calls (E8 rel32) between
/// them. `new` inserts 300 bytes after the fourth function, so every call across the
/// insertion changes its operand (what a rebuilt binary looks like to a differ).
fn code(new: bool) -> Vec<u8> {
    let mut rng = Rng(0x00E8_E8E8);
    let mut bodies: Vec<Vec<u8>> = (0..48)
        .map(|_| {
            (0..96 + rng.below(160))
                .map(|_| rng.below(0xE0) as u8)
                .collect()
        })
        .collect();
    if new {
        bodies[4].extend((0..300).map(|k| (k * 7 % 0xE0) as u8));
    }
    let mut starts = Vec::new();
    let mut at = 0;
    for b in &bodies {
        starts.push(at);
        at += b.len() + 16 * 5;
    }
    let mut out = Vec::new();
    let mut calls = Rng(0x0C0F_FEE0);
    for b in &bodies {
        out.extend_from_slice(b);
        for _ in 0..16 {
            let target = starts[calls.below(starts.len() as u64) as usize] as i64;
            let rel = target - (out.len() as i64 + 5);
            out.push(0xE8);
            out.extend_from_slice(&(rel as i32).to_le_bytes());
        }
    }
    out
}

fn ranges(data: &[u8]) -> Vec<Range> {
    vec![Range {
        filter: Filter::X86,
        start: 0,
        len: data.len() as u64,
        vaddr: VADDR,
    }]
}

/// The payload's SHA-256 and the header checksum recomputed after `edit`.
fn rehashed(patch: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut p = patch.to_vec();
    edit(&mut p);
    let size = (p.len() - HEADER_LEN) as u64;
    set_u64(&mut p, PAYLOAD_SIZE_AT, size);
    let digest = Sha256Digest::of(&p[HEADER_LEN..]);
    p[PAYLOAD_SHA_AT..PAYLOAD_SHA_AT + 32].copy_from_slice(&digest.0);
    reseal(&mut p);
    p
}

/// Offsets in the patch of the one-range-each table's fields.
const OLD_COUNT_AT: usize = HEADER_LEN;
const OLD_FILTER_AT: usize = HEADER_LEN + 2;
const OLD_LEN_AT: usize = OLD_FILTER_AT + 9;
const NEW_COUNT_AT: usize = OLD_FILTER_AT + 25;
const NEW_START_AT: usize = NEW_COUNT_AT + 3;
const TABLE_END: usize = NEW_COUNT_AT + 2 + 25;

pub(crate) fn vectors(v: &mut VectorSet) -> anyhow::Result<()> {
    let (old, new) = (code(false), code(true));
    let table = TransformTable {
        old: ranges(&old),
        new: ranges(&new),
    };
    let filtered = |data: &[u8], r: &[Range]| {
        let mut d = data.to_vec();
        code_file(&mut d, r, Direction::Forward);
        d
    };
    let (old_f, new_f) = (filtered(&old, &table.old), filtered(&new, &table.new));
    let index = SuffixIndex::build(&old_f, 1)?;
    let transform = Transformed {
        old: &old,
        new: &new,
        table: table.encode(),
    };
    let valid = bsdiff_transformed(&index, &old_f, &new_f, &settings(), 20, Some(transform))?;
    anyhow::ensure!(
        valid[METHOD_FLAGS_AT] & 0x04 != 0,
        "the transform flag is set"
    );
    anyhow::ensure!(
        get_u64(&valid, OLD_LEN_AT) == old.len() as u64,
        "table layout"
    );
    v.file("x86.old", old.clone())?;
    v.file("x86.new", new.clone())?;
    v.file("exe-valid.dpatch", valid.clone())?;
    v.ok(
        "exe-valid.dpatch",
        Some("x86.old"),
        "x86.new",
        "§5.2.6",
        "bsdiff with the executable transform (method_flags bit 2): one filter-1 range \
         over each whole file, vaddr 0x401000, synthetic x86 code with E8 calls shifted by \
         an insertion; the streams describe the filtered files",
    )?;
    let old_size = old.len() as u64;
    let bad: Vec<(&str, Vec<u8>, &'static str, &str)> = vec![
        (
            "exe-range-out-of-bounds.dpatch",
            rehashed(&valid, |p| set_u64(p, OLD_LEN_AT, old_size + 1)),
            "ends past",
            "X5: the old range's len one past source_size",
        ),
        (
            "exe-range-empty.dpatch",
            rehashed(&valid, |p| set_u64(p, OLD_LEN_AT, 0)),
            "is empty",
            "X5: the old range's len 0",
        ),
        (
            "exe-unknown-filter.dpatch",
            rehashed(&valid, |p| p[OLD_FILTER_AT] = 3),
            "unknown filter",
            "X4: filter 3",
        ),
        (
            "exe-ranges-overlap.dpatch",
            rehashed(&valid, |p| {
                // A second new range starting inside the first.
                p[NEW_COUNT_AT] = 2;
                let second: Vec<u8> = p[NEW_COUNT_AT + 2..TABLE_END].to_vec();
                p.splice(TABLE_END..TABLE_END, second);
            }),
            "sorted and disjoint",
            "X6: the new list holds its range twice (the second starts before the first ends)",
        ),
        (
            "exe-ranges-unsorted.dpatch",
            rehashed(&valid, |p| {
                // (1, 1) then (0, 1): sorted would be the other way round.
                p[NEW_COUNT_AT] = 2;
                let mut second: Vec<u8> = p[NEW_COUNT_AT + 2..TABLE_END].to_vec();
                set_u64(p, NEW_START_AT, 1);
                set_u64(p, NEW_START_AT + 8, 1);
                set_u64(&mut second, 1, 0);
                set_u64(&mut second, 9, 1);
                p.splice(TABLE_END..TABLE_END, second);
            }),
            "sorted and disjoint",
            "X6: new ranges (start 1, len 1) then (start 0, len 1)",
        ),
        (
            "exe-too-many-ranges.dpatch",
            rehashed(&valid, |p| {
                // 65 one-byte old ranges.
                let mut list = Vec::new();
                for k in 0..65u64 {
                    list.push(1);
                    list.extend_from_slice(&k.to_le_bytes());
                    list.extend_from_slice(&1u64.to_le_bytes());
                    list.extend_from_slice(&VADDR.to_le_bytes());
                }
                p[OLD_COUNT_AT] = 65;
                p.splice(OLD_FILTER_AT..NEW_COUNT_AT, list);
            }),
            "at most 64",
            "X2: 65 old ranges",
        ),
        (
            "exe-no-range.dpatch",
            rehashed(&valid, |p| {
                p.splice(OLD_COUNT_AT..TABLE_END, [0, 0, 0, 0]);
            }),
            "lists no range",
            "X3: both counts 0 (a 4-byte table)",
        ),
        (
            "exe-table-trailing-byte.dpatch",
            rehashed(&valid, |p| {
                p.insert(TABLE_END, 0);
            }),
            "transform table is",
            "X1: one 00 byte after the new list (the table one byte longer than its lists)",
        ),
    ];
    for (name, bytes, message, what) in bad {
        v.file(name, bytes)?;
        v.fail(
            name,
            Some("x86.old"),
            None,
            BAD_PATCH,
            "Corrupt",
            Some(message),
            "§5.2.6 D0",
            &format!(
                "exe-valid with {what}; payload_size, payload_sha256 and header_check \
                 recomputed: refused before anything is written"
            ),
        )?;
    }
    let bsdiff = v.bytes("bsdiff-valid.dpatch").to_vec();
    v.file(
        "exe-flag-without-table.dpatch",
        resealed(&bsdiff, |p| p[METHOD_FLAGS_AT] |= 0x04),
    )?;
    v.fail(
        "exe-flag-without-table.dpatch",
        Some("exe.old"),
        None,
        BAD_PATCH,
        "Format/BadField",
        Some("stream sizes"),
        "§3.3 H11",
        "bsdiff-valid with method_flags bit 2 set, header_check recomputed: its streams \
         fill the payload, leaving a 0-byte table (below the 4 a table needs)",
    )?;
    Ok(())
}
