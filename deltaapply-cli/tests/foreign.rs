//! Foreign patch formats (`format-spec/foreign.md`): the committed vectors of
//! `testdata/vectors/foreign/` through the library and the binary, every truncation
//! and header bit flip of the valid BSDIFF40 and zstd patches, patches made on the spot
//! by Debian's `bsdiff` and `zstd --patch-from`, and the command line's rules
//! (`--expect-sha256` or `--unverified`, the format said, `inspect --json`).
//!
//! Needs the `cli` feature (the binary, and `serde_json` to read the case list), and
//! the Debian peers `bsdiff` and `zstd` (scripts/test.sh installs them).

#[path = "../../deltaapply/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use common::{Scratch, Workbench, hex, sha256, vectors_dir};
use deltaapply::foreign::{Check, ForeignApply, ForeignError, Format, apply_foreign};
use deltaapply::{ErrorKind, Sha256Digest};
use deltaapply_cli as cli;
use serde::Deserialize;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Case {
    file: String,
    old: String,
    expect: serde_json::Value,
    new: String,
    error: Option<String>,
    expected_size: Option<u64>,
    max_memory: Option<u64>,
}

fn foreign_dir() -> PathBuf {
    vectors_dir().join("foreign")
}

fn cases() -> Vec<Case> {
    let path = foreign_dir().join("vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}): cargo run -p deltapack --example make_foreign_vectors",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("vectors.json parses")
}

const DEFAULT_MEMORY: u64 = 1 << 30;

fn apply(
    old: &Path,
    patch: &Path,
    dest: &Path,
    check: Check,
    expected_size: Option<u64>,
    max_memory: u64,
) -> Result<deltaapply::foreign::ForeignReport, ForeignError> {
    apply_foreign(
        &ForeignApply {
            old,
            patch,
            dest,
            check,
            expected_size,
            max_memory,
        },
        &mut |_| {},
    )
}

fn chain(e: &ForeignError) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn digest_of(bytes: &[u8]) -> Sha256Digest {
    Sha256Digest(sha256(bytes))
}

#[test]
fn every_vector_does_what_vectors_json_says_through_the_library_and_the_binary() {
    let dir = foreign_dir();
    let cases = cases();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    for case in &cases {
        let name = format!("{} (old {})", case.file, case.old);
        let patch = dir.join(&case.file);
        let old = dir.join(&case.old);
        let new = std::fs::read(dir.join(&case.new)).unwrap();
        let check = Check::Sha256(digest_of(&new));
        let memory = case.max_memory.unwrap_or(DEFAULT_MEMORY);

        let scratch = Scratch::new();
        let result = apply(
            &old,
            &patch,
            &scratch.dest,
            check,
            case.expected_size,
            memory,
        );
        let expected_exit = match &case.expect {
            serde_json::Value::String(s) if s == "ok" => {
                let report = result.unwrap_or_else(|e| panic!("{name}: {}", chain(&e)));
                assert!(report.verified, "{name}");
                assert_eq!(report.target.sha256, digest_of(&new), "{name}");
                scratch.assert_dest(&new, &name);
                0
            }
            serde_json::Value::Number(n) => {
                let code = n.as_i64().unwrap() as i32;
                let e = match result {
                    Ok(_) => panic!("{name}: applied, expected exit {code}"),
                    Err(e) => e,
                };
                assert_eq!(cli::exit_code(e.kind()), code, "{name}: {}", chain(&e));
                let text = chain(&e);
                let want = case.error.as_deref().expect("an error case names its text");
                assert!(text.contains(want), "{name}: {text:?} lacks {want:?}");
                assert!(
                    text.contains(&case.file),
                    "{name}: {text:?} does not name the file"
                );
                scratch.assert_untouched(&name);
                code
            }
            other => panic!("{name}: bad expect {other}"),
        };

        // The binary gives the same exit code and, for "ok", the same bytes.
        let bin = Scratch::new();
        let mut cmd = Command::cargo_bin("deltaapply").unwrap();
        cmd.arg("apply")
            .arg(&old)
            .arg(&patch)
            .arg("-o")
            .arg(&bin.dest)
            .arg("--expect-sha256")
            .arg(hex(&sha256(&new)));
        if let Some(size) = case.expected_size {
            cmd.arg("--expect-size").arg(size.to_string());
        }
        cmd.arg("--max-memory").arg(memory.to_string());
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(expected_exit),
            "{name}: binary: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if expected_exit == 0 {
            bin.assert_dest(&new, &name);
        } else {
            bin.assert_untouched(&name);
        }
    }
}

/// The valid vectors every sweep starts from: (patch, the file it makes).
const SWEPT: [&str; 9] = [
    "bsdiff40-debian.bsdiff",
    "bsdiff40-deltapack.bsdiff",
    "bsdiff40-qbsdiff.bsdiff",
    "zstd-cli.zst",
    "vcdiff-xdelta3.vcdiff",
    "vcdiff-deltapack-windows.vcdiff",
    "vcdiff-target-window.vcdiff",
    "vcdiff-xdelta3-lzma.vcdiff",
    "vcdiff-deltapack-lzma.vcdiff",
];

/// Applies `bytes` as a patch of exe.old expecting exe.new; returns whether it
/// applied. An error must leave the destination untouched; success must make exe.new.
fn try_apply(bench: &Workbench, bytes: &[u8], context: &str) -> bool {
    let old = vectors_dir().join("exe.old");
    let new = std::fs::read(vectors_dir().join("exe.new")).unwrap();
    let patch = bench.file("patch", bytes);
    let scratch = Scratch::new();
    match apply(
        &old,
        &patch,
        &scratch.dest,
        Check::Sha256(digest_of(&new)),
        None,
        DEFAULT_MEMORY,
    ) {
        Ok(_) => {
            scratch.assert_dest(&new, context);
            true
        }
        Err(e) => {
            assert!(
                // A flipped window or size may ask for more than the limit: refused too.
                matches!(
                    e.kind(),
                    ErrorKind::BadInput | ErrorKind::Usage | ErrorKind::Limit
                ),
                "{context}: {:?}: {}",
                e.kind(),
                chain(&e)
            );
            scratch.assert_untouched(context);
            false
        }
    }
}

#[test]
fn every_truncation_of_a_valid_patch_is_refused_and_writes_nothing() {
    let bench = Workbench::new();
    for name in SWEPT {
        let bytes = std::fs::read(foreign_dir().join(name)).unwrap();
        assert!(try_apply(&bench, &bytes, name), "{name} itself applies");
        for len in 0..bytes.len() {
            let context = format!("{name} cut to {len} bytes");
            assert!(
                !try_apply(&bench, &bytes[..len], &context),
                "{context} applied"
            );
        }
    }
}

#[test]
fn bit_flips_in_the_headers_are_refused_or_change_nothing() {
    let bench = Workbench::new();
    for name in SWEPT {
        let bytes = std::fs::read(foreign_dir().join(name)).unwrap();
        // The BSDIFF40 header, the zstd frame header and the first block header, or
        // the VCDIFF file header, the first window's header and its first sections.
        let span = if name.ends_with(".zst") { 12 } else { 40 };
        // xdelta3's application header (file names) is not read: start after it.
        let from = if name.ends_with(".vcdiff") {
            deltaapply::vcdiff::FileHeader::decode(&bytes, bytes.len() as u64)
                .unwrap()
                .len as usize
        } else {
            0
        };
        let mut refused = 0;
        for bit in 0..span * 8 {
            let mut flipped = bytes.clone();
            flipped[from + bit / 8] ^= 1 << (bit % 8);
            let context = format!("{name} with bit {bit} flipped");
            // A flip that still applies must make exe.new exactly (try_apply checks):
            // the sign bit of a zero length, say, is -0, which is 0 in bspatch too.
            if !try_apply(&bench, &flipped, &context) {
                refused += 1;
            }
        }
        assert!(
            refused > span * 8 * 9 / 10,
            "{name}: only {refused} flips refused"
        );
    }
}

fn exe() -> (PathBuf, PathBuf, Vec<u8>) {
    let old = vectors_dir().join("exe.old");
    let new_path = vectors_dir().join("exe.new");
    let new = std::fs::read(&new_path).unwrap();
    (old, new_path, new)
}

/// A realistic pair bigger than the vectors: an executable-like old file and a new one
/// with an insertion, an edit and shifted pointers.
fn pair(bench: &Workbench) -> (PathBuf, PathBuf, Vec<u8>) {
    let mut rng = common::Rng(14);
    let mut old = Vec::new();
    for i in 0..40_000u32 {
        old.extend_from_slice(&[0x48, 0x8b, (i % 7) as u8, 0x24]);
        old.extend_from_slice(&(0x40_0000 + i * 16).to_le_bytes());
        if i % 97 == 0 {
            old.extend(rng.bytes(24));
        }
    }
    let mut new = old[..100_000].to_vec();
    new.extend(rng.bytes(3000));
    for chunk in old[100_000..].chunks(8) {
        let mut c = chunk.to_vec();
        if c.len() == 8 && c[0] == 0x48 {
            let p = u32::from_le_bytes([c[4], c[5], c[6], c[7]]).wrapping_add(3000);
            c[4..].copy_from_slice(&p.to_le_bytes());
        }
        new.extend(c);
    }
    new[200_000..200_010].copy_from_slice(b"edited!!!!");
    (
        bench.file("old.bin", &old),
        bench.file("new.bin", &new),
        new,
    )
}

fn run(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::cargo_bin("deltaapply")
        .unwrap()
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn patches_made_by_debian_bsdiff_and_zstd_apply_through_the_binary() {
    let bench = Workbench::new();
    let (old, new_path, new) = pair(&bench);
    let bsdiff = bench.dir.path().join("p.bsdiff");
    let status = std::process::Command::new("bsdiff")
        .args([&old, &new_path, &bsdiff])
        .status()
        .expect("Debian's bsdiff (apt-get install bsdiff)");
    assert!(status.success());
    let zst = bench.dir.path().join("p.zst");
    let status = std::process::Command::new("zstd")
        .args(["-q", "-f", "-19", "--single-thread"])
        .arg(format!("--patch-from={}", old.display()))
        .arg(&new_path)
        .arg("-o")
        .arg(&zst)
        .status()
        .expect("Debian's zstd (apt-get install zstd)");
    assert!(status.success());
    let digest = hex(&sha256(&new));
    for (patch, format) in [(&bsdiff, "BSDIFF40"), (&zst, "zstd frame")] {
        let scratch = Scratch::new();
        let out = run(&[
            "apply".as_ref(),
            old.as_os_str(),
            patch.as_os_str(),
            "-o".as_ref(),
            scratch.dest.as_os_str(),
            "--expect-sha256".as_ref(),
            digest.as_ref(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{format}: {stderr}");
        assert!(
            stderr.contains(&format!("{format} patch")),
            "{format}: {stderr}"
        );
        scratch.assert_dest(&new, format);

        // Without a digest: refused (exit 2), nothing written.
        let scratch = Scratch::new();
        let args = [
            "apply".as_ref(),
            old.as_os_str(),
            patch.as_os_str(),
            "-o".as_ref(),
            scratch.dest.as_os_str(),
        ];
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{format}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--expect-sha256"));
        scratch.assert_untouched(format);

        // --unverified installs it, and says so.
        let mut unverified = args.to_vec();
        unverified.push("--unverified".as_ref());
        let out = run(&unverified);
        assert!(out.status.success(), "{format}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("UNVERIFIED"));
        scratch.assert_dest(&new, format);

        // A wrong digest: exit 3, the destination as it was.
        let scratch = Scratch::new();
        let out = run(&[
            "apply".as_ref(),
            old.as_os_str(),
            patch.as_os_str(),
            "-o".as_ref(),
            scratch.dest.as_os_str(),
            "--expect-sha256".as_ref(),
            hex(&sha256(b"something else")).as_ref(),
            "--json".as_ref(),
        ]);
        assert_eq!(out.status.code(), Some(3), "{format}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["ok"], false);
        scratch.assert_untouched(format);

        // In place: the old file is replaced only by the verified result.
        let copy = bench.file("in-place.bin", &std::fs::read(&old).unwrap());
        let out = run(&[
            "apply".as_ref(),
            "--in-place".as_ref(),
            copy.as_os_str(),
            patch.as_os_str(),
            "--expect-sha256".as_ref(),
            digest.as_ref(),
            "--json".as_ref(),
        ]);
        assert!(out.status.success(), "{format}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            json["format"],
            serde_json::to_value(Format::detect(&std::fs::read(patch).unwrap()[..8]).unwrap())
                .unwrap()
        );
        assert_eq!(json["verified"], true);
        assert_eq!(std::fs::read(&copy).unwrap(), new);
    }
}

#[test]
fn a_zstd_window_is_the_devices_limit_not_the_frames() {
    use std::io::Write as _;
    let bench = Workbench::new();
    let (old, _, new) = pair(&bench);
    let old_bytes = std::fs::read(&old).unwrap();
    // A frame of unknown content size with a 2^27 window (128 MiB, the most libzstd
    // allows by default), far more than these files need: what a device may be sent.
    let mut enc = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), 3, &old_bytes).unwrap();
    enc.set_parameter(zstd::stream::raw::CParameter::WindowLog(27))
        .unwrap();
    enc.include_contentsize(false).unwrap();
    enc.write_all(&new).unwrap();
    let wide = bench.file("wide.zst", &enc.finish().unwrap());
    let header =
        deltaapply::zstd_frame::FrameHeader::decode(&std::fs::read(&wide).unwrap()).unwrap();
    assert_eq!(header.window_size, 1 << 27);
    let needs = old_bytes.len() as u64 + header.window_size;
    let check = Check::Sha256(digest_of(&new));
    let size = Some(new.len() as u64);
    let scratch = Scratch::new();
    for limit in [64 << 20, needs] {
        let e = apply(&old, &wide, &scratch.dest, check, size, limit).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Limit, "{}", chain(&e));
        scratch.assert_untouched("below the window");
    }
    apply(&old, &wide, &scratch.dest, check, size, needs + (2 << 20)).unwrap();
    scratch.assert_dest(&new, "within the limit");
}

#[test]
fn inspect_names_each_format_in_text_and_json() {
    let dir = foreign_dir();
    let ours = vectors_dir().join("bsdiff-valid.dpatch");
    for (patch, format) in [
        (dir.join("bsdiff40-debian.bsdiff"), "BSDIFF40"),
        (dir.join("zstd-cli.zst"), "zstd frame"),
        (dir.join("vcdiff-xdelta3.vcdiff"), "VCDIFF"),
        (ours, "deltapack"),
    ] {
        let out = run(&["inspect".as_ref(), patch.as_os_str()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{format}: {text}");
        assert!(
            text.lines().next().unwrap().contains(format),
            "{format}: {text}"
        );
        let out = run(&["inspect".as_ref(), patch.as_os_str(), "--json".as_ref()]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let want =
            serde_json::to_value(Format::detect(&std::fs::read(&patch).unwrap()[..8]).unwrap())
                .unwrap();
        assert_eq!(json["format"], want, "{format}: {json}");
    }
    let out = run(&[
        "inspect".as_ref(),
        dir.join("bsdiff40-qbsdiff-crasher.bsdiff").as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("control length is negative"));
    let out = run(&[
        "inspect".as_ref(),
        dir.join("vcdiff-tib-window.vcdiff").as_os_str(),
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1099511627776 bytes"));
    let out = run(&[
        "inspect".as_ref(),
        dir.join("vcdiff-xdelta3-lzma.vcdiff").as_os_str(),
    ]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("VCD_DECOMPRESS (secondary compressor 2, LZMA)")
    );
    let out = run(&[
        "inspect".as_ref(),
        dir.join("vcdiff-code-table.vcdiff").as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("VCD_CODETABLE"));
}

#[test]
fn expect_sha256_is_checked_against_a_deltapack_patch_before_anything_is_written() {
    let (old, _, new) = exe();
    let patch = vectors_dir().join("bsdiff-valid.dpatch");
    let scratch = Scratch::new();
    let args = |digest: String| {
        let mut cmd = Command::cargo_bin("deltaapply").unwrap();
        cmd.arg("apply")
            .arg(&old)
            .arg(&patch)
            .arg("-o")
            .arg(&scratch.dest)
            .arg("--expect-sha256")
            .arg(digest);
        cmd.output().unwrap()
    };
    let out = args(hex(&sha256(b"not it")));
    assert_eq!(out.status.code(), Some(3));
    scratch.assert_untouched("wrong digest");
    let out = args(hex(&sha256(&new)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("deltapack patch"));
    scratch.assert_dest(&new, "right digest");
}
