//! A tree patch's index costs much more memory decoded than on the wire: a directory
//! entry with a short name is 6 to 9 bytes in the index and a hundred or more in
//! memory (its entry, its path's allocation, its recipe slot, and the case-folded copy
//! and B-tree slot of the collision check). The header's `apply_memory` only promises
//! four bytes per index byte, and a hostile (or unsigned) patch can declare anything,
//! so the applier charges what it decodes against its own limit (`--max-memory`) and
//! refuses with the memory-limit error (exit 5) once over it (tree-v1 §4.3).
//!
//! The worst case here is a full tree image of a million directories with the
//! shortest names that can be distinct (1 to 4 characters): a 9 MB index, a header
//! declaring 40 MB, which used to cost about 300 MB to decode. It is applied with
//! the real `deltaapply` binary under an address-space limit (`ulimit -v`) that the
//! old decoder could not stay within.

#![cfg(unix)]

use std::path::Path;
use std::process::Command;

use deltaapply::container::{BASE_APPLY_MEMORY, FileId, MIN_WINDOW_LOG};
use deltaapply::{Sha256Digest, TreeHeader};

/// `n` distinct directory names of at most four characters from `0-9a-z`, none a
/// Windows device name, in byte order (so a valid listing in that order).
fn short_names(n: usize) -> Vec<String> {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut names = Vec::with_capacity(n);
    let mut current: Vec<String> = vec![String::new()];
    'lengths: for _ in 0..4 {
        let mut next = Vec::new();
        for prefix in &current {
            for &c in ALPHABET {
                let mut name = prefix.clone();
                name.push(c as char);
                next.push(name);
            }
        }
        for name in &next {
            if names.len() == n {
                break 'lengths;
            }
            let device = matches!(name.as_str(), "con" | "prn" | "aux" | "nul")
                || (name.len() == 4
                    && (name.starts_with("com") || name.starts_with("lpt"))
                    && name.as_bytes()[3].is_ascii_digit());
            if !device {
                names.push(name.clone());
            }
        }
        current = next;
    }
    assert_eq!(names.len(), n, "enough short names");
    names.sort();
    names
}

/// An unsigned full tree image whose new listing is `n` directories with short names
/// and whose header declares the floor plus four bytes per index byte (what the
/// reference producer writes), naming a tree that is not the index's (the index is
/// refused before that is compared).
fn directories_patch(n: usize) -> Vec<u8> {
    let mut index = Vec::new();
    for count in [0, n as u64, 0] {
        index.extend_from_slice(&count.to_le_bytes());
    }
    for name in short_names(n) {
        index.push(2);
        index.extend_from_slice(&0o755u16.to_le_bytes());
        index.extend_from_slice(&(name.len() as u16).to_le_bytes());
        index.extend_from_slice(name.as_bytes());
    }
    let mut payload = (index.len() as u64).to_le_bytes().to_vec();
    payload.extend_from_slice(&index);
    let header = TreeHeader::tree(
        None,
        MIN_WINDOW_LOG,
        FileId {
            size: 0,
            sha256: Sha256Digest::of(b"not the index's tree"),
        },
        FileId {
            size: payload.len() as u64,
            sha256: Sha256Digest::of(&payload),
        },
        BASE_APPLY_MEMORY + 4 * index.len() as u64,
    );
    [header.encode().as_slice(), &payload].concat()
}

/// Runs `deltaapply ARGS` with its address space limited to `kib` KiB.
fn deltaapply_limited(kib: u64, args: &[&Path]) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_deltaapply"))
        .args(args)
        .output()
        .expect("run sh")
}

/// Address space for the binary: its own baseline (about 25 MiB in a debug build)
/// plus the 64 MiB it is allowed, with room to spare; the old decoder needed about
/// 300 MB for this index.
const ADDRESS_SPACE_KIB: u64 = 160 << 10;

#[test]
fn a_worst_case_index_is_refused_within_the_memory_limit() {
    let scratch = tempfile::tempdir().unwrap();
    let patch = scratch.path().join("dirs.dpatch");
    let bytes = directories_patch(1_000_000);
    std::fs::write(&patch, &bytes).unwrap();
    let declared = TreeHeader::decode_tree(&bytes[..296], bytes.len() as u64)
        .unwrap()
        .apply_memory;
    assert!(
        declared < 64 << 20,
        "the header passes a 64 MiB limit: {declared}"
    );

    let dest = scratch.path().join("new");
    let out = deltaapply_limited(
        ADDRESS_SPACE_KIB,
        &[
            Path::new("apply"),
            &patch,
            Path::new("-o"),
            &dest,
            Path::new("--max-memory"),
            Path::new("64MiB"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{:?}: {stderr}", out.status);
    assert!(
        stderr.contains("memory") && stderr.contains("--max-memory"),
        "{stderr}"
    );
    assert!(!dest.exists());
    let left: Vec<_> = std::fs::read_dir(scratch.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "nothing but the patch: {left:?}");
}

#[test]
fn an_index_the_budget_admits_is_decoded_within_the_limit() {
    // The other way round: the charges are an upper bound of what decoding takes. Two
    // hundred thousand short directories are charged about 63 MB, under a 64 MiB limit:
    // they are decoded to the end (and the patch refused then, exit 3, for naming
    // another tree), within the binary's own address space (under 20 MiB) plus the
    // limit and a little room.
    let scratch = tempfile::tempdir().unwrap();
    let patch = scratch.path().join("dirs.dpatch");
    std::fs::write(&patch, directories_patch(200_000)).unwrap();
    let dest = scratch.path().join("new");
    let out = deltaapply_limited(
        (20 << 10) + (64 << 10) + (8 << 10),
        &[
            Path::new("apply"),
            &patch,
            Path::new("-o"),
            &dest,
            Path::new("--max-memory"),
            Path::new("64MiB"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{:?}: {stderr}", out.status);
    assert!(stderr.contains("that is not the header's"), "{stderr}");
}

#[test]
fn the_address_space_limit_leaves_room_for_a_real_tree_patch() {
    // The control: under the same limit the binary applies the full tree image of the
    // vectors, so the refusal above is the budget's, not the address space's.
    let scratch = tempfile::tempdir().unwrap();
    let vector =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/vectors/tree/full-image.dpatch");
    let dest = scratch.path().join("new");
    let out = deltaapply_limited(
        ADDRESS_SPACE_KIB,
        &[
            Path::new("apply"),
            &vector,
            Path::new("-o"),
            &dest,
            Path::new("--max-memory"),
            Path::new("64MiB"),
        ],
    );
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dest.join("bin/app").is_file());
}
