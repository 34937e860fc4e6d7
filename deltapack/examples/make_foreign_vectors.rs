//! Builds the committed vectors of `format-spec/foreign.md` §6 in
//! `testdata/vectors/foreign/`: BSDIFF40 patches, zstd frames and VCDIFF patches made by the peer tools
//! (Debian's `bsdiff`, `zstd` and `xdelta3`), by qbsdiff and by deltapack, and crafted ones that
//! an applier must refuse (the 32-byte qbsdiff crasher, negative and overflowing
//! control values, sizes far past the input, decompression bombs...), with
//! `vectors.json` (what each case must do) and `README.md` (the same, for people).
//!
//! ```text
//! cargo run -p deltapack --example make_foreign_vectors -- testdata/vectors/foreign
//! ```
//!
//! The inputs are `exe.old`, `exe-wrong.old` and `exe.new` of `testdata/vectors/`.
//! Every crafted case is built from fixed values and bzip2/zstd at fixed levels, so two
//! runs write the same bytes; the peer-made ones are as deterministic as the peers
//! (`bsdiff` 4.3, `zstd` 1.5). `deltaapply-cli/tests/foreign.rs` checks them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};
use bzip2::Compression;
use bzip2::write::BzEncoder;
use deltaapply::bsdiff40::{Header, offtout};
use deltaapply::zstd_frame::FrameHeader;
use deltapack::Settings;
use serde::Serialize;

#[path = "foreign_vectors/vcdiff.rs"]
mod vcdiff;

const BAD_PATCH: i32 = deltaapply_cli::exit::BAD_PATCH;
const USAGE: i32 = deltaapply_cli::exit::USAGE;
const LIMIT: i32 = deltaapply_cli::exit::LIMIT;

/// One line of `vectors.json`.
#[derive(Serialize)]
struct Case {
    /// The patch file, in this directory.
    file: String,
    /// The old file, relative to this directory.
    old: &'static str,
    /// `"ok"`, or the exit code of `deltaapply apply`.
    expect: Expect,
    /// For `"ok"`: the file the result must equal; for an error, the one whose
    /// SHA-256 is passed as expected.
    new: String,
    /// A text the error must contain (it names the field or stream).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    /// `--expect-size`, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    expected_size: Option<u64>,
    /// `--max-memory`, if not the default of 1 GiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_memory: Option<u64>,
    /// What the case is, for the README.
    #[serde(skip)]
    what: &'static str,
}

#[derive(Serialize, Clone, Copy)]
#[serde(untagged)]
enum Expect {
    Ok(&'static str),
    Exit(i32),
}

struct Set {
    dir: PathBuf,
    cases: Vec<Case>,
    written: Vec<(String, usize)>,
}

impl Set {
    fn file(&mut self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        std::fs::write(self.dir.join(name), bytes)
            .with_context(|| format!("cannot write {name}"))?;
        self.written.push((name.to_string(), bytes.len()));
        Ok(())
    }

    fn ok(&mut self, name: &str, bytes: &[u8], what: &'static str) -> anyhow::Result<()> {
        self.file(name, bytes)?;
        self.cases.push(case(name, Expect::Ok("ok"), None, what));
        Ok(())
    }

    fn bad(
        &mut self,
        name: &str,
        bytes: &[u8],
        exit: i32,
        error: &'static str,
        what: &'static str,
    ) -> anyhow::Result<()> {
        self.file(name, bytes)?;
        self.cases
            .push(case(name, Expect::Exit(exit), Some(error), what));
        Ok(())
    }

    fn last(&mut self) -> &mut Case {
        self.cases.last_mut().expect("a case was just added")
    }
}

fn case(name: &str, expect: Expect, error: Option<&'static str>, what: &'static str) -> Case {
    Case {
        file: name.to_string(),
        old: "../exe.old",
        expect,
        new: "../exe.new".to_string(),
        error,
        expected_size: None,
        max_memory: None,
        what,
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "testdata/vectors/foreign".into()),
    );
    if args.next().is_some() {
        bail!("usage: make_foreign_vectors [DIR]");
    }
    std::fs::create_dir_all(&dir)?;
    let parent = dir.join("..");
    let old = std::fs::read(parent.join("exe.old")).context("run make_vectors first")?;
    let new = std::fs::read(parent.join("exe.new"))?;
    let mut set = Set {
        dir: dir.clone(),
        cases: Vec::new(),
        written: Vec::new(),
    };
    bsdiff40_cases(&mut set, &parent, &old, &new)?;
    zstd_cases(&mut set, &parent, &old, &new)?;
    vcdiff::cases(&mut set, &parent, &old, &new)?;
    set.bad(
        "not-a-patch.bin",
        b"#!/bin/sh\necho hello\n",
        BAD_PATCH,
        "not a patch",
        "no known magic",
    )?;
    let json = serde_json::to_string_pretty(&set.cases)? + "\n";
    std::fs::write(dir.join("vectors.json"), json)?;
    std::fs::write(dir.join("README.md"), readme(&set))?;
    println!(
        "wrote {} files and {} cases to {}",
        set.written.len(),
        set.cases.len(),
        dir.display()
    );
    Ok(())
}

fn bz(bytes: &[u8]) -> Vec<u8> {
    let mut e = BzEncoder::new(Vec::new(), Compression::best());
    e.write_all(bytes).expect("writing to memory");
    e.finish().expect("writing to memory")
}

fn records(controls: &[(i64, i64, i64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(add, copy, seek) in controls {
        for v in [add, copy, seek] {
            out.extend_from_slice(&offtout(v).expect("test values fit"));
        }
    }
    out
}

/// A BSDIFF40 file from raw (uncompressed) control records, diff and extra bytes.
fn bsdiff40(new_size: i64, control: &[u8], diff: &[u8], extra: &[u8]) -> Vec<u8> {
    let (c, d, e) = (bz(control), bz(diff), bz(extra));
    let mut out = raw_header(c.len() as i64, d.len() as i64, new_size);
    out.extend_from_slice(&c);
    out.extend_from_slice(&d);
    out.extend_from_slice(&e);
    out
}

fn raw_header(control: i64, diff: i64, new_size: i64) -> Vec<u8> {
    let mut out = b"BSDIFF40".to_vec();
    for v in [control, diff, new_size] {
        out.extend_from_slice(&offtout(v).expect("test values fit"));
    }
    out
}

fn peer(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?} (apt-get install bsdiff zstd)"))?;
    ensure!(status.success(), "{cmd:?} failed");
    Ok(())
}

fn bsdiff40_cases(set: &mut Set, parent: &Path, old: &[u8], new: &[u8]) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let debian = tmp.path().join("debian.bsdiff");
    peer(
        Command::new("bsdiff")
            .arg(parent.join("exe.old"))
            .arg(parent.join("exe.new"))
            .arg(&debian),
    )?;
    let debian = std::fs::read(&debian)?;
    set.ok(
        "bsdiff40-debian.bsdiff",
        &debian,
        "made by Debian's bsdiff 4.3 (`bsdiff exe.old exe.new`)",
    )?;
    let settings = Settings {
        threads: 1,
        ..Settings::default()
    };
    let ours = deltapack::formats::bsdiff40::encode(old, new, &settings)?;
    set.ok(
        "bsdiff40-deltapack.bsdiff",
        &ours,
        "made by `deltapack diff --format bsdiff40`",
    )?;
    let mut q = Vec::new();
    qbsdiff::Bsdiff::new(old, new)
        .parallel_scheme(qbsdiff::ParallelScheme::Never)
        .compare(std::io::Cursor::new(&mut q))?;
    set.ok(
        "bsdiff40-qbsdiff.bsdiff",
        &q,
        "made by qbsdiff 1.4.4 (`Bsdiff::new(old, new).compare(..)`)",
    )?;

    // Old bytes outside the old file count as 0 (bspatch): start 100 bytes before it.
    let mut diff = Vec::new();
    for (i, &byte) in new.iter().enumerate() {
        let o = i.checked_sub(100).map_or(0, |k| old[k]);
        diff.push(byte.wrapping_sub(o));
    }
    let outside = bsdiff40(
        new.len() as i64,
        &records(&[(0, 0, -100), (new.len() as i64, 0, 0)]),
        &diff,
        b"",
    );
    set.ok(
        "bsdiff40-old-outside.bsdiff",
        &outside,
        "reads 100 bytes before the old file, which count as 0 as in bspatch",
    )?;

    let mut crasher = raw_header(-5, 0, 0);
    crasher.truncate(32);
    set.bad(
        "bsdiff40-qbsdiff-crasher.bsdiff",
        &crasher,
        BAD_PATCH,
        "control length is negative",
        "the 32-byte header that panics qbsdiff 1.4.4's parser: control length -5",
    )?;
    set.bad(
        "bsdiff40-truncated-header.bsdiff",
        &debian[..20],
        BAD_PATCH,
        "header needs 32 bytes",
        "the first 20 bytes of a valid patch",
    )?;
    let mut past = raw_header(1 << 62, 1 << 62, new.len() as i64);
    past.extend_from_slice(&debian[32..]);
    set.bad(
        "bsdiff40-streams-past-end.bsdiff",
        &past,
        BAD_PATCH,
        "past the end of the",
        "control and diff lengths of 2^62 each: past the file, and their sum past 2^63",
    )?;
    let mut negative_size = debian.clone();
    negative_size[24..32].copy_from_slice(&offtout(-1).expect("fits"));
    set.bad(
        "bsdiff40-negative-new-size.bsdiff",
        &negative_size,
        BAD_PATCH,
        "new size is negative",
        "new size -1",
    )?;
    let mut huge = debian.clone();
    huge[24..32].copy_from_slice(&offtout(1 << 62).expect("fits"));
    set.bad(
        "bsdiff40-huge-new-size.bsdiff",
        &huge,
        BAD_PATCH,
        "of the 4611686018427387904 bytes",
        "a valid patch declaring a new size of 2^62: nothing is sized by it, the control stream ends first",
    )?;
    set.bad(
        "bsdiff40-huge-new-size.bsdiff",
        &huge,
        BAD_PATCH,
        "makes a 4611686018427387904-byte file",
        "the same with the expected size given: refused before anything is decoded",
    )?;
    set.last().expected_size = Some(new.len() as u64);
    set.bad(
        "bsdiff40-negative-add.bsdiff",
        &bsdiff40(100, &records(&[(-1, 100, 0)]), b"", &[0; 100]),
        BAD_PATCH,
        "add length is negative",
        "control record 0 adds -1 bytes (CVE-2014-9862)",
    )?;
    set.bad(
        "bsdiff40-negative-copy.bsdiff",
        &bsdiff40(100, &records(&[(100, -50, 0)]), &[0; 100], b""),
        BAD_PATCH,
        "copy length is negative",
        "control record 0 copies -50 bytes (CVE-2014-9862)",
    )?;
    set.bad(
        "bsdiff40-past-target.bsdiff",
        &bsdiff40(100, &records(&[(50, 60, 0)]), &[0; 50], &[0; 60]),
        BAD_PATCH,
        "past the new size 100",
        "control record 0 writes 110 bytes of a 100-byte file",
    )?;
    set.bad(
        "bsdiff40-seek-overflow.bsdiff",
        &bsdiff40(10, &records(&[(0, 0, i64::MAX), (10, 0, 0)]), &[0; 10], b""),
        BAD_PATCH,
        "old cursor overflows",
        "the old cursor seeks to 2^63-1, then moves past it",
    )?;
    let empties = vec![(0, 0, 1); 1_000_000];
    set.bad(
        "bsdiff40-empty-records.bsdiff",
        &bsdiff40(10, &records(&empties), b"", b""),
        BAD_PATCH,
        "past the 36 records a patch of this new size may have",
        "a million control records that produce nothing (a control-stream bomb)",
    )?;
    set.bad(
        "bsdiff40-diff-bomb.bsdiff",
        &bsdiff40(100, &records(&[(100, 0, 0)]), &vec![0; 256 << 20], b""),
        BAD_PATCH,
        "diff stream has bytes left over",
        "a diff stream that decompresses to 256 MiB for a 100-byte file: the decoder stops at 100",
    )?;
    let mut not_bz = bsdiff40(0, b"", b"", b"");
    let keep = not_bz.len() - bz(b"").len();
    not_bz.truncate(keep);
    not_bz.extend_from_slice(b"hello");
    set.bad(
        "bsdiff40-not-bzip2.bsdiff",
        &not_bz,
        BAD_PATCH,
        "extra stream (offset",
        "an extra stream that is not bzip2",
    )?;
    let mut corrupt = debian.clone();
    let diff_at = 32 + Header::decode(&debian, debian.len() as u64)?.control_len as usize;
    // Byte 5 of a bzip2 stream is in its first block's magic number.
    corrupt[diff_at + 5] ^= 0xFF;
    set.bad(
        "bsdiff40-corrupt-diff.bsdiff",
        &corrupt,
        BAD_PATCH,
        "diff stream does not decode as bzip2",
        "the diff stream's first bzip2 block magic broken",
    )?;
    let mut trailing = debian.clone();
    trailing.extend_from_slice(b"xyz");
    set.bad(
        "bsdiff40-trailing-bytes.bsdiff",
        &trailing,
        BAD_PATCH,
        "extra section has bytes after its bzip2 stream",
        "three bytes after the extra stream",
    )?;
    let mut short = records(&[(10, 0, 0), (10, 0, 0)]);
    short.truncate(30);
    set.bad(
        "bsdiff40-short-control.bsdiff",
        &bsdiff40(20, &short, &[0; 20], b""),
        BAD_PATCH,
        "ends inside record 1",
        "the control stream ends 6 bytes into its second record",
    )?;
    set.bad(
        "bsdiff40-short-diff.bsdiff",
        &bsdiff40(100, &records(&[(100, 0, 0)]), &[0; 50], b""),
        BAD_PATCH,
        "diff stream ends before",
        "a record adds 100 bytes, the diff stream has 50",
    )?;
    set.bad(
        "bsdiff40-leftover-extra.bsdiff",
        &bsdiff40(10, &records(&[(0, 10, 0)]), b"", &[7; 20]),
        BAD_PATCH,
        "extra stream has bytes left over",
        "20 extra bytes, 10 used",
    )?;
    set.bad(
        "bsdiff40-debian.bsdiff",
        &debian,
        BAD_PATCH,
        "expected sha256",
        "a valid patch applied to the wrong old file: the result's digest is refused",
    )?;
    set.last().old = "../exe-wrong.old";
    set.bad(
        "bsdiff40-debian.bsdiff",
        &debian,
        LIMIT,
        "needs up to",
        "a valid patch with a memory limit below its three bzip2 decoders",
    )?;
    set.last().max_memory = Some(4 << 20);
    Ok(())
}

fn zstd_cases(set: &mut Set, parent: &Path, old: &[u8], new: &[u8]) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let cli = tmp.path().join("cli.zst");
    peer(
        Command::new("zstd")
            .args(["-q", "-19", "--single-thread"])
            .arg(format!("--patch-from={}", parent.join("exe.old").display()))
            .arg(parent.join("exe.new"))
            .arg("-o")
            .arg(&cli),
    )?;
    let cli = std::fs::read(&cli)?;
    set.ok(
        "zstd-cli.zst",
        &cli,
        "made by Debian's zstd 1.5 (`zstd -19 --patch-from=exe.old exe.new`)",
    )?;
    let mut enc = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), 19, old)?;
    enc.include_contentsize(false)?;
    enc.include_checksum(true)?;
    enc.write_all(new)?;
    let no_size = enc.finish()?;
    ensure!(FrameHeader::decode(&no_size)?.content_size.is_none());
    set.bad(
        "zstd-no-content-size.zst",
        &no_size,
        USAGE,
        "does not declare the size",
        "a frame without a content size, and no expected size to bound it",
    )?;
    set.ok(
        "zstd-no-content-size.zst",
        &no_size,
        "the same frame with the expected size given",
    )?;
    set.last().expected_size = Some(new.len() as u64);

    let mut bomb_enc = zstd::stream::write::Encoder::new(Vec::new(), 19)?;
    bomb_enc.include_contentsize(false)?;
    bomb_enc.write_all(&vec![0; 256 << 20])?;
    let bomb = bomb_enc.finish()?;
    set.bad(
        "zstd-bomb.zst",
        &bomb,
        BAD_PATCH,
        "decodes to more than the 4256 bytes expected",
        "256 MiB of zeros in a frame without a content size: the decoder stops at the expected size",
    )?;
    set.last().expected_size = Some(new.len() as u64);

    let mut skippable = vec![0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 1, 2, 3, 4];
    skippable.extend_from_slice(&cli);
    set.bad(
        "zstd-skippable.zst",
        &skippable,
        BAD_PATCH,
        "skippable frame",
        "a skippable frame before the patch",
    )?;
    let mut two = cli.clone();
    two.extend_from_slice(&zstd::bulk::compress(b"more", 3)?);
    set.bad(
        "zstd-two-frames.zst",
        &two,
        BAD_PATCH,
        "bytes follow the zstd frame",
        "a second frame after the patch",
    )?;
    // The frame without a content size has a window descriptor (byte 5) and no
    // dictionary ID: the two crafted headers below edit it.
    let descriptor = no_size[4];
    ensure!(
        descriptor & 3 == 0 && descriptor & 0x20 == 0,
        "zstd's frame layout changed"
    );
    let mut dict = no_size[..6].to_vec();
    dict[4] |= 1;
    dict.push(7);
    dict.extend_from_slice(&no_size[6..]);
    set.bad(
        "zstd-dictionary.zst",
        &dict,
        BAD_PATCH,
        "needs dictionary 7",
        "a frame header naming dictionary 7",
    )?;
    set.last().expected_size = Some(new.len() as u64);
    let mut wide = no_size.clone();
    wide[5] = (27 - 10) << 3;
    set.bad(
        "zstd-window-128mib.zst",
        &wide,
        LIMIT,
        "needs up to",
        "a frame header asking for a 2^27 window, above a 64 MiB memory limit",
    )?;
    set.last().max_memory = Some(64 << 20);
    set.last().expected_size = Some(new.len() as u64);
    set.bad(
        "zstd-window-beyond.zst",
        &[0x28, 0xB5, 0x2F, 0xFD, 0x00, 0xF8, 0, 0, 0],
        BAD_PATCH,
        "beyond zstd's limit",
        "a frame header asking for a 2^41 window",
    )?;
    let mut tib = vec![0x28, 0xB5, 0x2F, 0xFD, 0xE0];
    tib.extend_from_slice(&(1u64 << 40).to_le_bytes());
    set.bad(
        "zstd-content-1tib.zst",
        &tib,
        LIMIT,
        "needs up to",
        "a single-segment frame header declaring 1 TiB of content (its window)",
    )?;
    set.bad(
        "zstd-truncated-header.zst",
        &cli[..5],
        BAD_PATCH,
        "cut off after 5 bytes",
        "the patch's first 5 bytes",
    )?;
    let mut flipped = cli.clone();
    let at = cli.len() / 2;
    flipped[at] ^= 0x10;
    set.bad(
        "zstd-corrupt.zst",
        &flipped,
        BAD_PATCH,
        "zstd frame does not decode",
        "one bit flipped in the middle of the frame",
    )?;
    set.bad(
        "zstd-cli.zst",
        &cli,
        BAD_PATCH,
        "made from another old file",
        "a valid frame applied to the wrong old file: its XXH64 checksum fails",
    )?;
    set.last().old = "../exe-wrong.old";
    Ok(())
}

fn readme(set: &Set) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Test vectors for foreign patch formats\n\n\
         Part of `format-spec/foreign.md` (§6). `vectors.json` lists every case; \
         `deltaapply-cli/tests/foreign.rs` applies each through the library and the \
         `deltaapply` binary (with `--expect-sha256` of the `new` file) and checks the \
         outcome: `ok` (the output equals `new`), or the exit code and a text the error \
         must contain, with the destination untouched and no file left behind. The \
         same test sweeps every truncation and header bit flip of the valid patches.\n\n\
         The inputs are `../exe.old`, `../exe-wrong.old` and `../exe.new`. Regenerate \
         with (needs Debian's `bsdiff`, `zstd` and `xdelta3`):\n\n\
         ```sh\ncargo run -p deltapack --example make_foreign_vectors -- testdata/vectors/foreign\n```\n\n\
         | file | old | expected size | memory limit | expect | error contains | what |\n\
         |---|---|---:|---:|---|---|---|"
    );
    for c in &set.cases {
        let expect = match c.expect {
            Expect::Ok(_) => "ok".to_string(),
            Expect::Exit(code) => format!("exit {code}"),
        };
        let _ = writeln!(
            s,
            "| `{}` | `{}` | {} | {} | {expect} | {} | {} |",
            c.file,
            c.old.trim_start_matches("../"),
            c.expected_size.map(|n| n.to_string()).unwrap_or_default(),
            c.max_memory.map(|n| n.to_string()).unwrap_or_default(),
            c.error.map(|e| format!("`{e}`")).unwrap_or_default(),
            c.what,
        );
    }
    s
}
