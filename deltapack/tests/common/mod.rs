//! Test data shaped like real release pairs, and round trips through `deltaapply`.
//!
//! Old files are built from segments (machine code with 4- and 8-byte little-endian
//! pointers, text, zero runs, random bytes); new files are edits of them (insertions,
//! deletions, moved and duplicated blocks, patched bytes, and pointers shifted by a
//! constant, as when code is relinked at another address). Everything is derived from
//! explicit seeds, so a failing case is reproducible from its printed parameters.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

use deltaapply::{Limits, Method};
use deltapack::Settings;

pub mod s3;
#[cfg(unix)]
pub mod trees;

/// A generous apply-memory budget: every method fits for test-sized files.
pub const GENEROUS: u64 = 1 << 30;

/// 32-bit pointers point into `PTR32_BASE..PTR32_BASE + PTR_SPAN`.
pub const PTR32_BASE: u32 = 0x0040_0000;
/// 64-bit pointers point into `PTR64_BASE..PTR64_BASE + PTR_SPAN`.
pub const PTR64_BASE: u64 = 0x0000_7f3a_0000_0000;
/// Size of the address range pointers point into.
pub const PTR_SPAN: u32 = 0x0010_0000;

/// SplitMix64: small, fast, and the same everywhere.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

/// What a stretch of an old file looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Instructions with 4-byte pointers into a small set of targets.
    Code32,
    /// Instructions with 8-byte pointers into a small set of targets.
    Code64,
    /// Words, spaces and newlines.
    Text,
    /// Zero bytes (bss, padding).
    Zeros,
    /// Incompressible bytes (compressed resources, keys).
    Random,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] = [
        Kind::Code32,
        Kind::Code64,
        Kind::Text,
        Kind::Zeros,
        Kind::Random,
    ];
}

/// `len` bytes of `kind`, derived from `seed`.
pub fn fill(kind: Kind, len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 16);
    match kind {
        Kind::Code32 | Kind::Code64 => {
            // Calls go to a few dozen functions, so the same pointers recur, as in
            // real code; opcodes come from a short list of common ones.
            const OPCODES: [u8; 12] = [
                0x48, 0x89, 0x8b, 0xe8, 0xff, 0x0f, 0x83, 0xc3, 0x55, 0x5d, 0x31, 0x74,
            ];
            let targets: Vec<u32> = (0..48)
                .map(|_| rng.below(PTR_SPAN as usize) as u32 & !0xf)
                .collect();
            while out.len() < len {
                out.push(OPCODES[rng.below(OPCODES.len())]);
                out.push(rng.byte() & 0xc7);
                if rng.below(3) == 0 {
                    let target = targets[rng.below(targets.len())];
                    if kind == Kind::Code32 {
                        out.extend_from_slice(&(PTR32_BASE + target).to_le_bytes());
                    } else {
                        out.extend_from_slice(&(PTR64_BASE + u64::from(target)).to_le_bytes());
                    }
                }
            }
        }
        Kind::Text => {
            const WORDS: [&str; 16] = [
                "the", "update", "file", "version", "error", "delta", "patch", "memory", "window",
                "apply", "of", "and", "a", "config", "path", "0x1f",
            ];
            while out.len() < len {
                out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
                out.push(if rng.below(10) == 0 { b'\n' } else { b' ' });
            }
        }
        Kind::Zeros => out.resize(len, 0),
        Kind::Random => out.extend((0..len).map(|_| rng.byte())),
    }
    out.truncate(len);
    out
}

/// One stretch of an old file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// What it looks like.
    pub kind: Kind,
    /// Its length.
    pub len: usize,
    /// Seed of its contents.
    pub seed: u64,
}

/// The old file made of `segments`, in order.
pub fn build(segments: &[Segment]) -> Vec<u8> {
    segments
        .iter()
        .flat_map(|s| fill(s.kind, s.len, s.seed))
        .collect()
}

/// One change from old to new. Positions are reduced modulo the current length (plus
/// one), so any values are valid for any file, and shrinking keeps them valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Insert `len` bytes of `kind` at `at`.
    Insert {
        /// Where.
        at: u32,
        /// What the bytes look like.
        kind: Kind,
        /// How many.
        len: u16,
        /// Their seed.
        seed: u64,
    },
    /// Delete up to `len` bytes from `at`.
    Delete {
        /// Where.
        at: u32,
        /// How many.
        len: u16,
    },
    /// Cut up to `len` bytes from `from` and insert them at `to` (in what remains).
    Move {
        /// Start of the block.
        from: u32,
        /// Its length.
        len: u16,
        /// Where it goes.
        to: u32,
    },
    /// Replace `count` bytes at random places.
    Overwrite {
        /// How many.
        count: u8,
        /// Where and with what.
        seed: u64,
    },
    /// Add `delta` to every pointer in up to `len` bytes from `at`.
    ShiftPointers {
        /// Start of the region.
        at: u32,
        /// Its length.
        len: u32,
        /// The relocation.
        delta: i32,
    },
    /// Copy up to `len` bytes from `from` and insert the copy at `to`.
    Duplicate {
        /// Start of the block.
        from: u32,
        /// Its length.
        len: u16,
        /// Where the copy goes.
        to: u32,
    },
}

/// `old` with `edits` applied in order.
pub fn mutate(old: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut buf = old.to_vec();
    for edit in edits {
        apply_edit(&mut buf, edit);
    }
    buf
}

fn range(buf: &[u8], at: u32, len: usize) -> std::ops::Range<usize> {
    let start = at as usize % (buf.len() + 1);
    start..(start + len).min(buf.len())
}

fn apply_edit(buf: &mut Vec<u8>, edit: &Edit) {
    match *edit {
        Edit::Insert {
            at,
            kind,
            len,
            seed,
        } => {
            let at = at as usize % (buf.len() + 1);
            buf.splice(at..at, fill(kind, usize::from(len), seed));
        }
        Edit::Delete { at, len } => {
            buf.drain(range(buf, at, usize::from(len)));
        }
        Edit::Move { from, len, to } => {
            let block: Vec<u8> = buf.drain(range(buf, from, usize::from(len))).collect();
            let to = to as usize % (buf.len() + 1);
            buf.splice(to..to, block);
        }
        Edit::Overwrite { count, seed } => {
            let mut rng = Rng::new(seed);
            if !buf.is_empty() {
                for _ in 0..count {
                    let i = rng.below(buf.len());
                    buf[i] = rng.byte();
                }
            }
        }
        Edit::ShiftPointers { at, len, delta } => {
            let r = range(buf, at, len as usize);
            shift_pointers(&mut buf[r], delta);
        }
        Edit::Duplicate { from, len, to } => {
            let block = buf[range(buf, from, usize::from(len))].to_vec();
            let to = to as usize % (buf.len() + 1);
            buf.splice(to..to, block);
        }
    }
}

/// Adds `delta` to every 8-byte value in the 64-bit pointer range and every 4-byte
/// value in the 32-bit one, scanning byte by byte (code is not aligned), as a linker
/// does when the code they point into moves.
pub fn shift_pointers(region: &mut [u8], delta: i32) {
    let in_span = |v: u64, base: u64| v >= base && v < base + u64::from(PTR_SPAN);
    let mut i = 0;
    while i + 4 <= region.len() {
        if let Some(word) = region.get(i..i + 8) {
            let v = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            if in_span(v, PTR64_BASE) {
                let shifted = v.wrapping_add_signed(i64::from(delta));
                region[i..i + 8].copy_from_slice(&shifted.to_le_bytes());
                i += 8;
                continue;
            }
        }
        let v = u32::from_le_bytes(region[i..i + 4].try_into().expect("4 bytes"));
        if in_span(u64::from(v), u64::from(PTR32_BASE)) {
            let shifted = v.wrapping_add_signed(delta);
            region[i..i + 4].copy_from_slice(&shifted.to_le_bytes());
            i += 4;
            continue;
        }
        i += 1;
    }
}

/// A fixed, realistic release pair of about `size` bytes: mixed segments, then code
/// inserted and moved, pointers shifted after the insertion, a few patched bytes.
pub fn release_pair(size: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng::new(seed);
    let mut segments = Vec::new();
    let mut total = 0;
    while total < size {
        let kind = Kind::ALL[rng.below(Kind::ALL.len())];
        let len = (size - total).min(1 + rng.below(size / 4 + 1));
        segments.push(Segment {
            kind,
            len,
            seed: rng.next_u64(),
        });
        total += len;
    }
    let old = build(&segments);
    let at = (size / 3) as u32;
    let edits = [
        Edit::Insert {
            at,
            kind: Kind::Code32,
            len: 700,
            seed: rng.next_u64(),
        },
        Edit::ShiftPointers {
            at: at + 700,
            len: u32::MAX,
            delta: 700,
        },
        Edit::Move {
            from: (size / 10) as u32,
            len: 2000,
            to: (size * 8 / 10) as u32,
        },
        Edit::Delete {
            at: (size / 2) as u32,
            len: 300,
        },
        Edit::Overwrite {
            count: 12,
            seed: rng.next_u64(),
        },
    ];
    let new = mutate(&old, &edits);
    (old, new)
}

/// Settings for tests: default level, `threads` threads, `budget` bytes of apply memory.
pub fn settings(threads: usize, budget: u64) -> Settings {
    Settings {
        threads,
        max_apply_memory: budget,
        ..Settings::default()
    }
}

/// A temporary directory with helpers to write, read and list files.
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    /// A new, empty directory.
    pub fn new() -> Self {
        Dir {
            tmp: tempfile::tempdir().expect("create temp dir"),
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// The path of `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Writes `bytes` to `name` and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, bytes).expect("write test file");
        path
    }

    /// The contents of `name`.
    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    /// The names in the directory, sorted (hidden temporary files included).
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path())
            .expect("list temp dir")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }
}

/// A copy of directory `from` at `to` (files and subdirectories).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Applies `patch` to `old` through files with [`deltaapply::apply_file`] and returns
/// the output. Checks that nothing but the three files is left in the directory.
pub fn apply_via_files(
    old: &[u8],
    patch: &[u8],
    limits: &Limits,
) -> Result<Vec<u8>, deltaapply::Error> {
    let dir = Dir::new();
    let old_path = dir.write("old", old);
    let patch_path = dir.write("patch", patch);
    let new_path = dir.join("new");
    let result = deltaapply::apply_file(
        Some(&old_path),
        &patch_path,
        &new_path,
        limits,
        None,
        &mut |_| {},
    );
    let expected: &[&str] = if result.is_ok() {
        &["new", "old", "patch"]
    } else {
        &["old", "patch"]
    };
    assert_eq!(
        dir.names(),
        expected,
        "files left after apply ({:?})",
        result.as_ref().err()
    );
    result.map(|_| dir.read("new"))
}

/// Asserts that `patch` turns `old` into exactly `new` (within a generous limit).
pub fn assert_applies(old: &[u8], new: &[u8], patch: &[u8], what: &str) {
    let got = apply_via_files(
        old,
        patch,
        &Limits {
            max_apply_memory: GENEROUS,
        },
    )
    .unwrap_or_else(|e| panic!("{what}: apply failed: {e}"));
    assert_same(&got, new, what);
}

/// Asserts two byte strings are equal, reporting lengths and the first difference
/// instead of dumping kilobytes.
pub fn assert_same(got: &[u8], expected: &[u8], what: &str) {
    if got != expected {
        let first = got
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(expected.len()));
        panic!(
            "{what}: output differs: {} bytes vs {} expected, first difference at {first}",
            got.len(),
            expected.len()
        );
    }
}

/// Makes a patch with every method and with `auto` (generous budget, one thread),
/// applies each, and checks the output; checks that auto's patch is the smallest
/// method's; returns each method's patch size.
pub fn roundtrip_all(old: &[u8], new: &[u8]) -> Vec<(Method, usize)> {
    let s = settings(1, GENEROUS);
    let mut patches = Vec::new();
    for method in Method::ALL {
        let patch = deltapack::make_one(method, old, new, &s)
            .unwrap_or_else(|e| panic!("{method}: diff failed: {e}"));
        assert_applies(old, new, &patch, method.name());
        patches.push((method, patch));
    }
    let sizes: Vec<(Method, usize)> = patches.iter().map(|(m, p)| (*m, p.len())).collect();
    let auto = deltapack::make_patch(old, new, deltapack::MethodChoice::Auto, &s)
        .unwrap_or_else(|e| panic!("auto: diff failed: {e}"));
    let smallest = sizes.iter().map(|&(_, n)| n).min().expect("three methods");
    assert_eq!(
        auto.bytes.len(),
        smallest,
        "auto ({}) did not pick the smallest: {sizes:?}",
        auto.method
    );
    let (_, same) = patches
        .iter()
        .find(|(m, _)| *m == auto.method)
        .expect("a method");
    assert!(
        *same == auto.bytes,
        "auto's {} patch differs from make_one's",
        auto.method
    );
    sizes
}

/// `deltaapply` with no trusted key from the environment; a command still running
/// after `timeout` fails the test instead of hanging the whole run.
pub fn deltaapply_cmd(timeout: std::time::Duration) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(deltaapply_bin());
    cmd.env_remove("DELTAAPPLY_KEY");
    cmd.timeout(timeout);
    cmd
}

/// The `deltaapply` binary: `DELTAAPPLY_BIN`, else the one cargo built beside
/// `deltapack`, which must be newer than every source file of the deltaapply package
/// (a stale binary would test old code).
pub fn deltaapply_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("DELTAAPPLY_BIN") {
            return PathBuf::from(path);
        }
        let bin = Path::new(env!("CARGO_BIN_EXE_deltapack"))
            .with_file_name(format!("deltaapply{}", std::env::consts::EXE_SUFFIX));
        let how = "run `cargo test --workspace`, or `cargo build -p deltaapply-cli` (with this \
                   test's --release or --profile) before `cargo test -p deltapack`: cargo \
                   builds only the tested package's binaries";
        let built = std::fs::metadata(&bin)
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| panic!("no deltaapply binary at {} ({e}): {how}", bin.display()));
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let newest = ["../deltaapply", "../deltaapply-format"]
            .iter()
            .filter_map(|p| newest_file(&root.join(p)))
            .max();
        if let Some(newer) = newest.filter(|(t, _)| *t > built) {
            panic!(
                "{} is older than {}: {how}",
                bin.display(),
                newer.1.display()
            );
        }
        bin
    })
}

/// The most recently modified of `dir/Cargo.toml` and the `.rs` files under `dir/src`
/// (other files there, such as editors' swap files, are not built).
pub fn newest_file(dir: &Path) -> Option<(SystemTime, PathBuf)> {
    fn walk(path: &Path, newest: &mut Option<(SystemTime, PathBuf)>) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                walk(&entry.path(), newest);
            }
        } else if let Ok(t) = meta.modified()
            && (path.extension().is_some_and(|e| e == "rs") || path.ends_with("Cargo.toml"))
            && newest.as_ref().is_none_or(|(n, _)| t > *n)
        {
            *newest = Some((t, path.to_path_buf()));
        }
    }
    let mut newest = None;
    walk(&dir.join("src"), &mut newest);
    walk(&dir.join("Cargo.toml"), &mut newest);
    newest
}

/// Every file below `dir` with its bytes, sorted by path.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}
