//! The VCDIFF cases of `make_foreign_vectors` (`format-spec/vcdiff.md` §7): patches made
//! by xdelta3 and by deltapack, a VCD_TARGET window, and crafted ones an applier must
//! refuse, each built from fixed values.

use std::path::Path;
use std::process::Command;

use anyhow::Context;
use deltaapply::vcdiff::{VCD_ADLER32, VCD_SOURCE, VCD_TARGET, adler32, write_varint};
use deltapack::Settings;
use deltapack::formats::vcdiff::{Options, Secondary, encode};

use super::{BAD_PATCH, LIMIT, Set, peer};

/// The 5-byte file header: magic, version 0, Hdr_Indicator `ind` (and its id byte).
fn file_header(ind: u8) -> Vec<u8> {
    let mut h = vec![0xD6, 0xC3, 0xC4, 0x00, ind];
    if ind & 1 != 0 {
        h.push(2);
    }
    h
}

/// A window: its indicator, source segment, target length, sections, and the adler32
/// of `target` if given.
struct Win<'a> {
    ind: u8,
    seg: Option<(u64, u64)>,
    target_len: u64,
    delta_ind: u8,
    data: &'a [u8],
    inst: &'a [u8],
    addr: &'a [u8],
    adler: Option<u32>,
}

impl Win<'_> {
    fn bytes(&self) -> Vec<u8> {
        let mut w = vec![self.ind | if self.adler.is_some() { VCD_ADLER32 } else { 0 }];
        if let Some((len, pos)) = self.seg {
            write_varint(&mut w, len);
            write_varint(&mut w, pos);
        }
        let mut d = Vec::new();
        write_varint(&mut d, self.target_len);
        d.push(self.delta_ind);
        for s in [self.data, self.inst, self.addr] {
            write_varint(&mut d, s.len() as u64);
        }
        if let Some(a) = self.adler {
            d.extend_from_slice(&a.to_be_bytes());
        }
        for s in [self.data, self.inst, self.addr] {
            d.extend_from_slice(s);
        }
        write_varint(&mut w, d.len() as u64);
        w.extend_from_slice(&d);
        w
    }
}

fn plain<'a>(target_len: u64, data: &'a [u8], inst: &'a [u8], addr: &'a [u8]) -> Win<'a> {
    Win {
        ind: 0,
        seg: None,
        target_len,
        delta_ind: 0,
        data,
        inst,
        addr,
        adler: None,
    }
}

/// ADD of `n` bytes: the opcode and size.
fn add(n: usize) -> Vec<u8> {
    let mut v = vec![1];
    write_varint(&mut v, n as u64);
    v
}

fn patch(ind: u8, windows: &[Win<'_>]) -> Vec<u8> {
    let mut p = file_header(ind);
    for w in windows {
        p.extend_from_slice(&w.bytes());
    }
    p
}

/// `new` in two windows, the second (VCD_TARGET) copying every 4+-byte run it can
/// from the first window's output.
fn target_windows(new: &[u8]) -> Vec<u8> {
    let split = new.len() / 2;
    let (first, second) = new.split_at(split);
    let w0_inst = add(first.len());
    let w0 = Win {
        adler: Some(adler32(first)),
        ..plain(first.len() as u64, first, &w0_inst, &[])
    };
    let (mut data, mut inst, mut addr) = (Vec::new(), Vec::new(), Vec::new());
    let mut lit = Vec::new();
    let mut i = 0;
    let flush = |lit: &mut Vec<u8>, data: &mut Vec<u8>, inst: &mut Vec<u8>| {
        if !lit.is_empty() {
            inst.extend_from_slice(&add(lit.len()));
            data.append(lit);
        }
    };
    while i < second.len() {
        let best = (0..first.len())
            .map(|a| {
                let n = first[a..]
                    .iter()
                    .zip(&second[i..])
                    .take_while(|(x, y)| x == y)
                    .count();
                (n, a)
            })
            .max()
            .unwrap_or((0, 0));
        if best.0 >= 4 {
            flush(&mut lit, &mut data, &mut inst);
            inst.push(19); // COPY, mode SELF, size follows
            write_varint(&mut inst, best.0 as u64);
            write_varint(&mut addr, best.1 as u64);
            i += best.0;
        } else {
            lit.push(second[i]);
            i += 1;
        }
    }
    flush(&mut lit, &mut data, &mut inst);
    let w1 = Win {
        ind: VCD_TARGET,
        seg: Some((first.len() as u64, 0)),
        adler: Some(adler32(second)),
        ..plain(second.len() as u64, &data, &inst, &addr)
    };
    patch(0, &[w0, w1])
}

pub(super) fn cases(set: &mut Set, parent: &Path, old: &[u8], new: &[u8]) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    for (name, extra, what) in [
        (
            "vcdiff-xdelta3.vcdiff",
            &["-S", "none"][..],
            "made by Debian's xdelta3 3.0 (`xdelta3 -e -9 -S none -s exe.old exe.new`)",
        ),
        (
            "vcdiff-xdelta3-lzma.vcdiff",
            &[][..],
            "made by `xdelta3 -e -9` (its default secondary compression, LZMA)",
        ),
    ] {
        let out = tmp.path().join(name);
        peer(
            Command::new("xdelta3")
                .args(["-e", "-9", "-f"])
                .args(extra)
                .arg("-s")
                .arg(parent.join("exe.old"))
                .arg(parent.join("exe.new"))
                .arg(&out),
        )?;
        let bytes = std::fs::read(&out)?;
        set.ok(name, &bytes, what)?;
    }
    let settings = Settings::default();
    let plain = Options {
        secondary: Secondary::None,
        ..Options::default()
    };
    let ours = encode(old, new, &settings, &plain)?;
    set.ok(
        "vcdiff-deltapack.vcdiff",
        &ours,
        "made by `deltapack diff --format vcdiff --vcdiff-secondary none`",
    )?;
    let windowed = encode(
        old,
        new,
        &settings,
        &Options {
            window: 1000,
            ..plain
        },
    )?;
    set.ok(
        "vcdiff-deltapack-windows.vcdiff",
        &windowed,
        "made by deltapack's encoder with 1000-byte target windows (5 windows)",
    )?;
    let lzma = encode(old, new, &settings, &Options::default())?;
    set.ok(
        "vcdiff-deltapack-lzma.vcdiff",
        &lzma,
        "made by `deltapack diff --format vcdiff` (LZMA secondary compression)",
    )?;
    set.ok(
        "vcdiff-target-window.vcdiff",
        &target_windows(new),
        "two windows, the second a VCD_TARGET window copying from the first one's output",
    )?;
    set.bad(
        "vcdiff-deltapack.vcdiff",
        &ours,
        BAD_PATCH,
        "adler32 checksum",
        "",
    )?;
    {
        let c = set.last();
        c.old = "../exe-wrong.old";
        c.what = "a valid patch applied to the wrong old file: a window's adler32 fails";
    }
    set.bad("vcdiff-deltapack.vcdiff", &ours, LIMIT, "needs up to", "")?;
    {
        let c = set.last();
        c.max_memory = Some(4096);
        c.what = "a valid patch with a memory limit below its window";
    }
    crafted(set, &ours).context("crafted VCDIFF cases")
}

fn crafted(set: &mut Set, ours: &[u8]) -> anyhow::Result<()> {
    let tib = 1u64 << 40;
    let mut run_tib = vec![0u8];
    write_varint(&mut run_tib, tib);
    set.bad(
        "vcdiff-tib-window.vcdiff",
        &patch(0, &[plain(tib, b"x", &run_tib, &[])]),
        LIMIT,
        "needs up to",
        "25 bytes asking for a 1 TiB target window (one RUN): refused before anything is allocated",
    )?;
    set.bad(
        "vcdiff-unjustified-window.vcdiff",
        &patch(0, &[plain(512 << 20, b"x", &[2], &[])]),
        BAD_PATCH,
        "the instructions make 1",
        "a 512 MiB target window (within the limit) whose instructions make 1 byte: refused before the window is allocated",
    )?;
    let mut seg = Win {
        ind: VCD_SOURCE,
        seg: Some((10, 0)),
        ..plain(4, &[], &[20], &[10])
    };
    set.bad(
        "vcdiff-copy-beyond.vcdiff",
        &patch(0, &[seg]),
        BAD_PATCH,
        "is not below the current position 10",
        "a COPY from address 10 of a 10-byte source segment with nothing made yet",
    )?;
    seg = Win {
        seg: Some((1000, 4000)),
        ..plain(4, &[], &[20], &[0])
    };
    seg.ind = VCD_SOURCE;
    set.bad(
        "vcdiff-segment-past-source.vcdiff",
        &patch(0, &[seg]),
        BAD_PATCH,
        "past the source file's 4160 bytes",
        "a VCD_SOURCE segment 4000..5000 of the 4160-byte old file",
    )?;
    let ahead = Win {
        ind: VCD_TARGET,
        seg: Some((4, 0)),
        ..plain(4, &[], &[20], &[0])
    };
    set.bad(
        "vcdiff-target-segment-ahead.vcdiff",
        &patch(0, &[ahead]),
        BAD_PATCH,
        "past the target made so far, 0 bytes",
        "a VCD_TARGET segment in the first window, before any target exists",
    )?;
    let both = Win {
        ind: VCD_SOURCE | VCD_TARGET,
        seg: Some((4, 0)),
        ..plain(4, &[], &[20], &[0])
    };
    set.bad(
        "vcdiff-both-segments.vcdiff",
        &patch(0, &[both]),
        BAD_PATCH,
        "sets both VCD_SOURCE and VCD_TARGET",
        "Win_Indicator with VCD_SOURCE and VCD_TARGET",
    )?;
    // Section lengths that claim 2 more bytes than the delta encoding has.
    let mut over = patch(0, &[plain(3, b"abc", &[4], &[])]);
    over[9] += 2; // the data section length
    set.bad(
        "vcdiff-sections-overrun.vcdiff",
        &over,
        BAD_PATCH,
        "the sections overlap or overrun",
        "section lengths adding up to more than the delta encoding length",
    )?;
    let mut past = patch(0, &[plain(3, b"abc", &[4], &[])]);
    past[6] += 50; // the delta encoding length
    set.bad(
        "vcdiff-delta-past-end.vcdiff",
        &past,
        BAD_PATCH,
        "past the end of the patch",
        "a delta encoding length past the end of the file",
    )?;
    // One data byte of the first window, found through its header.
    let mut bad_sum = ours.to_vec();
    let first_data = first_data_offset(ours)?;
    bad_sum[first_data] ^= 0x20;
    set.bad(
        "vcdiff-bad-checksum.vcdiff",
        &bad_sum,
        BAD_PATCH,
        "adler32 checksum",
        "deltapack's patch with one data byte changed: the window's adler32 fails",
    )?;
    set.bad(
        "vcdiff-inst-exceeds-window.vcdiff",
        &patch(0, &[plain(50, &[7; 100], &add(100), &[])]),
        BAD_PATCH,
        "exceeds the 50 bytes left of the 50-byte target window",
        "an ADD of 100 bytes in a 50-byte target window",
    )?;
    set.bad(
        "vcdiff-data-left-over.vcdiff",
        &patch(0, &[plain(3, b"abcdef", &[4], &[])]),
        BAD_PATCH,
        "the ADD and RUN instructions take 3",
        "a 6-byte data section of which the instructions use 3",
    )?;
    let mut long = file_header(0);
    long.extend_from_slice(&[0, 19]);
    long.extend_from_slice(&[0x80; 11]);
    long.extend_from_slice(&[0; 8]);
    set.bad(
        "vcdiff-varint-11-bytes.vcdiff",
        &long,
        BAD_PATCH,
        "target window length is not a valid integer (longer than 10 bytes)",
        "a target window length of 11 varint bytes",
    )?;
    let mut big = file_header(0);
    big.extend_from_slice(&[0, 18]);
    big.extend_from_slice(&[0xFF; 9]);
    big.extend_from_slice(&[0x7F; 9]);
    set.bad(
        "vcdiff-varint-overflow.vcdiff",
        &big,
        BAD_PATCH,
        "does not fit 64 bits",
        "a target window length of 10 varint bytes above 2^64",
    )?;
    set.bad(
        "vcdiff-code-table.vcdiff",
        &file_header(2),
        BAD_PATCH,
        "VCD_CODETABLE",
        "a custom code table (Hdr_Indicator 0x02): not supported",
    )?;
    for (id, name, file) in [
        (1, "DJW", "vcdiff-secondary-djw.vcdiff"),
        (16, "FGK", "vcdiff-secondary-fgk.vcdiff"),
    ] {
        let mut p = patch(
            0,
            &[Win {
                delta_ind: 1,
                ..plain(3, b"abc", &[4], &[])
            }],
        );
        p[4] = 1; // VCD_DECOMPRESS, then the id
        p.insert(5, id);
        let error = if id == 1 {
            "secondary compressor 1 (DJW, VCD_DECOMPRESS)"
        } else {
            "secondary compressor 16 (FGK, VCD_DECOMPRESS)"
        };
        set.bad(file, &p, BAD_PATCH, error, "")?;
        set.last().what = if name == "DJW" {
            "VCD_DECOMPRESS naming DJW (xdelta3 -S djw) and a compressed data section: refused by name"
        } else {
            "VCD_DECOMPRESS naming FGK (xdelta3 -S fgk) and a compressed data section: refused by name"
        };
    }
    lzma_cases(set)?;
    set.bad(
        "vcdiff-bad-version.vcdiff",
        &[0xD6, 0xC3, 0xC4, 0x01, 0x00],
        BAD_PATCH,
        "version byte is 0x01",
        "version byte 1",
    )?;
    set.bad(
        "vcdiff-truncated.vcdiff",
        &ours[..8],
        BAD_PATCH,
        "truncated inside",
        "the first 8 bytes of a valid patch: cut inside the first window header",
    )?;
    Ok(())
}

/// One piece of an LZMA stream as xdelta3 writes a section: `declared` as the length
/// varint, then `bytes` compressed (a new stream, ended by a sync flush).
fn lzma_piece(bytes: &[u8], declared: u64) -> anyhow::Result<Vec<u8>> {
    use liblzma::stream::{Action, Check, Filters, LzmaOptions, Status, Stream};
    let mut opts = LzmaOptions::new_preset(6)?;
    opts.dict_size(4096);
    let mut filters = Filters::new();
    filters.lzma2(&opts);
    let mut s = Stream::new_stream_encoder(&filters, Check::None)?;
    let mut out = Vec::new();
    write_varint(&mut out, declared);
    let mut input = bytes;
    while !input.is_empty() {
        out.reserve(1 << 16);
        let before = s.total_in();
        s.process_vec(input, &mut out, Action::Run)?;
        input = &input[(s.total_in() - before) as usize..];
    }
    loop {
        out.reserve(1 << 16);
        if s.process_vec(&[], &mut out, Action::SyncFlush)? == Status::StreamEnd {
            return Ok(out);
        }
    }
}

/// A one-window patch with LZMA secondary compression whose target is ADDed from a
/// compressed data section `data`.
fn lzma_patch(target_len: u64, data: &[u8]) -> Vec<u8> {
    let inst = add(target_len as usize);
    let mut p = patch(
        0,
        &[Win {
            delta_ind: 1,
            ..plain(target_len, data, &inst, &[])
        }],
    );
    p[4] = 1;
    p.insert(5, 2);
    p
}

fn lzma_cases(set: &mut Set) -> anyhow::Result<()> {
    let text: Vec<u8> =
        b"VCDIFF sections compressed with LZMA, as xdelta3 writes them. ".repeat(40);
    let n = text.len() as u64;
    let good = lzma_piece(&text, n)?;
    set.bad(
        "vcdiff-lzma-truncated.vcdiff",
        &lzma_patch(n, &good[..good.len() - 6]),
        BAD_PATCH,
        "data section is truncated",
        "an LZMA-compressed data section without its last 6 bytes",
    )?;
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    set.bad(
        "vcdiff-lzma-flipped.vcdiff",
        &lzma_patch(n, &flipped),
        BAD_PATCH,
        "data section",
        "an LZMA-compressed data section with one bit flipped in its middle",
    )?;
    let mut past = Vec::new();
    write_varint(&mut past, 1 << 40);
    past.extend_from_slice(&good[2..]);
    set.bad(
        "vcdiff-lzma-length-past-window.vcdiff",
        &lzma_patch(n, &past),
        BAD_PATCH,
        "uncompressed length of the data section is 1099511627776 bytes",
        "a compressed data section declaring 1 TiB uncompressed in a 2520-byte window: refused before anything is decompressed",
    )?;
    let zeros = vec![0u8; 16 << 20];
    set.bad(
        "vcdiff-lzma-bomb.vcdiff",
        &lzma_patch(50, &lzma_piece(&zeros, 50)?),
        BAD_PATCH,
        "compressed bytes left after its 50 uncompressed bytes",
        "a 50-byte window whose compressed data section holds 16 MiB of zeros: the decoder stops at the 50 bytes declared",
    )?;
    let mut dict = good.clone();
    // The LZMA2 properties byte of the block header: varint(2520) is 2 bytes, then the
    // 12-byte stream header, the block header's size and flags, filter id and size.
    dict[2 + 12 + 4] = 40;
    set.bad(
        "vcdiff-lzma-4gib-dictionary.vcdiff",
        &lzma_patch(n, &dict),
        LIMIT,
        "needs up to",
        "a compressed data section whose block header asks for a 4 GiB dictionary: over the memory limit before anything is decoded",
    )?;
    Ok(())
}

/// Where the first window's data section starts in a patch with a 5-byte file header.
fn first_data_offset(p: &[u8]) -> anyhow::Result<usize> {
    use deltaapply::vcdiff::{Place, WindowHeader};
    let w = WindowHeader::decode(
        &p[5..],
        p.len() as u64 - 5,
        Place::Window {
            index: 0,
            offset: 5,
        },
    )?;
    anyhow::ensure!(w.data_len > 0, "the first window has no data");
    Ok(5 + w.header_len as usize)
}
