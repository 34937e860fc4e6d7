//! BSDIFF40 both ways against independent implementations: Debian's `bspatch` and
//! qbsdiff's `Bspatch` apply what `deltapack diff --format bsdiff40` writes, byte for
//! byte; `deltaapply` applies what Debian's `bsdiff` and qbsdiff's `Bsdiff` write
//! (including qbsdiff's parallel mode, whose chunks end in a record that produces
//! nothing). `scripts/test.sh` installs the Debian peers.

mod common;

use std::io::Cursor;
use std::path::Path;
use std::process::Command;

use common::{Dir, release_pair};
use deltaapply::Sha256Digest;
use deltaapply::foreign::{Check, ForeignApply, apply_foreign};
use deltapack::Settings;
use deltapack::formats::bsdiff40::encode;
use proptest::prelude::*;

fn settings(threads: usize) -> Settings {
    Settings {
        threads,
        ..Settings::default()
    }
}

/// Pairs with the shapes that matter: a release, no change, empty sides, unrelated
/// files, a text edit.
fn pairs() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let (old, new) = release_pair(200_000, 40);
    let text_old = b"line one\nline two\nline three\n".repeat(200);
    let mut text_new = text_old.clone();
    text_new.splice(3000..3000, b"an inserted paragraph\n".iter().copied());
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    vec![
        ("release", old.clone(), new),
        ("identical", old.clone(), old.clone()),
        ("empty new", old.clone(), Vec::new()),
        ("empty old", Vec::new(), noise.clone()),
        ("both empty", Vec::new(), Vec::new()),
        ("unrelated", text_old.clone(), noise),
        ("text", text_old, text_new),
    ]
}

fn bspatch(dir: &Dir, old: &Path, patch: &Path) -> Vec<u8> {
    let out = dir.join("bspatch.out");
    let status = Command::new("bspatch")
        .arg(old)
        .arg(&out)
        .arg(patch)
        .status()
        .expect("Debian's bspatch (apt-get install bsdiff)");
    assert!(status.success(), "bspatch {} failed", patch.display());
    std::fs::read(out).unwrap()
}

/// Applies with `deltaapply`'s library, checked against `new`'s digest.
fn ours_apply(dir: &Dir, old: &[u8], patch: &[u8], new: &[u8]) -> Vec<u8> {
    let old_path = dir.write("ours.old", old);
    let patch_path = dir.write("ours.patch", patch);
    let dest = dir.join("ours.out");
    apply_foreign(
        &ForeignApply {
            old: &old_path,
            patch: &patch_path,
            dest: &dest,
            check: Check::Sha256(Sha256Digest::of(new)),
            expected_size: Some(new.len() as u64),
            max_memory: 64 << 20,
        },
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("deltaapply refused it: {e:?}"));
    std::fs::read(dest).unwrap()
}

#[test]
fn debian_bspatch_qbsdiff_and_deltaapply_apply_ours_byte_for_byte() {
    let dir = Dir::new();
    for (what, old, new) in pairs() {
        let patch = encode(&old, &new, &settings(2)).unwrap();
        let old_path = dir.write("old", &old);
        let patch_path = dir.write("patch", &patch);
        assert!(
            bspatch(&dir, &old_path, &patch_path) == new,
            "{what}: bspatch"
        );
        let mut q = Vec::new();
        qbsdiff::Bspatch::new(&patch)
            .unwrap()
            .apply(&old, Cursor::new(&mut q))
            .unwrap();
        assert!(q == new, "{what}: qbsdiff");
        assert!(
            ours_apply(&dir, &old, &patch, &new) == new,
            "{what}: deltaapply"
        );
    }
}

#[test]
fn deltaapply_applies_debian_bsdiff_and_qbsdiff_patches() {
    let dir = Dir::new();
    for (what, old, new) in pairs() {
        let mut q = Vec::new();
        qbsdiff::Bsdiff::new(&old, &new)
            .compare(Cursor::new(&mut q))
            .unwrap();
        assert!(ours_apply(&dir, &old, &q, &new) == new, "{what}: qbsdiff");
        // Debian's bsdiff cannot read an empty file (it maps it).
        if old.is_empty() || new.is_empty() {
            continue;
        }
        let old_path = dir.write("old", &old);
        let new_path = dir.write("new", &new);
        let patch_path = dir.join("debian.bsdiff");
        let status = Command::new("bsdiff")
            .args([&old_path, &new_path, &patch_path])
            .status()
            .expect("Debian's bsdiff (apt-get install bsdiff)");
        assert!(status.success(), "{what}: bsdiff");
        let patch = std::fs::read(&patch_path).unwrap();
        assert!(
            ours_apply(&dir, &old, &patch, &new) == new,
            "{what}: Debian's bsdiff"
        );
    }
    // qbsdiff's parallel mode ends every 256 KiB chunk with a record that only moves
    // the old cursor back, the last one after the final byte.
    let (old, new) = release_pair(900_000, 41);
    let mut q = Vec::new();
    qbsdiff::Bsdiff::new(&old, &new)
        .parallel_scheme(qbsdiff::ParallelScheme::ChunkSize(256 << 10))
        .compare(Cursor::new(&mut q))
        .unwrap();
    assert!(ours_apply(&dir, &old, &q, &new) == new, "qbsdiff in chunks");
}

#[test]
fn the_writer_is_deterministic() {
    let (old, new) = release_pair(300_000, 42);
    let one = encode(&old, &new, &settings(1)).unwrap();
    let two = encode(&old, &new, &settings(2)).unwrap();
    assert!(one == two, "output depends on the thread count");
}

#[test]
fn deltapack_diff_format_bsdiff40_writes_what_bspatch_applies() {
    let dir = Dir::new();
    let (old, new) = release_pair(100_000, 43);
    let old_path = dir.write("old", &old);
    let new_path = dir.write("new", &new);
    let patch = dir.join("p.bsdiff");
    let out = assert_cmd::Command::cargo_bin("deltapack")
        .unwrap()
        .arg("diff")
        .args([&old_path, &new_path])
        .arg("-o")
        .arg(&patch)
        .args(["--format", "bsdiff40", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["format"], "bsdiff40");
    assert_eq!(json["sha256"], Sha256Digest::of(&new).to_string());
    assert_eq!(json["patch_size"], std::fs::metadata(&patch).unwrap().len());
    assert!(bspatch(&dir, &old_path, &patch) == new);

    // Directories, methods and signing do not go with a foreign format.
    for extra in [&["--method", "bsdiff"][..], &["--secret-key", "k.pem"][..]] {
        let out = assert_cmd::Command::cargo_bin("deltapack")
            .unwrap()
            .arg("diff")
            .args([&old_path, &new_path])
            .arg("-o")
            .arg(dir.join("q"))
            .args(["--format", "bsdiff40"])
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{extra:?}");
    }
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let out = assert_cmd::Command::cargo_bin("deltapack")
        .unwrap()
        .arg("diff")
        .args([&tree, &tree])
        .arg("-o")
        .arg(dir.join("t"))
        .args(["--format", "bsdiff40"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Realistic mutations (an insertion, a deletion, an overwrite) round-trip through
    /// our writer and both appliers.
    #[test]
    fn mutations_round_trip(
        seed in 0u64..1000,
        insert in 0usize..3000,
        delete in 0usize..3000,
        at in 0usize..20_000,
    ) {
        let (old, _) = release_pair(20_000, seed);
        let mut new = old.clone();
        let at = at.min(new.len());
        let end = (at + delete).min(new.len());
        new.drain(at..end);
        let mut rng = common::Rng::new(seed ^ 0x5eed);
        let ins: Vec<u8> = (0..insert).map(|_| rng.byte()).collect();
        new.splice(at.min(new.len())..at.min(new.len()), ins);
        let patch = encode(&old, &new, &settings(1)).unwrap();
        let mut q = Vec::new();
        qbsdiff::Bspatch::new(&patch).unwrap().apply(&old, Cursor::new(&mut q)).unwrap();
        prop_assert!(q == new);
        let dir = Dir::new();
        prop_assert!(ours_apply(&dir, &old, &patch, &new) == new);
    }
}
