//! The executable transform of bsdiff patches (`format-spec/patch-v1.md` §5.2.6,
//! `method_flags` bit 1): a reversible filter over the machine code of an executable
//! that turns relative branch and call targets into absolute ones, so that code which
//! moves between two builds keeps its bytes. The producer filters old and new before
//! diffing; the applier filters the old file as it reads it and inverts the filter on
//! what it decodes.
//!
//! The filter works on independent *blocks* of [`BLOCK_LEN`] bytes (the last block of
//! a range may be shorter): what it does to a block depends only on that block's bytes
//! and its position, so any byte of the filtered old file can be had by filtering the
//! one block that holds it, and the output can be inverted block by block as it is
//! written. Nothing here sizes an allocation from the patch.

use crate::codec::{Reader, Writer};

/// Length of the filter's independent blocks, counted from the start of each range.
pub const BLOCK_LEN: u64 = 4096;
/// Most ranges a table may list for each of the two files.
pub const MAX_RANGES: usize = 64;
/// Encoded length of one range.
pub const RANGE_LEN: usize = 25;
/// The shortest table: two empty lists (only valid as a length; a table needs a range).
pub const MIN_TABLE_LEN: u64 = 4;
/// The longest table: [`MAX_RANGES`] ranges for each file.
pub const MAX_TABLE_LEN: u64 = 4 + 2 * (MAX_RANGES * RANGE_LEN) as u64;

/// A filter a range is coded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filter {
    /// Filter 1: x86 and x86-64 `call rel32` (E8) operands made absolute.
    X86,
    /// Filter 2: filter 1 and also `jmp rel32` (E9) and `jcc rel32` (0F 80..8F).
    X86Branches,
}

impl Filter {
    /// The filter's number in the table.
    pub fn code(self) -> u8 {
        match self {
            Filter::X86 => 1,
            Filter::X86Branches => 2,
        }
    }

    /// The filter with this number, if assigned.
    pub fn from_code(code: u8) -> Option<Filter> {
        match code {
            1 => Some(Filter::X86),
            2 => Some(Filter::X86Branches),
            _ => None,
        }
    }
}

/// Which way a filter runs: the producer runs it forward, the applier inverts it on
/// the output and runs it forward on the old file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Relative to absolute.
    Forward,
    /// Absolute back to relative.
    Inverse,
}

/// A byte range of a file coded with a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Range {
    /// The filter.
    pub filter: Filter,
    /// First byte, as a file offset.
    pub start: u64,
    /// Length in bytes (at least 1).
    pub len: u64,
    /// The virtual address of `start` (only its value modulo `2^32` matters).
    pub vaddr: u64,
}

impl Range {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// The transform table at the start of a transformed bsdiff payload: the ranges of the
/// old file (filtered when read) and of the new file (the decoded output, inverted).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct TransformTable {
    /// Ranges of the old file, sorted and disjoint.
    pub old: Vec<Range>,
    /// Ranges of the new file, sorted and disjoint.
    pub new: Vec<Range>,
}

/// Why a transform table is refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TableError {
    /// The bytes end inside the table, or go on after it.
    #[error("transform table is {got} bytes, its lists take {expected}")]
    Length {
        /// Bytes the lists need (as far as they could be read).
        expected: u64,
        /// Bytes the header gives the table.
        got: u64,
    },
    /// More ranges than [`MAX_RANGES`].
    #[error("transform table lists {count} {file} ranges, at most {MAX_RANGES} are allowed")]
    TooMany {
        /// `old` or `new`.
        file: &'static str,
        /// The count found.
        count: usize,
    },
    /// Both lists empty.
    #[error("transform table lists no range")]
    Empty,
    /// A filter number not assigned.
    #[error("{file} range {index} has unknown filter {code}")]
    UnknownFilter {
        /// `old` or `new`.
        file: &'static str,
        /// Index in its list.
        index: usize,
        /// The number found.
        code: u8,
    },
    /// A range of length zero.
    #[error("{file} range {index} is empty")]
    EmptyRange {
        /// `old` or `new`.
        file: &'static str,
        /// Index in its list.
        index: usize,
    },
    /// A range reaching past the end of its file.
    #[error(
        "{file} range {index} ({start}, length {len}) ends past the {file} file's {size} bytes"
    )]
    OutOfBounds {
        /// `old` or `new`.
        file: &'static str,
        /// Index in its list.
        index: usize,
        /// Its start.
        start: u64,
        /// Its length.
        len: u64,
        /// The file's size from the header.
        size: u64,
    },
    /// A range that starts before the previous one ends.
    #[error(
        "{file} range {index} starts at {start}, before the previous range ends at {previous_end}: ranges must be sorted and disjoint"
    )]
    Unsorted {
        /// `old` or `new`.
        file: &'static str,
        /// Index in its list.
        index: usize,
        /// Its start.
        start: u64,
        /// Where the previous range ends.
        previous_end: u64,
    },
}

impl TransformTable {
    /// Encodes the table (the caller keeps to the rules [`TransformTable::decode`] checks).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(4 + (self.old.len() + self.new.len()) * RANGE_LEN);
        for list in [&self.old, &self.new] {
            w.u16(list.len() as u16);
            for r in list {
                w.u8(r.filter.code());
                w.u64(r.start);
                w.u64(r.len);
                w.u64(r.vaddr);
            }
        }
        w.into_vec()
    }

    /// Decodes and validates a table against the sizes of the old and new files.
    pub fn decode(bytes: &[u8], old_size: u64, new_size: u64) -> Result<Self, TableError> {
        let got = bytes.len() as u64;
        let mut r = Reader::new(bytes);
        let mut expected = 0u64;
        let mut lists = [Vec::new(), Vec::new()];
        for ((list, file), size) in lists
            .iter_mut()
            .zip(["old", "new"])
            .zip([old_size, new_size])
        {
            expected += 2;
            let short = |expected| TableError::Length { expected, got };
            let count = usize::from(r.u16("range count").map_err(|_| short(expected))?);
            if count > MAX_RANGES {
                return Err(TableError::TooMany { file, count });
            }
            expected += (count * RANGE_LEN) as u64;
            let mut previous_end = 0;
            for index in 0..count {
                let mut e = r.sub(RANGE_LEN, "range").map_err(|_| short(expected))?;
                let code = e.u8("filter").map_err(|_| short(expected))?;
                let start = e.u64("start").map_err(|_| short(expected))?;
                let len = e.u64("len").map_err(|_| short(expected))?;
                let vaddr = e.u64("vaddr").map_err(|_| short(expected))?;
                let filter = Filter::from_code(code).ok_or(TableError::UnknownFilter {
                    file,
                    index,
                    code,
                })?;
                if len == 0 {
                    return Err(TableError::EmptyRange { file, index });
                }
                if start.checked_add(len).is_none_or(|end| end > size) {
                    return Err(TableError::OutOfBounds {
                        file,
                        index,
                        start,
                        len,
                        size,
                    });
                }
                if start < previous_end {
                    return Err(TableError::Unsorted {
                        file,
                        index,
                        start,
                        previous_end,
                    });
                }
                previous_end = start + len;
                list.push(Range {
                    filter,
                    start,
                    len,
                    vaddr,
                });
            }
        }
        if r.remaining() != 0 {
            return Err(TableError::Length { expected, got });
        }
        let [old, new] = lists;
        if old.is_empty() && new.is_empty() {
            return Err(TableError::Empty);
        }
        Ok(TransformTable { old, new })
    }
}

/// Codes one block in place: `pos` is the virtual address of its first byte modulo
/// `2^32` (the range's `vaddr` plus the block's offset in the range).
pub fn code_block(filter: Filter, block: &mut [u8], pos: u32, dir: Direction) {
    match filter {
        Filter::X86 => x86(false, block, pos, dir),
        Filter::X86Branches => x86(true, block, pos, dir),
    }
}

/// Operands in `-2^24..2^24` (their top byte `00` or `FF`) are converted, within that
/// 25-bit signed domain, so the conversion is a bijection of the domain and an operand
/// outside it is left alone in both directions. The scan skips every matched
/// instruction whole, converted or not, so the positions it examines are never bytes
/// it changes, and the inverse makes the same decisions as the forward pass.
fn x86(all_branches: bool, block: &mut [u8], pos: u32, dir: Direction) {
    const HALF: i32 = 1 << 24;
    let n = block.len();
    let mut i = 0;
    while i + 5 <= n {
        let opcode_len = match block[i] {
            0xE8 => 1,
            0xE9 if all_branches => 1,
            0x0F if all_branches && (0x80..=0x8F).contains(&block[i + 1]) && i + 6 <= n => 2,
            _ => {
                i += 1;
                continue;
            }
        };
        let end = i + opcode_len + 4;
        let operand: [u8; 4] = block[end - 4..end].try_into().expect("four bytes");
        let v = i32::from_le_bytes(operand);
        // Skipped whole either way: an operand left alone must not be rewritten by a
        // later match inside it, or the inverse would see other bytes than the forward.
        i = end;
        if !(-HALF..HALF).contains(&v) {
            continue;
        }
        let at = pos.wrapping_add(end as u32) as i32;
        let w = match dir {
            Direction::Forward => v.wrapping_add(at),
            Direction::Inverse => v.wrapping_sub(at),
        };
        let w = ((w as u32).wrapping_add(HALF as u32) & 0x01FF_FFFF) as i32 - HALF;
        block[end - 4..end].copy_from_slice(&w.to_le_bytes());
    }
}

/// A piece of a file that is coded as a unit: one block of a range, or bytes between
/// ranges (coded not at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// The filter and the block's [`code_block`] position, for a block.
    pub coded: Option<(Filter, u32)>,
}

/// The span holding byte `pos` of a file of `file_len` bytes (`pos < file_len`).
/// `ranges` must be sorted and disjoint, as [`TransformTable::decode`] ensures.
pub fn span_at(ranges: &[Range], pos: u64, file_len: u64) -> Span {
    let next = ranges.partition_point(|r| r.end() <= pos);
    match ranges.get(next) {
        Some(r) if r.start <= pos => {
            let offset = (pos - r.start) / BLOCK_LEN * BLOCK_LEN;
            Span {
                start: r.start + offset,
                end: (r.start + offset + BLOCK_LEN).min(r.end()),
                coded: Some((r.filter, r.vaddr.wrapping_add(offset) as u32)),
            }
        }
        Some(r) => Span {
            start: pos,
            end: r.start,
            coded: None,
        },
        None => Span {
            start: pos,
            end: file_len,
            coded: None,
        },
    }
}

/// Codes every range of a whole file held in memory (`data` at least as long as the
/// last range's end).
pub fn code_file(data: &mut [u8], ranges: &[Range], dir: Direction) {
    for r in ranges {
        let mut offset = 0;
        while offset < r.len {
            let len = BLOCK_LEN.min(r.len - offset);
            let start = (r.start + offset) as usize;
            let pos = r.vaddr.wrapping_add(offset) as u32;
            code_block(r.filter, &mut data[start..start + len as usize], pos, dir);
            offset += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn range(start: u64, len: u64) -> Range {
        Range {
            filter: Filter::X86,
            start,
            len,
            vaddr: 0x40_1000,
        }
    }

    #[test]
    fn call_becomes_absolute() {
        // call +0x10 at address 0x1000: the target 0x1015 is what is stored.
        let mut b = vec![0x90, 0xE8, 0x10, 0, 0, 0, 0x90];
        code_block(Filter::X86, &mut b, 0x1000, Direction::Forward);
        assert_eq!(b, [0x90, 0xE8, 0x16, 0x10, 0, 0, 0x90]);
        code_block(Filter::X86, &mut b, 0x1000, Direction::Inverse);
        assert_eq!(b, [0x90, 0xE8, 0x10, 0, 0, 0, 0x90]);
    }

    #[test]
    fn two_calls_to_one_target_agree() {
        let mut b = vec![
            0xE8, 0x0B, 0, 0, 0, 0xE8, 0x06, 0, 0, 0, 0x90, 0x90, 0x90, 0x90, 0x90, 0xC3,
        ];
        code_block(Filter::X86, &mut b, 0, Direction::Forward);
        assert_eq!(b[1..5], b[6..10]);
    }

    #[test]
    fn table_round_trip_and_rules() {
        let t = TransformTable {
            old: vec![range(0, 10), range(10, 5)],
            new: vec![range(3, 4)],
        };
        let bytes = t.encode();
        assert_eq!(bytes.len(), 4 + 3 * RANGE_LEN);
        assert_eq!(TransformTable::decode(&bytes, 15, 7), Ok(t.clone()));
        assert!(matches!(
            TransformTable::decode(&bytes, 14, 7),
            Err(TableError::OutOfBounds {
                file: "old",
                index: 1,
                ..
            })
        ));
        let overlap = TransformTable {
            old: vec![range(0, 10), range(9, 5)],
            new: vec![],
        };
        assert!(matches!(
            TransformTable::decode(&overlap.encode(), 100, 0),
            Err(TableError::Unsorted { .. })
        ));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            TransformTable::decode(&trailing, 15, 7),
            Err(TableError::Length { .. })
        ));
        assert_eq!(
            TransformTable::decode(&[0, 0, 0, 0], 1, 1),
            Err(TableError::Empty)
        );
        let many = TransformTable {
            old: (0..65).map(|k| range(k, 1)).collect(),
            new: vec![],
        };
        assert!(matches!(
            TransformTable::decode(&many.encode(), 100, 0),
            Err(TableError::TooMany { count: 65, .. })
        ));
    }

    #[test]
    fn spans_cover_the_file() {
        let ranges = [range(100, 5000), range(6000, 10)];
        let mut pos = 0;
        let mut coded = 0;
        while pos < 7000 {
            let s = span_at(&ranges, pos, 7000);
            assert_eq!(s.start.max(pos), pos);
            assert!(s.end > pos);
            coded += s.coded.map_or(0, |_| s.end - s.start);
            pos = s.end;
        }
        assert_eq!(coded, 5010);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn inverse_undoes_forward(
            mut data in proptest::collection::vec(
                prop_oneof![Just(0xE8u8), Just(0x0F), Just(0x85), Just(0), Just(0xFF), any::<u8>()],
                0..9000,
            ),
            cuts in proptest::collection::vec(any::<u16>(), 0..8),
            vaddr in any::<u64>(),
        ) {
            let original = data.clone();
            let n = data.len() as u64;
            let mut points: Vec<u64> = cuts.iter().map(|&c| u64::from(c) % (n + 1)).collect();
            points.sort_unstable();
            points.dedup();
            let ranges: Vec<Range> = points
                .chunks(2)
                .filter(|p| p.len() == 2)
                .map(|p| Range { filter: if vaddr % 2 == 0 { Filter::X86 } else { Filter::X86Branches }, start: p[0], len: p[1] - p[0], vaddr })
                .filter(|r| r.len > 0)
                .collect();
            code_file(&mut data, &ranges, Direction::Forward);
            // The filtered file read span by span equals the whole-file filter.
            let mut pieces = original.clone();
            let mut pos = 0;
            while pos < n {
                let s = span_at(&ranges, pos, n);
                if let Some((f, at)) = s.coded {
                    code_block(f, &mut pieces[s.start as usize..s.end as usize], at, Direction::Forward);
                }
                pos = s.end;
            }
            prop_assert_eq!(&pieces, &data);
            code_file(&mut data, &ranges, Direction::Inverse);
            prop_assert_eq!(data, original);
        }
    }
}
