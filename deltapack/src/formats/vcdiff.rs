//! The VCDIFF writer (RFC 3284, `format-spec/vcdiff.md` §6): our bsdiff-class
//! matcher's segments as COPYs from the old file where bytes agree exactly, ADDs for
//! the bytes between, RUNs for runs of one byte, coded with the default code table
//! (its double opcodes where an ADD of 1-4 bytes meets a short COPY) and the address
//! cache (each address in its cheapest mode). The new file is cut into target windows
//! of [`WINDOW`] bytes; each window's source segment is the span of the old file its
//! COPYs read, and each carries xdelta3's adler32 of its target so that `xdelta3 -d`
//! checks it. No secondary compression: any VCDIFF decoder applies it. The output
//! depends only on the inputs.

use std::io;

use deltaapply::vcdiff::secondary::{LZMA_ID, Section};
use deltaapply::vcdiff::{
    AddressCache, MAGIC, VCD_ADLER32, VCD_DECOMPRESS, VCD_SOURCE, VERSION, adler32, opcode,
    write_varint,
};

use crate::matcher::{self, Emit};
use crate::suffix::SuffixIndex;
use crate::{DiffError, Settings};

mod lzma;

/// Target window length: what the applier holds at once (with the window's sections).
pub const WINDOW: usize = 4 << 20;
/// Bytes that agree with the old file are copied from a run of this many on; shorter
/// runs cost less as part of the ADD around them.
pub const MIN_COPY: usize = 4;
/// Literal bytes that repeat this many bytes of the target window made so far are
/// copied from there.
pub const MIN_SELF_COPY: usize = 8;
/// log2 of the slots of the hash table finding those repeats.
const SELF_HASH_BITS: u32 = 18;
/// A literal run of one byte this long is written as a RUN.
pub const MIN_RUN: usize = 8;

/// Secondary compression of the sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Secondary {
    /// None: any VCDIFF decoder applies the patch.
    None,
    /// LZMA as xdelta3 writes it (its default; `xdelta3 -d` and `deltaapply` apply it).
    #[default]
    Lzma,
}

impl Secondary {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Secondary::None => "none",
            Secondary::Lzma => "lzma",
        }
    }
}

impl std::str::FromStr for Secondary {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Secondary::None),
            "lzma" => Ok(Secondary::Lzma),
            _ => Err(format!(
                "unknown VCDIFF secondary compressor {s:?} (none or lzma)"
            )),
        }
    }
}

/// How the patch is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Target window length (at least 1).
    pub window: usize,
    /// Secondary compression.
    pub secondary: Secondary,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            window: WINDOW,
            secondary: Secondary::default(),
        }
    }
}

/// Makes the VCDIFF patch from `old` to `new`.
pub fn encode(
    old: &[u8],
    new: &[u8],
    settings: &Settings,
    options: &Options,
) -> Result<Vec<u8>, DiffError> {
    let index = SuffixIndex::build(old, settings.threads)?;
    Ok(encode_with(&index, old, new, options)?)
}

/// [`encode`] with the suffix index of `old` already built.
pub fn encode_with(
    index: &SuffixIndex<'_>,
    old: &[u8],
    new: &[u8],
    options: &Options,
) -> io::Result<Vec<u8>> {
    let mut pieces = Pieces {
        old,
        new,
        list: Vec::new(),
    };
    matcher::diff(index, old, new, &mut pieces);
    let window = options.window.max(1);
    let mut windows = Vec::new();
    let mut list = pieces.list.as_slice();
    let mut start = 0;
    let mut carry: Option<Piece> = None;
    while start < new.len() {
        let end = (start + window).min(new.len());
        // The pieces of this window, the one crossing its end split.
        let mut these = Vec::new();
        let mut pos = start;
        while pos < end {
            let p = match carry.take() {
                Some(p) => p,
                None => {
                    let (p, rest) = list.split_first().expect("pieces cover the new file");
                    list = rest;
                    *p
                }
            };
            let (head, tail) = p.split(end - pos);
            these.push(head);
            pos += head.len;
            carry = tail;
        }
        windows.push(make_window(new, start, end, &these));
        start = end;
    }
    if new.is_empty() {
        // One empty window: xdelta3 refuses a patch with none ("nothing to output").
        windows.push(make_window(new, 0, 0, &[]));
    }
    assemble(&windows, options.secondary)
}

/// One window's parts before secondary compression.
struct Window {
    seg: Option<(usize, usize)>,
    target_len: usize,
    adler32: u32,
    /// Data, instructions, addresses.
    sections: [Vec<u8>; 3],
}

/// The file: its header, then each window with its sections compressed where that
/// is smaller.
fn assemble(windows: &[Window], secondary: Secondary) -> io::Result<Vec<u8>> {
    let mut compressed: [Vec<Option<Vec<u8>>>; 3] = Default::default();
    if secondary == Secondary::Lzma {
        for kind in Section::ALL {
            let sections: Vec<&[u8]> = windows
                .iter()
                .map(|w| w.sections[kind.index()].as_slice())
                .collect();
            compressed[kind.index()] = lzma::compress(kind, &sections)?;
        }
    }
    let size: usize = windows
        .iter()
        .map(|w| w.sections.iter().map(Vec::len).sum::<usize>() + 32)
        .sum();
    let mut out = Vec::with_capacity(size / 2 + 64);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    match secondary {
        // No secondary compressor, no code table, no application header.
        Secondary::None => out.push(0),
        Secondary::Lzma => out.extend_from_slice(&[VCD_DECOMPRESS, LZMA_ID]),
    }
    for (i, w) in windows.iter().enumerate() {
        let mut delta_indicator = 0;
        let mut stored: [&[u8]; 3] = [&[]; 3];
        for kind in Section::ALL {
            let k = kind.index();
            stored[k] = match compressed[k].get(i) {
                Some(Some(c)) => {
                    delta_indicator |= kind.bit();
                    c
                }
                _ => &w.sections[k],
            };
        }
        out.push(VCD_ADLER32 | if w.seg.is_some() { VCD_SOURCE } else { 0 });
        if let Some((pos, len)) = w.seg {
            write_varint(&mut out, len as u64);
            write_varint(&mut out, pos as u64);
        }
        let mut delta = Vec::with_capacity(32);
        write_varint(&mut delta, w.target_len as u64);
        delta.push(delta_indicator);
        for s in stored {
            write_varint(&mut delta, s.len() as u64);
        }
        delta.extend_from_slice(&w.adler32.to_be_bytes());
        let delta_len = delta.len() + stored.iter().map(|s| s.len()).sum::<usize>();
        write_varint(&mut out, delta_len as u64);
        out.extend_from_slice(&delta);
        for s in stored {
            out.extend_from_slice(s);
        }
    }
    Ok(out)
}

/// A stretch of the new file: copied from the old file, or literal.
#[derive(Debug, Clone, Copy)]
struct Piece {
    /// Where the stretch's old bytes start, if it is a copy.
    old_pos: Option<usize>,
    len: usize,
}

impl Piece {
    /// The first `n` bytes, and the rest if any.
    fn split(self, n: usize) -> (Piece, Option<Piece>) {
        if n >= self.len {
            return (self, None);
        }
        let head = Piece { len: n, ..self };
        let tail = Piece {
            old_pos: self.old_pos.map(|o| o + n),
            len: self.len - n,
        };
        (head, Some(tail))
    }
}

/// The matcher's segments as exact copies and literals, in new-file order.
struct Pieces<'a> {
    old: &'a [u8],
    new: &'a [u8],
    list: Vec<Piece>,
}

impl Pieces<'_> {
    fn literal(&mut self, len: usize) {
        if len == 0 {
            return;
        }
        match self.list.last_mut() {
            Some(Piece {
                old_pos: None,
                len: l,
            }) => *l += len,
            _ => self.list.push(Piece { old_pos: None, len }),
        }
    }
}

impl Emit for Pieces<'_> {
    fn segment(
        &mut self,
        new_pos: usize,
        old_pos: usize,
        diff_len: usize,
        extra_len: usize,
        _seek: i64,
    ) {
        let new = &self.new[new_pos..new_pos + diff_len];
        let old = &self.old[old_pos..old_pos + diff_len];
        let mut i = 0;
        let mut literal = 0;
        while i < diff_len {
            if new[i] != old[i] {
                literal += 1;
                i += 1;
                continue;
            }
            let run = new[i..]
                .iter()
                .zip(&old[i..])
                .take_while(|(a, b)| a == b)
                .count();
            if run >= MIN_COPY {
                self.literal(literal);
                literal = 0;
                self.list.push(Piece {
                    old_pos: Some(old_pos + i),
                    len: run,
                });
            } else {
                literal += run;
            }
            i += run;
        }
        self.literal(literal + extra_len);
    }
}

/// One instruction before it is given an opcode.
#[derive(Debug, Clone, Copy)]
enum Ins {
    Add(u64),
    Run(u64),
    Copy(u64, u8),
}

/// The window making `new[start..end]` from `pieces`.
fn make_window(new: &[u8], start: usize, end: usize, pieces: &[Piece]) -> Window {
    // The source segment: the span of the old file the window's copies read.
    let (mut lo, mut hi) = (usize::MAX, 0);
    for p in pieces {
        if let Some(o) = p.old_pos {
            lo = lo.min(o);
            hi = hi.max(o + p.len);
        }
    }
    let seg = if lo < hi { Some((lo, hi - lo)) } else { None };
    let seg_len = seg.map_or(0, |(_, l)| l) as u64;

    let mut data = Vec::new();
    let mut addr = Vec::new();
    let mut ins = Vec::with_capacity(pieces.len() * 2);
    let mut cache = AddressCache::new();
    let mut repeats = Repeats::new(new, start, end);
    let mut pos = start;
    for p in pieces {
        match p.old_pos {
            Some(o) => {
                let here = seg_len + (pos - start) as u64;
                let mode = cache.encode((o - lo) as u64, here, &mut addr);
                ins.push(Ins::Copy(p.len as u64, mode.number()));
            }
            None => {
                let mut lit = pos;
                let stop = pos + p.len;
                let mut i = pos;
                while i + MIN_SELF_COPY <= stop {
                    let Some((from, len)) = repeats.find(new, start, i, stop) else {
                        i += 1;
                        continue;
                    };
                    literal(&new[lit..i], &mut ins, &mut data);
                    let here = seg_len + (i - start) as u64;
                    let a = seg_len + (from - start) as u64;
                    let mode = cache.encode(a, here, &mut addr);
                    ins.push(Ins::Copy(len as u64, mode.number()));
                    i += len;
                    lit = i;
                }
                literal(&new[lit..stop], &mut ins, &mut data);
            }
        }
        pos += p.len;
    }
    debug_assert_eq!(pos, end);
    let inst = code(&ins);
    Window {
        seg,
        target_len: end - start,
        adler32: adler32(&new[start..end]),
        sections: [data, inst, addr],
    }
}

/// Finds repeats of the target window within itself: a hash of [`MIN_SELF_COPY`]
/// bytes at every position already passed, the latest position kept per slot.
struct Repeats {
    table: Vec<u32>,
    /// Positions below this are in the table.
    filled: usize,
    end: usize,
}

impl Repeats {
    fn new(_new: &[u8], start: usize, end: usize) -> Repeats {
        Repeats {
            table: vec![u32::MAX; 1 << SELF_HASH_BITS],
            filled: start,
            end,
        }
    }

    fn hash(bytes: &[u8]) -> usize {
        let mut k = [0u8; 8];
        k.copy_from_slice(&bytes[..MIN_SELF_COPY]);
        (u64::from_le_bytes(k).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SELF_HASH_BITS))
            as usize
    }

    /// A repeat of `new[i..]` (at most up to `stop`) starting in `start..i`, of at
    /// least [`MIN_SELF_COPY`] bytes: (where, length).
    fn find(&mut self, new: &[u8], start: usize, i: usize, stop: usize) -> Option<(usize, usize)> {
        while self.filled < i && self.filled + MIN_SELF_COPY <= self.end {
            let h = Self::hash(&new[self.filled..]);
            self.table[h] = (self.filled - start) as u32;
            self.filled += 1;
        }
        let slot = self.table[Self::hash(&new[i..])];
        if slot == u32::MAX {
            return None;
        }
        let from = start + slot as usize;
        let len = new[from..stop]
            .iter()
            .zip(&new[i..stop])
            .take_while(|(a, b)| a == b)
            .count();
        (len >= MIN_SELF_COPY).then_some((from, len))
    }
}

/// `bytes` as ADDs, with RUNs for runs of one byte of [`MIN_RUN`] or more.
fn literal(bytes: &[u8], ins: &mut Vec<Ins>, data: &mut Vec<u8>) {
    let mut i = 0;
    let mut pending = 0;
    while i < bytes.len() {
        let run = bytes[i..].iter().take_while(|&&b| b == bytes[i]).count();
        if run >= MIN_RUN {
            if pending > 0 {
                data.extend_from_slice(&bytes[i - pending..i]);
                ins.push(Ins::Add(pending as u64));
                pending = 0;
            }
            data.push(bytes[i]);
            ins.push(Ins::Run(run as u64));
        } else {
            pending += run;
        }
        i += run;
    }
    if pending > 0 {
        data.extend_from_slice(&bytes[i - pending..i]);
        ins.push(Ins::Add(pending as u64));
    }
}

/// The instructions section: each instruction's opcode (two in one where the default
/// table has the pair) and the sizes the opcodes do not carry.
fn code(ins: &[Ins]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ins.len() * 2);
    let mut i = 0;
    while i < ins.len() {
        let next = ins.get(i + 1).copied();
        let pair = match (ins[i], next) {
            (Ins::Add(a), Some(Ins::Copy(c, m))) => opcode::add_copy(a, c, m),
            (Ins::Copy(c, m), Some(Ins::Add(a))) => opcode::copy_add(c, m, a),
            _ => None,
        };
        if let Some(op) = pair {
            out.push(op);
            i += 2;
            continue;
        }
        let (op, size) = match ins[i] {
            Ins::Add(n) => (opcode::add(n), n),
            Ins::Copy(n, m) => (opcode::copy(n, m), n),
            Ins::Run(n) => ((opcode::RUN, true), n),
        };
        out.push(op.0);
        if op.1 {
            write_varint(&mut out, size);
        }
        i += 1;
    }
    out
}
