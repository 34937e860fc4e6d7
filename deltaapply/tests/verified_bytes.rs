//! A decoder must only ever act on the bytes whose hash was verified (format-spec
//! patch-v1 §6 group P, tree-v1 §6.1): a patch on a local mirror (a USB stick, a
//! network filesystem) can read differently the second time. These tests change the
//! patch between verification and decoding, from the progress callback, which fires
//! during the payload hash (after its last chunk, the hash is complete and nothing has
//! been decoded yet):
//!
//! - a tree patch whose file is replaced by rename: its index and blobs must still be
//!   the verified ones (the applier decodes through the handle it hashed);
//! - a file patch whose payload is overwritten in place with bytes that decode to the
//!   same target: the applier reads them again to decode (a payload may be too big to
//!   hold), so it hashes what the decoder consumes and must refuse before the output
//!   is committed, leaving nothing behind.

mod common;

use std::cell::Cell;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use deltaapply::container::{FileId, HEADER_LEN, MIN_WINDOW_LOG};
use deltaapply::tree::{TreeApply, TreePatch, apply_tree};
use deltaapply::{Error, Header, Limits, Method, Phase, Progress, Sha256Digest, TreeHeader};

fn tree_vector(name: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/vectors/tree");
    fs::read(dir.join(name)).unwrap()
}

/// Calls `swap` once, when the payload hash has seen the payload's last byte.
fn after_verification(swap: impl FnOnce()) -> impl FnMut(Progress) {
    let mut swap = Some(swap);
    move |p: Progress| {
        if p.phase == Phase::CheckPayload
            && p.done == p.total
            && let Some(swap) = swap.take()
        {
            swap();
        }
    }
}

#[test]
fn a_tree_patch_renamed_over_after_verification_is_decoded_as_verified() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("tree.dpatch");
    let verified = tree_vector("full-image.dpatch");
    let other = tree_vector("valid.dpatch");
    fs::write(&path, &verified).unwrap();
    let impostor = scratch.path().join("other.dpatch");
    fs::write(&impostor, &other).unwrap();
    let header = TreeHeader::decode_tree(&verified[..HEADER_LEN], verified.len() as u64).unwrap();

    let swapped = Cell::new(false);
    let mut progress = after_verification(|| {
        fs::rename(&impostor, &path).unwrap();
        swapped.set(true);
    });
    let patch = TreePatch::open(&path, &Limits::default(), None, &mut progress)
        .expect("the verified patch opens, whatever is at its path now");
    assert!(
        swapped.get(),
        "the progress callback fired after the payload hash"
    );
    assert_eq!(
        fs::read(&path).unwrap(),
        other,
        "the path holds the other patch"
    );
    assert_eq!(patch.header(), &header);
    assert_eq!(patch.index().new.id(), header.target);

    // Its blobs are read through the same handle: applying makes the verified tree.
    let dest = scratch.path().join("new");
    let report = apply_tree(
        &TreeApply {
            patch: &patch,
            old: None,
            dest: &dest,
            substitutes: &Default::default(),
            limits: Limits::default(),
            replace_unlisted: false,
            drop: None,
        },
        &mut |_| {},
    )
    .expect("the verified patch applies");
    assert_eq!(report.target, header.target);
}

/// A method-3 patch of 200 bytes `a`, its one zstd frame made of two RLE blocks of
/// `first` and `200 - first` bytes: different payload bytes of the same length for
/// the same target.
fn rle_full_patch(first: u32) -> Vec<u8> {
    const LEN: u32 = 200;
    let block = |size: u32, last: bool| {
        let word = (size << 3) | (1 << 1) | u32::from(last);
        [word as u8, (word >> 8) as u8, (word >> 16) as u8, b'a']
    };
    let mut payload = vec![0x28, 0xB5, 0x2F, 0xFD, 0x20, LEN as u8];
    payload.extend_from_slice(&block(first, false));
    payload.extend_from_slice(&block(LEN - first, true));
    let header = Header::unsigned(
        Method::Full,
        MIN_WINDOW_LOG,
        None,
        FileId {
            size: u64::from(LEN),
            sha256: Sha256Digest::of(&[b'a'; LEN as usize]),
        },
        FileId {
            size: payload.len() as u64,
            sha256: Sha256Digest::of(&payload),
        },
        None,
    );
    [header.encode().as_slice(), &payload].concat()
}

#[test]
fn the_rle_patches_are_valid_and_differ() {
    let scratch = tempfile::tempdir().unwrap();
    for first in [100, 150] {
        let path = scratch.path().join(format!("p{first}"));
        fs::write(&path, rle_full_patch(first)).unwrap();
        let dest = scratch.path().join(format!("out{first}"));
        deltaapply::apply_file(None, &path, &dest, &Limits::default(), None, &mut |_| {}).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), [b'a'; 200]);
    }
    assert_ne!(rle_full_patch(100), rle_full_patch(150));
    assert_eq!(rle_full_patch(100).len(), rle_full_patch(150).len());
}

#[test]
fn a_payload_overwritten_in_place_after_verification_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("p.dpatch");
    fs::write(&path, rle_full_patch(100)).unwrap();
    let dest = scratch.path().join("out.bin");
    let mut progress = after_verification(|| {
        let mut f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(HEADER_LEN as u64)).unwrap();
        f.write_all(&rle_full_patch(150)[HEADER_LEN..]).unwrap();
    });
    let result =
        deltaapply::apply_file(None, &path, &dest, &Limits::default(), None, &mut progress);
    let err = result.expect_err("the decoder read bytes that were not the verified ones");
    assert!(
        matches!(&err, Error::Corrupt { problem, .. } if problem.contains("changed after it was verified")),
        "{err}"
    );
    assert_eq!(err.kind(), deltaapply::ErrorKind::BadInput);
    let left: Vec<_> = fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["p.dpatch"], "no output and no temporary file");
}

#[test]
fn a_file_patch_renamed_over_after_verification_applies_as_verified() {
    // The file patch is decoded through the handle that was hashed: a patch renamed
    // over its path changes nothing (this held before as well).
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("p.dpatch");
    fs::write(&path, rle_full_patch(100)).unwrap();
    let impostor = scratch.path().join("q.dpatch");
    fs::write(&impostor, rle_full_patch(150)).unwrap();
    let dest = scratch.path().join("out.bin");
    let mut progress = after_verification(|| fs::rename(&impostor, &path).unwrap());
    deltaapply::apply_file(None, &path, &dest, &Limits::default(), None, &mut progress)
        .expect("the verified bytes are decoded");
    assert_eq!(fs::read(&dest).unwrap(), [b'a'; 200]);
}

#[test]
fn any_payload_byte_changed_in_place_after_verification_is_refused() {
    // One bit of the payload flipped in the file after the hash, at every position, for
    // each method: whatever the decoders make of it (an error, or other bytes), the
    // apply is refused as corrupt before the output is committed, and never reaches
    // the target check with unverified bytes.
    let bench = common::Workbench::new();
    for v in common::VALID {
        let bytes = v.patch_bytes();
        let old = v.old_path();
        for pos in HEADER_LEN..bytes.len() {
            let context = format!("{} byte {pos}", v.patch);
            let path = bench.file("p.dpatch", &bytes);
            let scratch = common::Scratch::new();
            let mut progress = after_verification(|| {
                let mut f = fs::OpenOptions::new().write(true).open(&path).unwrap();
                f.seek(SeekFrom::Start(pos as u64)).unwrap();
                f.write_all(&[bytes[pos] ^ 0x10]).unwrap();
            });
            let result = deltaapply::apply_file(
                old.as_deref(),
                &path,
                &scratch.dest,
                &Limits::default(),
                None,
                &mut progress,
            );
            match result {
                Err(Error::Corrupt { .. }) => {}
                other => panic!("{context}: {other:?}"),
            }
            scratch.assert_untouched(&context);
        }
    }
}

#[test]
fn an_old_file_rewritten_after_its_hash_is_refused_or_applied_as_verified() {
    // Adversarial plan case 25: the old file changes between its hash check and the
    // decode (another process rewriting it in place). The bsdiff method reads the old
    // file again as it decodes, so the output differs and the apply is refused, the
    // destination untouched; the reference method decodes from the copy it hashed, so
    // it makes the new file. Either way no output but the new file is ever committed.
    let bench = common::Workbench::new();
    for v in common::VALID {
        let Some(old_vector) = v.old_path() else {
            continue;
        };
        let original = fs::read(&old_vector).unwrap();
        let old = bench.file("old.bin", &original);
        let path = bench.file("p.dpatch", &v.patch_bytes());
        let scratch = common::Scratch::new();
        let rewritten = Cell::new(false);
        let mut progress = after_verification(|| {
            // In place, same length, every byte changed: the inode the applier opened.
            let other: Vec<u8> = original.iter().map(|b| b ^ 0x5a).collect();
            let mut f = fs::OpenOptions::new().write(true).open(&old).unwrap();
            f.write_all(&other).unwrap();
            f.sync_all().unwrap();
            rewritten.set(true);
        });
        let result = deltaapply::apply_file(
            Some(&old),
            &path,
            &scratch.dest,
            &Limits::default(),
            None,
            &mut progress,
        );
        assert!(rewritten.get(), "{}: the callback never fired", v.patch);
        match (v.method, result) {
            (Method::Bsdiff, Err(Error::TargetMismatch { .. } | Error::Corrupt { .. })) => {
                scratch.assert_untouched(v.patch);
            }
            (Method::ZstdRef, Ok(_)) => scratch.assert_dest(&v.new_bytes(), v.patch),
            (method, other) => panic!("{} ({method}): {other:?}", v.patch),
        }
    }
}
