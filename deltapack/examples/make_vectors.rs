//! Builds the committed test vectors of `format-spec/patch-v1.md` §10 in
//! `testdata/vectors/`: small inputs, a valid patch of each method, and corrupted or
//! forged copies that a decoder must reject, with `vectors.json` (what each case must
//! do) and `README.md` (the same, for people).
//!
//! ```text
//! cargo run -p deltapack --example make_vectors -- testdata/vectors
//! ```
//!
//! Everything is derived from fixed seeds and fixed settings, so two runs write the
//! same bytes (ed25519 signatures are deterministic too); `deltaapply-cli/tests/vectors.rs`
//! checks the vectors against the applier. Signed vectors use two test keys whose
//! seeds are published in `vectors.json`: they prove nothing about origin and must
//! never be trusted outside tests.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use deltaapply::container::{
    DiffCoding, FileId, HEADER_LEN, Header, SignatureSlot, StreamSizes, memory_bound,
};
use deltaapply::control::Op;
use deltaapply::{KeyId, Method, Origin, PublicKey, Sha256Digest};
use deltapack::Settings;
use deltapack::keys::{SecretKey, public_key_file};
use serde::Serialize;

#[path = "vectors_exe/mod.rs"]
mod vectors_exe;

// Field offsets of the v1 header (format-spec §3.2).
const VERSION_AT: usize = 8;
const HEADER_LEN_AT: usize = 10;
const METHOD_AT: usize = 12;
const WINDOW_LOG_AT: usize = 13;
const METHOD_FLAGS_AT: usize = 14;
const RESERVED_AT: usize = 15;
const SOURCE_SIZE_AT: usize = 16;
const TARGET_SIZE_AT: usize = 56;
const PAYLOAD_SIZE_AT: usize = 96;
const APPLY_MEMORY_AT: usize = 136;
const CONTROL_SIZE_AT: usize = 144;
const EXTRA_SIZE_AT: usize = 160;
const CHECKED_LEN: usize = 176;
const CHECK_AT: usize = 176;
const TARGET_SHA_AT: usize = 64;
const SIG_ALGORITHM_AT: usize = 192;
const SIG_RESERVED_AT: usize = 193;
const PUBLIC_KEY_AT: usize = 200;
const SIGNATURE_AT: usize = 232;

/// Exit codes of `deltaapply` (`deltaapply::exit`).
const BAD_PATCH: i32 = deltaapply_cli::exit::BAD_PATCH;
const WRONG_SOURCE: i32 = deltaapply_cli::exit::WRONG_SOURCE;
const LIMIT: i32 = deltaapply_cli::exit::LIMIT;
const UNTRUSTED: i32 = deltaapply_cli::exit::UNTRUSTED;

/// The test keys' public key files, and the strings their seeds are hashed from.
const TEST_KEY: &str = "test-key.pub";
const OTHER_KEY: &str = "other-key.pub";
const TEST_KEY_SEED: &str = "deltapack patch v1 test vectors: test key";
const OTHER_KEY_SEED: &str = "deltapack patch v1 test vectors: other key";

/// A huge declared size: far beyond any input, and beyond what any machine can allocate.
const HUGE: u64 = 1 << 63;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "testdata/vectors".into()));
    if args.next().is_some() {
        bail!("usage: make_vectors [DIR]");
    }
    let set = build()?;
    write(&dir, &set)?;
    let total: usize = set.files.values().map(Vec::len).sum();
    println!(
        "wrote {} files ({} bytes of inputs and patches) and {} cases to {}",
        set.files.len(),
        total,
        set.cases.len(),
        dir.display()
    );
    Ok(())
}

/// What a case must do when applied.
#[derive(Serialize, Clone, Copy)]
#[serde(untagged)]
enum Expect {
    /// `"ok"`: the output equals the case's `new` file.
    Ok(&'static str),
    /// The `deltaapply` exit code.
    Exit(i32),
}

/// One line of `vectors.json`.
#[derive(Serialize)]
struct Case {
    name: String,
    patch: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    old: Option<String>,
    /// `Limits::max_apply_memory`; absent means the default (1 GiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    max_apply_memory: Option<u64>,
    /// The public key file of the one key the applier trusts; absent means no trusted
    /// key (the origin is not verified).
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    expect: Expect,
    #[serde(skip_serializing_if = "Option::is_none")]
    new: Option<String>,
    /// The reference applier's error: `Error` variant, and `FormatError` variant for
    /// `Format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    /// A substring of the error message, where the variant alone does not say which
    /// check failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
    /// The spec rule the case exercises.
    rule: &'static str,
    description: String,
    /// The decoded header, for valid patches.
    #[serde(skip_serializing_if = "Option::is_none")]
    header: Option<HeaderDoc>,
    /// The origin the applier reports, for valid patches (`deltaapply::Origin`).
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<Origin>,
}

#[derive(Serialize)]
struct HeaderDoc {
    method: Method,
    window_log: u8,
    source: Option<FileId>,
    target: FileId,
    payload: FileId,
    streams: Option<StreamSizes>,
    apply_memory: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<SignatureDoc>,
}

/// The signature block of a valid signed patch.
#[derive(Serialize)]
struct SignatureDoc {
    algorithm: &'static str,
    public_key: PublicKey,
    key_id: KeyId,
}

/// A test key: its public key file and the seed anyone can sign with.
#[derive(Serialize)]
struct KeyDoc {
    file: &'static str,
    public_key: PublicKey,
    key_id: KeyId,
    /// The 32-byte ed25519 seed (RFC 8032 secret key), SHA-256 of `seed_from`.
    seed: Sha256Digest,
    seed_from: &'static str,
}

#[derive(Serialize)]
struct Index<'a> {
    format: &'static str,
    regenerate: &'static str,
    keys: &'a [KeyDoc],
    cases: &'a [Case],
}

/// Every file to write, and every case.
#[derive(Default)]
struct VectorSet {
    files: BTreeMap<String, Vec<u8>>,
    cases: Vec<Case>,
    variant: Option<&'static str>,
    /// The key file the next case trusts.
    key: Option<&'static str>,
    keys: Vec<KeyDoc>,
}

impl VectorSet {
    fn file(&mut self, name: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        ensure!(
            self.files.insert(name.to_string(), bytes).is_none(),
            "{name} written twice"
        );
        Ok(())
    }

    fn bytes(&self, name: &str) -> &[u8] {
        &self.files[name]
    }

    /// A case whose patch must apply and produce `new`.
    fn ok(
        &mut self,
        patch: &str,
        old: Option<&str>,
        new: &str,
        rule: &'static str,
        description: &str,
    ) -> anyhow::Result<()> {
        self.ok_limited(patch, old, new, None, rule, description)
    }

    fn ok_limited(
        &mut self,
        patch: &str,
        old: Option<&str>,
        new: &str,
        limit: Option<u64>,
        rule: &'static str,
        description: &str,
    ) -> anyhow::Result<()> {
        let bytes = self.bytes(patch);
        let h = Header::decode(bytes, bytes.len() as u64)
            .with_context(|| format!("{patch} must be valid"))?;
        ensure!(
            h.target.sha256 == Sha256Digest::of(self.bytes(new)),
            "{patch} does not make {new}"
        );
        if let (Some(src), Some(old)) = (h.source(), old) {
            ensure!(
                src.sha256 == Sha256Digest::of(self.bytes(old)),
                "{patch} is not for {old}"
            );
        }
        let signer = match h.signature {
            SignatureSlot::Unsigned => None,
            SignatureSlot::Ed25519 { public_key, .. } => {
                Some(PublicKey::from_bytes(public_key).context("the signer's key is valid")?)
            }
        };
        // Valid means accepted with this case's key, so the signer is the trusted key.
        let origin = match (self.key, signer) {
            (Some(file), Some(signer)) => {
                ensure!(
                    self.keys
                        .iter()
                        .any(|k| k.file == file && k.public_key == signer),
                    "{patch} is not signed by {file}"
                );
                Origin::Trusted {
                    key_id: signer.id(),
                }
            }
            (Some(file), None) => bail!("{patch} is unsigned: it cannot pass with {file}"),
            (None, signer) => Origin::Unverified {
                signed_by: signer.map(|k| k.id()),
            },
        };
        let header = HeaderDoc {
            method: h.method(),
            window_log: h.window_log,
            source: h.source(),
            target: h.target,
            payload: h.payload,
            streams: h.streams(),
            apply_memory: h.apply_memory,
            signature: signer.map(|k| SignatureDoc {
                algorithm: "ed25519",
                public_key: k,
                key_id: k.id(),
            }),
        };
        self.push(Case {
            name: String::new(),
            patch: patch.into(),
            old: old.map(Into::into),
            max_apply_memory: limit,
            key: None,
            expect: Expect::Ok("ok"),
            new: Some(new.into()),
            error: None,
            message: None,
            rule,
            description: description.into(),
            header: Some(header),
            origin: Some(origin),
        })
    }

    /// A case that must fail with `exit` and the reference error `error`.
    #[allow(clippy::too_many_arguments)]
    fn fail(
        &mut self,
        patch: &str,
        old: Option<&str>,
        limit: Option<u64>,
        exit: i32,
        error: &'static str,
        message: Option<&'static str>,
        rule: &'static str,
        description: &str,
    ) -> anyhow::Result<()> {
        self.push(Case {
            name: String::new(),
            patch: patch.into(),
            old: old.map(Into::into),
            max_apply_memory: limit,
            key: None,
            expect: Expect::Exit(exit),
            new: None,
            error: Some(error),
            message,
            rule,
            description: description.into(),
            header: None,
            origin: None,
        })
    }

    /// Adds a case, named after its patch, plus the pending variant name (from
    /// [`VectorSet::variant`]) when a patch is used by several cases, trusting the
    /// pending key (from [`VectorSet::trusting`]).
    fn push(&mut self, mut case: Case) -> anyhow::Result<()> {
        case.key = self.key.take().map(Into::into);
        ensure!(
            self.files.contains_key(&case.patch),
            "{} missing",
            case.patch
        );
        for f in case.old.iter().chain(&case.new).chain(&case.key) {
            ensure!(self.files.contains_key(f), "{f} missing");
        }
        let stem = case.patch.trim_end_matches(".dpatch");
        case.name = match self.variant.take() {
            Some(variant) => format!("{stem}/{variant}"),
            None => stem.to_string(),
        };
        ensure!(
            self.cases.iter().all(|c| c.name != case.name),
            "case {} twice: give it a variant name",
            case.name
        );
        self.cases.push(case);
        Ok(())
    }

    /// Names the next case `PATCH/variant`.
    fn variant(&mut self, variant: &'static str) -> &mut Self {
        self.variant = Some(variant);
        self
    }

    /// Makes the next case trust the key in `file` (one of [`VectorSet::keys`]).
    fn trusting(&mut self, file: &'static str) -> &mut Self {
        self.key = Some(file);
        self
    }

    /// A test key whose seed is SHA-256(`seed_from`), with its public key file.
    fn test_key(
        &mut self,
        file: &'static str,
        seed_from: &'static str,
    ) -> anyhow::Result<SecretKey> {
        let seed = Sha256Digest::of(seed_from.as_bytes());
        let key = SecretKey::from_seed(&seed.0);
        let public_key = key.public_key();
        self.file(file, public_key_file(&public_key).into_bytes())?;
        self.keys.push(KeyDoc {
            file,
            public_key,
            key_id: public_key.id(),
            seed,
            seed_from,
        });
        Ok(key)
    }
}

/// Deterministic pseudo-random numbers (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A pseudo-executable: a small header, a code section of 8-byte instructions, many
/// with 4-byte absolute pointers into the code or data sections, and a data section
/// of strings. `new` inserts twelve instructions in the middle of the code, so every
/// pointer to anything after them shifts by 96 bytes (what a recompiled binary looks
/// like to a differ), and changes two strings.
fn executable(new: bool) -> Vec<u8> {
    const BASE: u32 = 0x0040_0000;
    const HEADER: usize = 64;
    const CODE: usize = 256;
    const DATA: usize = 128;
    const INSERT_AT: usize = 128;
    const INSERTED: usize = 12;

    #[derive(Clone, Copy)]
    enum Insn {
        Call(usize),
        Load(u8, usize),
        Imm(u8, u8, u16),
        Ret,
    }
    let make = |rng: &mut Rng, code: usize| match rng.below(10) {
        0..=2 => Insn::Call(rng.below(code as u64) as usize),
        3..=5 => Insn::Load(rng.below(8) as u8, rng.below(DATA as u64) as usize),
        6..=8 => Insn::Imm(
            *rng.pick(&[0x01, 0x29, 0x31, 0x83, 0xb8]),
            rng.below(8) as u8,
            rng.below(64) as u16,
        ),
        _ => Insn::Ret,
    };
    let mut rng = Rng(0x5eed_0001);
    let mut code: Vec<Insn> = (0..CODE).map(|_| make(&mut rng, CODE)).collect();
    let mut strings: Vec<String> = (0..DATA)
        .map(|i| {
            let word = rng.pick(&["open", "read", "write", "close", "retry", "fail", "ok"]);
            format!("msg {i:03}: {word}")
        })
        .collect();
    if new {
        // Calls into code after the insertion point keep their callee: its index moves.
        for insn in &mut code {
            if let Insn::Call(t) = insn
                && *t >= INSERT_AT
            {
                *t += INSERTED;
            }
        }
        let mut rng = Rng(0x5eed_0002);
        let added: Vec<Insn> = (0..INSERTED)
            .map(|_| make(&mut rng, CODE + INSERTED))
            .collect();
        code.splice(INSERT_AT..INSERT_AT, added);
        strings[7] = "msg 007: reopen".into();
        strings[90] = "msg 090: v1.1".into();
    }

    let code_at = HEADER;
    let data_at = code_at + code.len() * 8;
    let addr = |offset: usize| BASE + offset as u32;
    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF\x01\x01\x01\0");
    out.extend_from_slice(&addr(code_at).to_le_bytes()); // entry point
    out.extend_from_slice(&(code_at as u32).to_le_bytes());
    out.extend_from_slice(&(data_at as u32).to_le_bytes());
    out.extend_from_slice(&(code.len() as u32).to_le_bytes());
    out.resize(HEADER, 0);
    for insn in &code {
        let bytes: [u8; 8] = match *insn {
            Insn::Call(t) => {
                let [a, b, c, d] = addr(code_at + 8 * t).to_le_bytes();
                [0xe8, 0, 0, 0, a, b, c, d]
            }
            Insn::Load(reg, k) => {
                let [a, b, c, d] = addr(data_at + 16 * k).to_le_bytes();
                [0x8b, reg, 0, 0, a, b, c, d]
            }
            Insn::Imm(op, reg, v) => {
                let [lo, hi] = v.to_le_bytes();
                [op, reg, lo, hi, 0, 0, 0, 0]
            }
            Insn::Ret => [0xc3, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90],
        };
        out.extend_from_slice(&bytes);
    }
    for s in &strings {
        let mut entry = [0u8; 16];
        entry[..s.len()].copy_from_slice(s.as_bytes());
        out.extend_from_slice(&entry);
    }
    out
}

/// Text: numbered configuration-like lines; `new` edits one line and inserts a
/// paragraph in the middle.
fn text(new: bool) -> Vec<u8> {
    let mut rng = Rng(0x5eed_0003);
    let keys = [
        "timeout", "retries", "mirror", "channel", "verify", "backoff",
    ];
    let values = [
        "30s",
        "5",
        "https://example.org/updates",
        "stable",
        "sha256",
        "2x",
    ];
    let mut lines: Vec<String> = (0..64)
        .map(|i| {
            format!(
                "{i:04} {} = {}  # set by the installer\n",
                rng.pick(&keys),
                rng.pick(&values)
            )
        })
        .collect();
    if new {
        lines[10] = "0010 channel = beta  # changed by the user\n".into();
        let paragraph = [
            "# Added in 1.1: patches are verified before they are applied,\n",
            "# and the old file is replaced only once the new one checks out.\n",
            "0032a verify = sha256\n",
            "0032b max_apply_memory = 32MiB\n",
        ];
        lines.splice(32..32, paragraph.iter().map(|s| s.to_string()));
    }
    lines.concat().into_bytes()
}

fn settings() -> Settings {
    Settings {
        level: 19,
        threads: 1,
        max_apply_memory: 1 << 30,
        // The vectors of revisions 1-4 stay byte-identical: no executable transform
        // (revision 5's vectors ask for it explicitly).
        transform: deltapack::exe::TransformChoice::None,
    }
}

/// One zstd frame (with its content size), as deltapack's encoders write them.
fn frame(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    Ok(zstd::bulk::compress(data, 19)?)
}

fn control(ops: &[(u64, u64, i64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(diff_len, extra_len, seek) in ops {
        Op {
            diff_len,
            extra_len,
            seek,
        }
        .encode(&mut out);
    }
    out
}

/// A bsdiff patch from already-compressed sections, with every header field
/// consistent (sizes, hashes, memory bound, `method_flags`, checksum): what a forger
/// would write. `coding` says how the diff section's content is coded.
fn bsdiff_patch(
    old: &[u8],
    target: FileId,
    window_log: u8,
    coding: DiffCoding,
    sections: [Vec<u8>; 3],
) -> Vec<u8> {
    let [control, diff, extra] = sections;
    let streams = StreamSizes {
        control: control.len() as u64,
        diff: diff.len() as u64,
        extra: extra.len() as u64,
        diff_coding: coding,
        transform: 0,
    };
    let payload = [control, diff, extra].concat();
    let header = Header::unsigned(
        Method::Bsdiff,
        window_log,
        Some(id(old)),
        target,
        id(&payload),
        Some(streams),
    );
    [header.encode().as_slice(), &payload].concat()
}

/// Control, diff and extra streams (uncompressed) that apply `ops` to turn `old`
/// into `new`, as §5.2.3 defines.
fn streams_for(old: &[u8], new: &[u8], ops: &[(u64, u64, i64)]) -> [Vec<u8>; 3] {
    let (mut cursor, mut written) = (0usize, 0usize);
    let (mut diff, mut extra) = (Vec::new(), Vec::new());
    for &(d, e, seek) in ops {
        for _ in 0..d {
            diff.push(new[written].wrapping_sub(old[cursor]));
            cursor += 1;
            written += 1;
        }
        extra.extend_from_slice(&new[written..written + e as usize]);
        written += e as usize;
        cursor = cursor.checked_add_signed(seek as isize).expect("in range");
    }
    assert_eq!(written, new.len());
    [control(ops), diff, extra]
}

/// The zero-run coding of a diff stream (format-spec §5.2.5), written from the spec
/// rather than with the library's `ZeroRunWriter`: pairs of varints (zero count,
/// literal count) and the literal bytes, every zero byte ending a literal run, so that
/// literals never hold a zero.
fn zero_run(diff: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = diff;
    while !rest.is_empty() {
        let zeros = rest.iter().position(|&b| b != 0).unwrap_or(rest.len());
        let literals = rest[zeros..]
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(rest.len() - zeros);
        varint(&mut out, zeros as u64);
        varint(&mut out, literals as u64);
        out.extend_from_slice(&rest[zeros..zeros + literals]);
        rest = &rest[zeros + literals..];
    }
    out
}

/// Minimal LEB128 (format-spec §5.2.2).
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn compress3(streams: &[Vec<u8>; 3]) -> anyhow::Result<[Vec<u8>; 3]> {
    Ok([
        frame(&streams[0])?,
        frame(&streams[1])?,
        frame(&streams[2])?,
    ])
}

fn id(bytes: &[u8]) -> FileId {
    FileId {
        size: bytes.len() as u64,
        sha256: Sha256Digest::of(bytes),
    }
}

/// Recomputes `header_check` the way §3.4 defines it: the first 16 bytes of the
/// SHA-256 of header bytes 0..176, stored at 176..192.
fn reseal(patch: &mut [u8]) {
    let digest = Sha256Digest::of(&patch[..CHECKED_LEN]);
    patch[CHECK_AT..CHECK_AT + 16].copy_from_slice(&digest.0[..16]);
}

fn get_u64(patch: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(patch[at..at + 8].try_into().expect("8 bytes"))
}

fn set_u64(patch: &mut [u8], at: usize, v: u64) {
    patch[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// `patch` with `edit` applied to its bytes.
fn edited(patch: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut p = patch.to_vec();
    edit(&mut p);
    p
}

/// `patch` with `edit` applied and the header checksum recomputed, so that the edited
/// field is what a decoder rejects.
fn resealed(patch: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    edited(patch, |p| {
        edit(p);
        reseal(p);
    })
}

fn build() -> anyhow::Result<VectorSet> {
    let mut v = VectorSet::default();
    let s = settings();

    // Inputs.
    let exe_old = executable(false);
    let exe_new = executable(true);
    let mut exe_wrong = exe_old.clone();
    exe_wrong[1000] ^= 0x01;
    let text_old = text(false);
    let text_new = text(true);
    let zeros_old = vec![0u8; 4096];
    let zeros_new = vec![0u8; 6144];
    // format-spec §5.2.4.
    let fox_old = b"The quick brown fox jumps over the lazy dog.".to_vec();
    let fox_new = b"The quick brown cat jumps over the lazy dog!!".to_vec();
    ensure!(fox_old.len() == 44 && fox_new.len() == 45);
    for (name, bytes) in [
        ("exe.old", &exe_old),
        ("exe.new", &exe_new),
        ("exe-wrong.old", &exe_wrong),
        ("text.old", &text_old),
        ("text.new", &text_new),
        ("zeros.old", &zeros_old),
        ("zeros.new", &zeros_new),
        ("fox.old", &fox_old),
        ("fox.new", &fox_new),
        ("empty.new", &Vec::new()),
    ] {
        v.file(name, bytes.clone())?;
    }

    // Valid patches, made by deltapack.
    let make = |m, old: &[u8], new: &[u8]| deltapack::make_one(m, old, new, &s);
    let bsdiff = make(Method::Bsdiff, &exe_old, &exe_new)?;
    let zstd_ref = make(Method::ZstdRef, &text_old, &text_new)?;
    let full = make(Method::Full, &[], &exe_new)?;
    v.file("bsdiff-valid.dpatch", bsdiff.clone())?;
    v.file("zstd-valid.dpatch", zstd_ref.clone())?;
    v.file("full-valid.dpatch", full.clone())?;
    v.file(
        "bsdiff-zeros-valid.dpatch",
        make(Method::Bsdiff, &zeros_old, &zeros_new)?,
    )?;
    v.file(
        "bsdiff-empty-target.dpatch",
        make(Method::Bsdiff, &exe_old, &[])?,
    )?;
    v.file("full-empty-target.dpatch", make(Method::Full, &[], &[])?)?;

    // The worked example of §5.2.4, built by hand from its records.
    let fox_ops = [(16, 3, 3), (25, 1, 0)];
    let fox_streams = streams_for(&fox_old, &fox_new, &fox_ops);
    ensure!(
        fox_streams[0] == [0x10, 0x03, 0x06, 0x19, 0x01, 0x00],
        "the spec's control stream"
    );
    let fox_target = id(&fox_new);
    let fox = bsdiff_patch(
        &fox_old,
        fox_target,
        10,
        DiffCoding::Plain,
        compress3(&fox_streams)?,
    );
    v.file("bsdiff-spec-example.dpatch", fox.clone())?;

    // The same, with the diff stream zero-run coded (§5.2.5): forced here, whatever
    // deltapack would choose, so that the set always has a valid patch of each coding.
    ensure!(
        zero_run(&[0, 0, 0, 7, 5, 0, 0]) == [3, 2, 7, 5, 2, 0],
        "the spec's zero-run example"
    );
    let fox_coded = zero_run(&fox_streams[1]);
    ensure!(
        fox_coded == [0x28, 0x01, 0xf3],
        "the fox diff stream, zero-run coded"
    );
    let mut library_coded = Vec::new();
    let mut writer = deltaapply::control::ZeroRunWriter::default();
    writer.push(&fox_streams[1][..16], &mut library_coded);
    writer.push(&fox_streams[1][16..], &mut library_coded);
    writer.finish(&mut library_coded);
    ensure!(
        library_coded == fox_coded,
        "ZeroRunWriter codes as §5.2.5 says"
    );
    let zero_run_sections = |coded: &[u8]| -> anyhow::Result<[Vec<u8>; 3]> {
        Ok([
            frame(&fox_streams[0])?,
            frame(coded)?,
            frame(&fox_streams[2])?,
        ])
    };
    v.file(
        "bsdiff-zero-run-example.dpatch",
        bsdiff_patch(
            &fox_old,
            fox_target,
            10,
            DiffCoding::ZeroRun,
            zero_run_sections(&fox_coded)?,
        ),
    )?;
    // One pair whose literals are the whole diff stream, zeros included: valid, though
    // deltapack never writes zeros as literals.
    let mut literal_zeros = vec![0x00, 41];
    literal_zeros.extend_from_slice(&fox_streams[1]);
    v.file(
        "bsdiff-zero-run-literal-zeros.dpatch",
        bsdiff_patch(
            &fox_old,
            fox_target,
            10,
            DiffCoding::ZeroRun,
            zero_run_sections(&literal_zeros)?,
        ),
    )?;

    let bs = Some("exe.old");
    v.ok(
        "bsdiff-valid.dpatch",
        bs,
        "exe.new",
        "§5.2",
        "bsdiff patch made by deltapack: a pseudo-executable whose 4-byte pointers shift after an insertion",
    )?;
    v.ok(
        "zstd-valid.dpatch",
        Some("text.old"),
        "text.new",
        "§5.3",
        "zstd reference patch made by deltapack: text with an edited line and an inserted paragraph",
    )?;
    v.ok(
        "full-valid.dpatch",
        None,
        "exe.new",
        "§5.4",
        "full image made by deltapack; needs no old file",
    )?;
    v.ok(
        "bsdiff-zeros-valid.dpatch",
        Some("zeros.old"),
        "zeros.new",
        "§5.2",
        "bsdiff patch from 4096 to 6144 zero bytes",
    )?;
    v.ok(
        "bsdiff-empty-target.dpatch",
        bs,
        "empty.new",
        "§5.2.3",
        "bsdiff patch to an empty file: an empty control stream is valid",
    )?;
    v.ok(
        "full-empty-target.dpatch",
        None,
        "empty.new",
        "§5.4",
        "full image of an empty file: a frame with content size 0",
    )?;
    v.ok(
        "bsdiff-spec-example.dpatch",
        Some("fox.old"),
        "fox.new",
        "§5.2.4",
        "the worked example, built by hand from its control records (16, 3, +3), (25, 1, 0); \
         plain diff stream",
    )?;
    v.ok(
        "bsdiff-zero-run-example.dpatch",
        Some("fox.old"),
        "fox.new",
        "§5.2.5",
        "the worked example with its diff stream zero-run coded (method_flags 01): 28 01 F3, \
         one pair (40, 1, F3) that spans both control records",
    )?;
    v.ok(
        "bsdiff-zero-run-literal-zeros.dpatch",
        Some("fox.old"),
        "fox.new",
        "§5.2.5",
        "the worked example, zero-run coded as the single pair (0, 41) whose literals are \
         the whole diff stream: literal bytes may be zero",
    )?;
    v.variant("with-old").ok(
        "full-valid.dpatch",
        Some("exe.old"),
        "exe.new",
        "§5.4",
        "a full image ignores an old file that is given",
    )?;
    let bsdiff_memory = get_u64(&bsdiff, APPLY_MEMORY_AT);
    v.variant("limit-equal").ok_limited(
        "bsdiff-valid.dpatch",
        bs,
        "exe.new",
        Some(bsdiff_memory),
        "§4 L1",
        "memory limit exactly apply_memory: accepted",
    )?;

    // Limits and old files.
    v.variant("limit-below").fail(
        "bsdiff-valid.dpatch",
        bs,
        Some(bsdiff_memory - 1),
        LIMIT,
        "MemoryLimit",
        None,
        "§4 L1",
        "memory limit one byte below apply_memory",
    )?;
    let zstd_memory = get_u64(&zstd_ref, APPLY_MEMORY_AT);
    v.variant("limit-below").fail(
        "zstd-valid.dpatch",
        Some("text.old"),
        Some(zstd_memory - 1),
        LIMIT,
        "MemoryLimit",
        None,
        "§4 L1",
        "memory limit one byte below apply_memory (which includes the old file's size)",
    )?;
    v.variant("no-old").fail(
        "bsdiff-valid.dpatch",
        None,
        None,
        WRONG_SOURCE,
        "MissingSource",
        None,
        "§6 S1",
        "no old file given",
    )?;
    v.variant("wrong-old").fail(
        "bsdiff-valid.dpatch",
        Some("exe-wrong.old"),
        None,
        WRONG_SOURCE,
        "WrongSource",
        None,
        "§6 S3",
        "old file with one bit changed (same size, different SHA-256)",
    )?;
    v.variant("wrong-old-size").fail(
        "zstd-valid.dpatch",
        Some("exe.old"),
        None,
        WRONG_SOURCE,
        "WrongSource",
        None,
        "§6 S2",
        "a different old file (different size)",
    )?;

    // Header corruptions of bsdiff-valid.
    let mut corrupt = |name: &str,
                       bytes: Vec<u8>,
                       old: Option<&str>,
                       exit: i32,
                       error: &'static str,
                       rule: &'static str,
                       description: &str|
     -> anyhow::Result<()> {
        v.file(name, bytes)?;
        v.fail(name, old, None, exit, error, None, rule, description)
    };
    corrupt(
        "truncated-header.dpatch",
        bsdiff[..100].to_vec(),
        bs,
        BAD_PATCH,
        "Format/TruncatedHeader",
        "§6 H0",
        "the first 100 bytes of bsdiff-valid",
    )?;
    corrupt(
        "truncated-payload.dpatch",
        bsdiff[..bsdiff.len() - 1].to_vec(),
        bs,
        BAD_PATCH,
        "Format/WrongFileLength",
        "§6 H13",
        "bsdiff-valid without its last byte",
    )?;
    corrupt(
        "trailing-bytes.dpatch",
        [bsdiff.as_slice(), &[0]].concat(),
        bs,
        BAD_PATCH,
        "Format/WrongFileLength",
        "§6 H13",
        "bsdiff-valid with one 00 byte appended",
    )?;
    corrupt(
        "bad-magic.dpatch",
        edited(&bsdiff, |p| p[1] = b'd'),
        bs,
        BAD_PATCH,
        "Format/BadMagic",
        "§6 H1",
        "magic bytes `89 64 50 41 54 43 48 0a` (`\\x89dPATCH\\n`) instead of `\\x89DPATCH\\n`",
    )?;
    corrupt(
        "unknown-version.dpatch",
        resealed(&bsdiff, |p| p[VERSION_AT] = 2),
        bs,
        BAD_PATCH,
        "Format/UnsupportedVersion",
        "§8",
        "version 2, header_check recomputed: the version is what is rejected",
    )?;
    corrupt(
        "bad-header-len.dpatch",
        resealed(&bsdiff, |p| p[HEADER_LEN_AT] = 41), // 297
        bs,
        BAD_PATCH,
        "Format/BadHeaderLength",
        "§6 H3",
        "header_len 297, header_check recomputed",
    )?;
    corrupt(
        "header-bitflip.dpatch",
        edited(&bsdiff, |p| p[TARGET_SIZE_AT] ^= 0x01),
        bs,
        BAD_PATCH,
        "Format/HeaderChecksum",
        "§3.4 H4",
        "one bit of target_size flipped, header_check not updated",
    )?;
    corrupt(
        "unknown-method.dpatch",
        resealed(&bsdiff, |p| p[METHOD_AT] = 9),
        bs,
        BAD_PATCH,
        "Format/UnknownMethod",
        "§6 H5",
        "method 9, header_check recomputed",
    )?;
    corrupt(
        "reserved-nonzero.dpatch",
        resealed(&bsdiff, |p| p[RESERVED_AT] = 1),
        bs,
        BAD_PATCH,
        "Format/ReservedNotZero",
        "§6 H6",
        "reserved byte 15 set to 01, header_check recomputed",
    )?;
    corrupt(
        "signature-nonzero.dpatch",
        edited(&bsdiff, |p| p[SIGNATURE_AT] = 1),
        bs,
        BAD_PATCH,
        "Format/BadSignatureBlock",
        "§3.5 H8",
        "unsigned patch with a non-zero byte in its signature block",
    )?;
    corrupt(
        "signature-algorithm-2.dpatch",
        edited(&bsdiff, |p| p[SIG_ALGORITHM_AT] = 2),
        bs,
        BAD_PATCH,
        "Format/BadSignatureBlock",
        "§3.5 H8",
        "sig_algorithm 2 (unassigned)",
    )?;
    corrupt(
        "window-log-9.dpatch",
        resealed(&bsdiff, |p| p[WINDOW_LOG_AT] = 9),
        bs,
        BAD_PATCH,
        "Format/BadField",
        "§6 H9",
        "window_log 9, header_check recomputed",
    )?;
    corrupt(
        "window-log-32.dpatch",
        resealed(&bsdiff, |p| p[WINDOW_LOG_AT] = 32),
        bs,
        BAD_PATCH,
        "Format/BadField",
        "§6 H9",
        "window_log 32, header_check recomputed",
    )?;
    corrupt(
        "full-with-source.dpatch",
        resealed(&full, |p| set_u64(p, SOURCE_SIZE_AT, exe_old.len() as u64)),
        None,
        BAD_PATCH,
        "Format/BadField",
        "§3.3 H10",
        "full-valid with a non-zero source_size, header_check recomputed",
    )?;
    corrupt(
        "stream-sizes-mismatch.dpatch",
        resealed(&bsdiff, |p| {
            let control = get_u64(p, CONTROL_SIZE_AT);
            set_u64(p, CONTROL_SIZE_AT, control + 1);
        }),
        bs,
        BAD_PATCH,
        "Format/BadField",
        "§3.3 H11",
        "control_size + diff_size + extra_size = payload_size + 1, header_check recomputed",
    )?;
    corrupt(
        "apply-memory-mismatch.dpatch",
        resealed(&bsdiff, |p| set_u64(p, APPLY_MEMORY_AT, bsdiff_memory + 1)),
        bs,
        BAD_PATCH,
        "Format/BadField",
        "§4 H12",
        "apply_memory one above the formula, header_check recomputed",
    )?;
    let mid = HEADER_LEN + (bsdiff.len() - HEADER_LEN) / 2;
    corrupt(
        "payload-bitflip.dpatch",
        edited(&bsdiff, |p| p[mid] ^= 0x10),
        bs,
        BAD_PATCH,
        "Format/PayloadHash",
        "§6 P1",
        "one bit flipped in the middle of bsdiff-valid's payload",
    )?;

    // Huge declared sizes, each with every other field consistent: rejected without
    // allocating or writing anything sized by them.
    corrupt(
        "huge-declared-size.dpatch",
        resealed(&bsdiff, |p| set_u64(p, TARGET_SIZE_AT, HUGE)),
        bs,
        BAD_PATCH,
        "Corrupt",
        "§5.2.3 B5",
        "bsdiff-valid with target_size 2^63 (apply_memory does not depend on it): the \
         control stream ends after writing the real size",
    )?;
    corrupt(
        "huge-payload-size.dpatch",
        resealed(&bsdiff, |p| {
            let extra = get_u64(p, EXTRA_SIZE_AT);
            let payload = get_u64(p, PAYLOAD_SIZE_AT);
            set_u64(p, PAYLOAD_SIZE_AT, HUGE);
            set_u64(p, EXTRA_SIZE_AT, extra + (HUGE - payload));
        }),
        bs,
        BAD_PATCH,
        "Format/WrongFileLength",
        "§3.3 H13",
        "bsdiff-valid with payload_size 2^63 (stream sizes still add up)",
    )?;
    corrupt(
        "full-huge-target-size.dpatch",
        resealed(&full, |p| {
            set_u64(p, TARGET_SIZE_AT, HUGE);
            let memory = memory_bound(Method::Full, p[WINDOW_LOG_AT], 0, HUGE);
            set_u64(p, APPLY_MEMORY_AT, memory);
        }),
        None,
        BAD_PATCH,
        "Corrupt",
        "§5.4 D1",
        "full-valid with target_size 2^63 and apply_memory recomputed (the window caps it): \
         the frame's content size disagrees, nothing is allocated for 2^63 bytes",
    )?;
    let text_len = text_old.len() as u64;
    let huge_source = resealed(&zstd_ref, |p| {
        let window_log = p[WINDOW_LOG_AT];
        let target = get_u64(p, TARGET_SIZE_AT);
        set_u64(p, SOURCE_SIZE_AT, HUGE);
        let memory = memory_bound(Method::ZstdRef, window_log, HUGE, target);
        set_u64(p, APPLY_MEMORY_AT, memory);
    });
    ensure!(text_len < HUGE);
    v.file("zstd-huge-source-size.dpatch", huge_source)?;
    v.fail(
        "zstd-huge-source-size.dpatch",
        Some("text.old"),
        None,
        LIMIT,
        "MemoryLimit",
        None,
        "§4 L1",
        "zstd-valid with source_size 2^63 and apply_memory recomputed: over the default limit",
    )?;
    v.variant("no-limit").fail(
        "zstd-huge-source-size.dpatch",
        Some("text.old"),
        Some(u64::MAX),
        WRONG_SOURCE,
        "WrongSource",
        None,
        "§6 S2",
        "the same with no memory limit: the old file's size is checked before anything \
         is allocated for it",
    )?;

    // method_flags (header byte 14) outside what the method allows.
    let unknown_flags = bsdiff[METHOD_FLAGS_AT] | 0x02;
    v.file(
        "method-flags-unknown-bit.dpatch",
        resealed(&bsdiff, |p| p[METHOD_FLAGS_AT] = unknown_flags),
    )?;
    v.fail(
        "method-flags-unknown-bit.dpatch",
        bs,
        None,
        BAD_PATCH,
        "Format/BadField",
        Some("method_flags"),
        "§3.3 H11a",
        &format!(
            "bsdiff-valid with method_flags {unknown_flags:02X} (bit 1, unassigned, set), \
             header_check recomputed"
        ),
    )?;
    v.file(
        "full-method-flags.dpatch",
        resealed(&full, |p| p[METHOD_FLAGS_AT] = 0x01),
    )?;
    v.fail(
        "full-method-flags.dpatch",
        None,
        None,
        BAD_PATCH,
        "Format/BadField",
        Some("method_flags"),
        "§3.3 H11a",
        "full-valid with method_flags 01 (zero-run diff, a bsdiff flag), header_check \
         recomputed",
    )?;

    // Forged bsdiff payloads: hashes, stream sizes and checksum all consistent, so only
    // decoding can catch them. All start from the worked example.
    let fox_frames = compress3(&fox_streams)?;
    let [fox_control, fox_diff, fox_extra] = fox_streams.clone();
    let mut forged = |name: &str,
                      target: FileId,
                      coding: DiffCoding,
                      sections: [Vec<u8>; 3],
                      error: &'static str,
                      message: &'static str,
                      rule: &'static str,
                      description: &str|
     -> anyhow::Result<()> {
        v.file(name, bsdiff_patch(&fox_old, target, 10, coding, sections))?;
        v.fail(
            name,
            Some("fox.old"),
            None,
            BAD_PATCH,
            error,
            Some(message).filter(|m| !m.is_empty()),
            rule,
            description,
        )
    };
    let extra_bang = [fox_extra.as_slice(), b"!"].concat();
    forged(
        "control-overrun.dpatch",
        fox_target,
        DiffCoding::Plain,
        [
            frame(&control(&[(16, 3, 3), (25, 2, 0)]))?,
            fox_frames[1].clone(),
            frame(&extra_bang)?,
        ],
        "Corrupt",
        "writes past the target size",
        "§5.2.3 B1",
        "control records (16, 3, +3), (25, 2, 0) write 46 bytes into a 45-byte target",
    )?;
    forged(
        "control-read-overrun.dpatch",
        fox_target,
        DiffCoding::Plain,
        [
            frame(&control(&[(16, 3, 3), (26, 0, 0)]))?,
            frame(&[fox_diff.as_slice(), &[0]].concat())?,
            fox_frames[2].clone(),
        ],
        "Corrupt",
        "beyond the old size",
        "§5.2.3 B2",
        "control records (16, 3, +3), (26, 0, 0) read old bytes 19..45 of a 44-byte file",
    )?;
    forged(
        "control-seek-overrun.dpatch",
        fox_target,
        DiffCoding::Plain,
        [
            frame(&control(&[(16, 3, -20), (25, 1, 0)]))?,
            fox_frames[1].clone(),
            fox_frames[2].clone(),
        ],
        "Corrupt",
        "seeks the old cursor outside",
        "§5.2.3 B4",
        "control record (16, 3, -20) moves the old cursor to -4",
    )?;
    forged(
        "control-short.dpatch",
        fox_target,
        DiffCoding::Plain,
        [
            frame(&control(&[(16, 3, 3)]))?,
            frame(&fox_diff[..16])?,
            frame(&fox_extra[..3])?,
        ],
        "Corrupt",
        "control stream produces 19 bytes",
        "§5.2.3 B5",
        "the control stream ends after 19 of 45 target bytes",
    )?;
    forged(
        "diff-leftover.dpatch",
        fox_target,
        DiffCoding::Plain,
        [
            fox_frames[0].clone(),
            frame(&[fox_diff.as_slice(), &[0]].concat())?,
            fox_frames[2].clone(),
        ],
        "Corrupt",
        "diff stream has bytes left over",
        "§5.2.3 B6",
        "the diff stream has one byte more than the control stream uses",
    )?;
    forged(
        "extra-short.dpatch",
        fox_target,
        DiffCoding::Plain,
        [
            fox_frames[0].clone(),
            fox_frames[1].clone(),
            frame(&fox_extra[..3])?,
        ],
        "Corrupt",
        "extra stream ends early",
        "§5.2.3 B3",
        "the extra stream is one byte shorter than the control stream needs",
    )?;
    forged(
        "control-bad-varint.dpatch",
        fox_target,
        DiffCoding::Plain,
        [
            frame(&[[0x80, 0x00].as_slice(), &fox_control[1..]].concat())?,
            fox_frames[1].clone(),
            fox_frames[2].clone(),
        ],
        "Corrupt",
        "malformed varint",
        "§5.2.2",
        "the first varint is the non-minimal 80 00",
    )?;
    forged(
        "control-truncated-record.dpatch",
        fox_target,
        DiffCoding::Plain,
        [
            frame(&fox_control[..5])?,
            fox_frames[1].clone(),
            fox_frames[2].clone(),
        ],
        "Corrupt",
        "ends inside record 1",
        "§5.2.2",
        "the control stream stops after two of the second record's three varints",
    )?;
    forged(
        "empty-section.dpatch",
        fox_target,
        DiffCoding::Plain,
        [Vec::new(), fox_frames[1].clone(), fox_frames[2].clone()],
        "Corrupt",
        "control stream",
        "§5.2.1",
        "control_size 0: an empty section is not a zstd frame",
    )?;
    let skippable = [0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
    forged(
        "bsdiff-skippable-frame.dpatch",
        fox_target,
        DiffCoding::Plain,
        [
            fox_frames[0].clone(),
            [fox_frames[1].as_slice(), &skippable].concat(),
            fox_frames[2].clone(),
        ],
        "Corrupt",
        "",
        "§5.1",
        "the diff section is its frame followed by a 12-byte skippable frame",
    )?;
    forged(
        "wrong-target-hash.dpatch",
        FileId {
            size: fox_target.size,
            sha256: Sha256Digest::of(b"not the target"),
        },
        DiffCoding::Plain,
        fox_frames.clone(),
        "TargetMismatch",
        "nothing was written",
        "§6 T1",
        "decodes cleanly, but the output does not hash to target_sha256",
    )?;

    // Forged zero-run coded diff streams (§5.2.5), from the worked example whose diff
    // stream (40 × 00, F3) codes as 28 01 F3.
    let zr = DiffCoding::ZeroRun;
    forged(
        "zero-run-empty-pair.dpatch",
        fox_target,
        zr,
        zero_run_sections(&[0x00, 0x00, 0x28, 0x01, 0xf3])?,
        "Corrupt",
        "expands to nothing",
        "§5.2.5 Z3",
        "the coded diff stream 00 00 28 01 F3 starts with the pair (0, 0)",
    )?;
    forged(
        "zero-run-truncated-varint.dpatch",
        fox_target,
        zr,
        zero_run_sections(&[0x28, 0x81])?,
        "Corrupt",
        "ends inside",
        "§5.2.5 Z2",
        "the coded diff stream 28 81 ends inside the literal count's varint",
    )?;
    forged(
        "zero-run-truncated-literals.dpatch",
        fox_target,
        zr,
        zero_run_sections(&[0x28, 0x01])?,
        "Corrupt",
        "diff stream ends early",
        "§5.2.5 Z2",
        "the coded diff stream 28 01 ends before the pair's literal byte, which the second \
         control record needs",
    )?;
    forged(
        "zero-run-bad-varint.dpatch",
        fox_target,
        zr,
        zero_run_sections(&[0xa8, 0x00, 0x01, 0xf3])?,
        "Corrupt",
        "malformed varint",
        "§5.2.5 Z1",
        "the coded diff stream A8 00 01 F3: the zero count 40 as the non-minimal varint A8 00",
    )?;
    forged(
        "zero-run-leftover.dpatch",
        fox_target,
        zr,
        zero_run_sections(&[0x28, 0x01, 0xf3, 0x05, 0x00])?,
        "Corrupt",
        "diff stream has bytes left over",
        "§5.2.5 Z4",
        "the coded diff stream 28 01 F3 05 00: a complete pair (5, 0) after the last byte the \
         control stream uses",
    )?;
    forged(
        "zero-run-leftover-literal.dpatch",
        fox_target,
        zr,
        zero_run_sections(&[0x28, 0x02, 0xf3, 0x00])?,
        "Corrupt",
        "diff stream has bytes left over",
        "§5.2.5 Z4",
        "the coded diff stream 28 02 F3 00: the control stream ends with the pair's second \
         literal unread",
    )?;
    // Records (16, 3, +3), (24, 2, 0) also make fox.new, with a diff stream of 40 zeros
    // (coded 28 00) and the extra stream `cat!!`.
    let alt_ops = [(16, 3, 3), (24, 2, 0)];
    let alt = streams_for(&fox_old, &fox_new, &alt_ops);
    ensure!(
        alt[1] == [0; 40] && alt[2] == b"cat!!",
        "the alternative records"
    );
    ensure!(zero_run(&alt[1]) == [0x28, 0x00]);
    forged(
        "zero-run-leftover-zeros.dpatch",
        fox_target,
        zr,
        [frame(&alt[0])?, frame(&[0x29, 0x00])?, frame(&alt[2])?],
        "Corrupt",
        "diff stream has bytes left over",
        "§5.2.5 Z4",
        "records (16, 3, +3), (24, 2, 0) read 40 diff bytes; the coded diff stream 29 00 is \
         one pair of 41 zeros, so one is left when the control stream ends",
    )?;

    // Forged single-frame payloads.
    let full_window = full[WINDOW_LOG_AT];
    let mut forged_full = |name: &str,
                           target: &[u8],
                           window_log: u8,
                           payload: Vec<u8>,
                           message: Option<&'static str>,
                           rule: &'static str,
                           description: &str|
     -> anyhow::Result<()> {
        let target = id(target);
        let header = Header::unsigned(Method::Full, window_log, None, target, id(&payload), None);
        v.file(name, [header.encode().as_slice(), &payload].concat())?;
        v.fail(
            name,
            None,
            None,
            BAD_PATCH,
            "Corrupt",
            message,
            rule,
            description,
        )
    };
    forged_full(
        "full-no-content-size.dpatch",
        &exe_new,
        full_window,
        zstd::encode_all(exe_new.as_slice(), 19)?,
        Some("does not declare its content size"),
        "§5.4 D1",
        "a frame without Frame_Content_Size (streaming compression)",
    )?;
    forged_full(
        "full-skippable-frame-only.dpatch",
        &[],
        10,
        vec![0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef],
        Some("does not start with a zstd frame"),
        "§5.1",
        "an empty target whose payload is a skippable frame instead of a zstd frame",
    )?;
    // 256 KiB, so that the frame cannot fit the applier's 128 KiB output buffer: with a
    // frame that fits, libzstd decodes in one pass without checking windowLogMax.
    let big_zeros = vec![0u8; 256 << 10];
    let big_frame = frame(&big_zeros)?;
    forged_full(
        "full-window-too-large.dpatch",
        &big_zeros,
        10,
        big_frame,
        Some("window, above the 2^10 the header allows"),
        "§5.1",
        "a single-segment frame of 256 KiB of zeros (window = content size = 2^18) under a \
         header that says window_log 10",
    )?;
    forged_full(
        "full-trailing-garbage.dpatch",
        &exe_new,
        full_window,
        [&full[HEADER_LEN..], b"garbage".as_slice()].concat(),
        None,
        "§5.1",
        "full-valid's frame followed by 7 bytes that are not a frame",
    )?;
    forged_full(
        "full-two-frames.dpatch",
        &exe_new,
        full_window,
        [&full[HEADER_LEN..], frame(&[])?.as_slice()].concat(),
        None,
        "§5.1",
        "full-valid's frame followed by a second, empty frame: the output is right, but a \
         payload is exactly one frame",
    )?;

    signed_vectors(&mut v, &bsdiff)?;
    vectors_exe::vectors(&mut v)?;

    check(&v)?;
    Ok(v)
}

/// The group-order of ed25519, `L = 2^252 + 27742317777372353535851937790883648493`,
/// little-endian (RFC 8032 §5.1).
const ED25519_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// Signed patches (§3.5), all from `bsdiff-valid`: one valid, the rest forged or
/// damaged after signing, each applied with the test key trusted and with no key.
fn signed_vectors(v: &mut VectorSet, bsdiff: &[u8]) -> anyhow::Result<()> {
    let test = v.test_key(TEST_KEY, TEST_KEY_SEED)?;
    let other = v.test_key(OTHER_KEY, OTHER_KEY_SEED)?;
    let sign = |key: &SecretKey, patch: &[u8]| -> anyhow::Result<Vec<u8>> {
        let mut p = patch.to_vec();
        key.sign_patch(&mut p)?;
        Ok(p)
    };
    let signed = sign(&test, bsdiff)?;
    ensure!(signed[SIG_ALGORITHM_AT] == 1 && signed[HEADER_LEN..] == bsdiff[HEADER_LEN..]);
    let bs = Some("exe.old");
    let memory = get_u64(bsdiff, APPLY_MEMORY_AT);

    v.file("bsdiff-signed.dpatch", signed.clone())?;
    v.trusting(TEST_KEY).ok(
        "bsdiff-signed.dpatch",
        bs,
        "exe.new",
        "§3.5",
        "bsdiff-valid signed by the test key, which the applier trusts",
    )?;
    v.variant("no-key").ok(
        "bsdiff-signed.dpatch",
        bs,
        "exe.new",
        "§3.5",
        "the same with no trusted key: applies, origin unverified (the signature is checked \
         against the key the patch carries)",
    )?;
    v.variant("other-key").trusting(OTHER_KEY).fail(
        "bsdiff-signed.dpatch",
        bs,
        None,
        UNTRUSTED,
        "Untrusted/UntrustedPatchKey",
        Some("not trusted"),
        "§3.5 G2",
        "signed by the test key, but only the other key is trusted",
    )?;
    v.variant("limit-below").trusting(TEST_KEY).fail(
        "bsdiff-signed.dpatch",
        bs,
        Some(memory - 1),
        LIMIT,
        "MemoryLimit",
        None,
        "§6 G, L1",
        "trusted signature, memory limit one byte below apply_memory: the origin check \
         passes, then the limit applies",
    )?;
    v.variant("key-required").trusting(TEST_KEY).fail(
        "bsdiff-valid.dpatch",
        bs,
        None,
        UNTRUSTED,
        "Untrusted/Unsigned",
        None,
        "§3.5 G1",
        "the unsigned bsdiff-valid while the test key is trusted",
    )?;

    let foreign = sign(&other, bsdiff)?;
    v.file("signed-other-key.dpatch", foreign)?;
    v.trusting(TEST_KEY).fail(
        "signed-other-key.dpatch",
        bs,
        None,
        UNTRUSTED,
        "Untrusted/UntrustedPatchKey",
        Some("not trusted"),
        "§3.5 G2",
        "bsdiff-valid validly signed by the other key; the test key is trusted",
    )?;
    v.variant("before-limit-and-old").trusting(TEST_KEY).fail(
        "signed-other-key.dpatch",
        Some("exe-wrong.old"),
        Some(0),
        UNTRUSTED,
        "Untrusted/UntrustedPatchKey",
        None,
        "§6 G precedes L, S",
        "the same with a memory limit of 0 and the wrong old file: the origin check comes \
         first",
    )?;
    v.variant("no-key").ok(
        "signed-other-key.dpatch",
        bs,
        "exe.new",
        "§3.5",
        "the same with no trusted key: applies, origin unverified, signed by the other key",
    )?;

    // Damage after signing: refused with and without a trusted key.
    let mut both = |name: &str,
                    bytes: Vec<u8>,
                    exit: i32,
                    with_key: &'static str,
                    without_key: &'static str,
                    rule: &'static str,
                    description: &str|
     -> anyhow::Result<()> {
        v.file(name, bytes)?;
        v.trusting(TEST_KEY)
            .fail(name, bs, None, exit, with_key, None, rule, description)?;
        v.variant("no-key").fail(
            name,
            bs,
            None,
            exit,
            without_key,
            None,
            rule,
            &format!("{description}; no trusted key"),
        )
    };
    both(
        "signed-signature-bitflip.dpatch",
        edited(&signed, |p| p[SIGNATURE_AT + 40] ^= 0x01),
        UNTRUSTED,
        "Untrusted/BadPatchSignature",
        "Untrusted/BadPatchSignature",
        "§3.5 G3",
        "bsdiff-signed with one bit of the signature's S flipped",
    )?;
    both(
        "signed-pubkey-bitflip.dpatch",
        edited(&signed, |p| p[PUBLIC_KEY_AT] ^= 0x01),
        UNTRUSTED,
        "Untrusted/UntrustedPatchKey",
        "Untrusted/BadPatchSignature",
        "§3.5 G2, G3",
        "bsdiff-signed with one bit of public_key flipped: not the trusted key, and not the \
         key that signed",
    )?;
    both(
        "signed-header-resealed.dpatch",
        resealed(&signed, |p| p[TARGET_SHA_AT] ^= 0x01),
        UNTRUSTED,
        "Untrusted/BadPatchSignature",
        "Untrusted/BadPatchSignature",
        "§3.5 G3",
        "bsdiff-signed with one bit of target_sha256 flipped and header_check recomputed: \
         the checksum passes, the signature does not",
    )?;
    let mut non_canonical = signed.clone();
    let mut carry = 0u16;
    for (i, l) in ED25519_L.iter().enumerate() {
        let sum = u16::from(non_canonical[SIGNATURE_AT + 32 + i]) + u16::from(*l) + carry;
        non_canonical[SIGNATURE_AT + 32 + i] = sum as u8;
        carry = sum >> 8;
    }
    ensure!(carry == 0, "S + L fits 32 bytes");
    both(
        "signed-non-canonical-s.dpatch",
        non_canonical,
        UNTRUSTED,
        "Untrusted/BadPatchSignature",
        "Untrusted/BadPatchSignature",
        "§3.5 G3 (strict)",
        "bsdiff-signed with the signature's S replaced by S + L: the same scalar mod L, \
         which lax verifiers accept; strict verification requires S < L",
    )?;
    // The identity point as the key and as R, with S = 0: [S]B = R + [k]A holds for
    // every message, so a verifier that accepts small-order keys accepts this forgery.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    both(
        "signed-weak-key.dpatch",
        edited(bsdiff, |p| {
            p[SIG_ALGORITHM_AT] = 1;
            p[PUBLIC_KEY_AT..SIGNATURE_AT].copy_from_slice(&identity);
            p[SIGNATURE_AT..SIGNATURE_AT + 32].copy_from_slice(&identity);
            p[SIGNATURE_AT + 32..HEADER_LEN].fill(0);
        }),
        UNTRUSTED,
        "Untrusted/UntrustedPatchKey",
        "Untrusted/BadPatchSignature",
        "§3.5 G3 (strict)",
        "public_key and R the identity point (small order), S = 0: a \"signature\" that \
         verifies for any message under cofactored or lax rules; strict verification \
         rejects small-order keys",
    )?;
    both(
        "signed-reserved-nonzero.dpatch",
        edited(&signed, |p| p[SIG_RESERVED_AT] = 0x01),
        BAD_PATCH,
        "Format/BadSignatureBlock",
        "Format/BadSignatureBlock",
        "§3.5 H8",
        "bsdiff-signed with signature block byte 193 (reserved) set to 01; the signature \
         itself still verifies, as it does not cover the block",
    )?;
    both(
        "signed-algorithm-2.dpatch",
        edited(&signed, |p| p[SIG_ALGORITHM_AT] = 2),
        BAD_PATCH,
        "Format/BadSignatureBlock",
        "Format/BadSignatureBlock",
        "§3.5 H8",
        "bsdiff-signed with sig_algorithm 2 (unassigned)",
    )?;
    both(
        "signed-algorithm-0.dpatch",
        edited(&signed, |p| p[SIG_ALGORITHM_AT] = 0),
        BAD_PATCH,
        "Format/BadSignatureBlock",
        "Format/BadSignatureBlock",
        "§3.5 H8",
        "bsdiff-signed relabelled unsigned (sig_algorithm 0) with its key and signature \
         left in place: an unsigned block must be all zero",
    )?;
    Ok(())
}

/// Guards against vectors that do not test what they claim: a failing patch that is
/// byte for byte a valid one (as an edit of a field that already had the edited value
/// would make), and a set without a valid bsdiff patch of each diff coding.
fn check(v: &VectorSet) -> anyhow::Result<()> {
    let valid: std::collections::BTreeSet<&str> = v
        .cases
        .iter()
        .filter(|c| matches!(c.expect, Expect::Ok(_)))
        .map(|c| c.patch.as_str())
        .collect();
    for c in &v.cases {
        if valid.contains(c.patch.as_str()) {
            continue;
        }
        for ok in &valid {
            ensure!(
                v.bytes(&c.patch) != v.bytes(ok),
                "{} must fail but is the same file as {ok}",
                c.patch
            );
        }
    }
    for coding in [DiffCoding::Plain, DiffCoding::ZeroRun] {
        ensure!(
            v.cases.iter().any(|c| c
                .header
                .as_ref()
                .and_then(|h| h.streams)
                .is_some_and(|s| s.diff_coding == coding)),
            "no valid bsdiff patch with a {coding:?} diff stream"
        );
    }
    Ok(())
}

fn write(dir: &Path, set: &VectorSet) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Remove vectors an earlier version of this program wrote and this one does not.
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let ours = [".dpatch", ".old", ".new", ".pub"]
            .iter()
            .any(|e| name.ends_with(e));
        if ours && !set.files.contains_key(name) {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
            println!("removed stale {name}");
        }
    }
    for (name, bytes) in &set.files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let index = Index {
        format: "deltapack patch v1 test vectors (format-spec/patch-v1.md §10)",
        regenerate: "cargo run -p deltapack --example make_vectors -- testdata/vectors",
        keys: &set.keys,
        cases: &set.cases,
    };
    let mut json = serde_json::to_string_pretty(&index)?;
    json.push('\n');
    std::fs::write(dir.join("vectors.json"), json)?;
    std::fs::write(dir.join("README.md"), readme(set))?;
    Ok(())
}

fn readme(set: &VectorSet) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "# Test vectors for the deltapack patch format, version 1\n\n\
         These files are part of `format-spec/patch-v1.md` (§10): an implementation that \
         disagrees with a vector is wrong, or the vector and the spec are, and both change \
         together. `vectors.json` lists every case in machine-readable form; \
         `deltaapply-cli/tests/vectors.rs` applies each one through the library and the \
         `deltaapply` binary and checks the outcome, and `deltaapply/tests/bad_input.rs` \
         sweeps truncations and bit flips of the valid patches \
         (`deltaapply/tests/signed.rs` does the same for signed ones).\n\n\
         Do not edit these files by hand. Regenerate them with\n\n\
         ```sh\n\
         cargo run -p deltapack --example make_vectors -- testdata/vectors\n\
         ```\n\n\
         The generator (`deltapack/examples/make_vectors.rs`) is deterministic: every \
         input is built from fixed seeds and every patch with fixed settings (zstd level \
         19, one worker thread), so running it twice gives identical bytes. A change to \
         deltapack's encoder changes the valid patches and everything derived from them; \
         that is expected, and the tests must still pass.\n"
    );
    let _ = writeln!(w, "## Inputs\n");
    let _ = writeln!(w, "| file | bytes | sha256 | what it is |");
    let _ = writeln!(w, "|---|---:|---|---|");
    let inputs = [
        (
            "exe.old",
            "pseudo-executable: header, 256 8-byte instructions (many with 4-byte absolute pointers), 128 strings",
        ),
        (
            "exe.new",
            "`exe.old` with 12 instructions inserted in the middle: every pointer past them shifts by 96; two strings changed",
        ),
        (
            "exe-wrong.old",
            "`exe.old` with one bit changed (byte 1000)",
        ),
        ("text.old", "64 configuration-like lines"),
        (
            "text.new",
            "`text.old` with one line edited and a 4-line paragraph inserted",
        ),
        ("zeros.old", "4096 zero bytes"),
        ("zeros.new", "6144 zero bytes"),
        (
            "fox.old",
            "`The quick brown fox jumps over the lazy dog.` (§5.2.4)",
        ),
        (
            "fox.new",
            "`The quick brown cat jumps over the lazy dog!!` (§5.2.4)",
        ),
        ("empty.new", "empty file"),
    ];
    for (name, what) in inputs {
        let b = &set.files[name];
        let _ = writeln!(
            w,
            "| `{name}` | {} | `{}` | {what} |",
            b.len(),
            Sha256Digest::of(b)
        );
    }
    let _ = writeln!(
        w,
        "\n## Test keys\n\n\
         The signed vectors (format-spec §3.5) use two ed25519 keys. Their seeds are \
         published here so that anyone can re-create the signatures: **these keys prove \
         nothing and must never be trusted outside tests.** Each seed is the SHA-256 of \
         the string shown; each key's public key file is in this directory.\n"
    );
    let _ = writeln!(w, "| file | public key | key id | seed (SHA-256 of) |");
    let _ = writeln!(w, "|---|---|---|---|");
    for k in &set.keys {
        let _ = writeln!(
            w,
            "| `{}` | `{}` | `{}` | `{}` (`{}`) |",
            k.file, k.public_key, k.key_id, k.seed, k.seed_from
        );
    }
    let _ = writeln!(
        w,
        "\n## Cases\n\n\
         Exit codes are those of `deltaapply apply` (`deltaapply::exit`): 3 invalid or \
         corrupt patch, 4 wrong or missing old file, 5 limit exceeded, 6 origin check \
         failed. *Limit* is `--max-memory` / `Limits::max_apply_memory` (default 1 GiB). \
         *Key* is the public key file of the one key the applier trusts (`--key`); none \
         means no trusted key, so the origin is not verified. *Error* is the reference \
         applier's `deltaapply::Error` variant (and `FormatError` or `SignatureError` \
         variant). On every failure the destination must be left as it was, with no \
         temporary file beside it.\n"
    );
    let _ = writeln!(
        w,
        "| case | patch | old | limit | key | expect | error | rule | proves |"
    );
    let _ = writeln!(w, "|---|---|---|---:|---|---|---|---|---|");
    for c in &set.cases {
        let expect = match c.expect {
            Expect::Ok(_) => format!("ok → `{}`", c.new.as_deref().unwrap_or("")),
            Expect::Exit(code) => code.to_string(),
        };
        let limit = c.max_apply_memory.map_or(String::new(), |l| l.to_string());
        let error = match (c.error, c.message) {
            (Some(e), Some(m)) if !m.is_empty() => format!("{e} (“{m}”)"),
            (Some(e), _) => e.to_string(),
            (None, _) => String::new(),
        };
        let _ = writeln!(
            w,
            "| {} | `{}` | {} | {limit} | {} | {expect} | {error} | {} | {} |",
            c.name,
            c.patch,
            c.old.as_deref().map_or("—".into(), |o| format!("`{o}`")),
            c.key.as_deref().map_or("—".into(), |k| format!("`{k}`")),
            c.rule,
            c.description.replace('|', "\\|"),
        );
    }
    let _ = writeln!(
        w,
        "\n## Headers of the valid patches\n\n\
         `vectors.json` records each valid patch's decoded header (`header`); the tests \
         check the patch decodes to exactly those values and that the sizes and SHA-256s \
         are those of the input files and of the payload. *Diff coding* is bit 0 of \
         `method_flags` (header byte 14, §5.2.5): deltapack compresses the diff stream \
         both plain and zero-run coded and keeps the smaller, so which one its patches \
         use may change with the encoder; the hand-built `bsdiff-spec-example` (plain) \
         and `bsdiff-zero-run-*` (zero-run) patches keep one of each.\n"
    );
    let _ = writeln!(
        w,
        "| patch | method | window_log | source | target | payload | streams (control + diff + extra) | diff coding | apply_memory | signed by (key id) |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---|---|---:|---|");
    let mut seen = std::collections::BTreeSet::new();
    for c in &set.cases {
        let Some(h) = &c.header else { continue };
        if !seen.insert(c.patch.clone()) {
            continue;
        }
        let streams = h.streams.map_or("—".into(), |s| {
            format!("{} + {} + {}", s.control, s.diff, s.extra)
        });
        let coding = h.streams.map_or("—", |s| match s.diff_coding {
            DiffCoding::Plain => "plain",
            DiffCoding::ZeroRun => "zero-run",
        });
        let _ = writeln!(
            w,
            "| `{}` | {} | {} | {} | {} | {} | {streams} | {coding} | {} | {} |",
            c.patch,
            h.method,
            h.window_log,
            h.source.map_or("—".into(), |s| s.size.to_string()),
            h.target.size,
            h.payload.size,
            h.apply_memory,
            h.signature
                .as_ref()
                .map_or("—".into(), |s| format!("`{}`", s.key_id)),
        );
    }
    s
}
