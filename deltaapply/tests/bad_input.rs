//! Sweeps of bad input through the library: every truncation and header bit flip of
//! a valid patch of each method, bit flips and re-hashed mutations across the
//! payloads, huge declared sizes, garbage, wrong old files, memory limits and
//! in-place updates. Every case must end in an error (never a panic), with the
//! documented exit code, the destination untouched and no temporary file left.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    Rng, Scratch, VALID, Valid, Workbench, apply, at, chain, error_kind, get_u64, read_vector,
    reseal, reseal_payload, set_u64, vector,
};
use deltaapply::container::memory_bound;
use deltaapply::{ApplyReport, Error, Limits, Method};

/// Applies, turning a library panic into a test failure that names the case.
fn try_apply(
    old: Option<&Path>,
    patch: &Path,
    scratch: &Scratch,
    max_apply_memory: Option<u64>,
    context: &str,
) -> Result<ApplyReport, Error> {
    catch_unwind(AssertUnwindSafe(|| {
        apply(old, patch, &scratch.dest, max_apply_memory, None)
    }))
    .unwrap_or_else(|_| panic!("{context}: the library panicked"))
}

/// Applies `bytes` as a patch and requires an error with exit code 3, the destination
/// untouched and no temporary file. Returns the error.
fn rejected(
    bench: &Workbench,
    bytes: &[u8],
    old: Option<&Path>,
    scratch: &Scratch,
    context: &str,
) -> Error {
    let patch = bench.file("patch.dpatch", bytes);
    let err = match try_apply(old, &patch, scratch, None, context) {
        Ok(_) => panic!("{context}: applied"),
        Err(e) => e,
    };
    assert_eq!(
        err.kind(),
        deltaapply::ErrorKind::BadInput,
        "{context}: {}",
        chain(&err)
    );
    scratch.assert_untouched(context);
    err
}

fn payload_range(patch: &[u8]) -> std::ops::Range<usize> {
    at::PAYLOAD..patch.len()
}

#[test]
fn every_truncation_is_rejected() {
    let bench = Workbench::new();
    let scratch = Scratch::new();
    let mut cases = 0;
    for v in VALID {
        let patch = v.patch_bytes();
        let old = v.old_path();
        for len in 0..patch.len() {
            let context = format!("{} truncated to {len} bytes", v.patch);
            let err = rejected(&bench, &patch[..len], old.as_deref(), &scratch, &context);
            let expected = if len < at::PAYLOAD {
                "Format/TruncatedHeader"
            } else {
                "Format/WrongFileLength"
            };
            assert_eq!(error_kind(&err), expected, "{context}");
            cases += 1;
        }
    }
    assert!(cases > 2000);
}

#[test]
fn every_header_bit_flip_is_rejected() {
    let bench = Workbench::new();
    let scratch = Scratch::new();
    for v in VALID {
        let patch = v.patch_bytes();
        let old = v.old_path();
        for bit in 0..at::PAYLOAD * 8 {
            let mut p = patch.clone();
            p[bit / 8] ^= 1 << (bit % 8);
            let context = format!("{}: header bit {bit} flipped", v.patch);
            if bit == at::SIG_ALGORITHM * 8 {
                // sig_algorithm 0 → 1: a well-formed ed25519 block whose all-zero key
                // and signature fail the origin check (exit 6), as any forgery would.
                let path = bench.file("patch.dpatch", &p);
                let err =
                    try_apply(old.as_deref(), &path, &scratch, None, &context).expect_err(&context);
                assert_eq!(error_kind(&err), "Untrusted/BadPatchSignature", "{context}");
                assert_eq!(err.kind(), deltaapply::ErrorKind::Untrusted, "{context}");
                scratch.assert_untouched(&context);
                continue;
            }
            let err = rejected(&bench, &p, old.as_deref(), &scratch, &context);
            // Every header problem is found before the old file or payload is read.
            assert!(error_kind(&err).starts_with("Format/"), "{context}: {err}");
        }
    }
}

#[test]
fn every_payload_byte_flip_is_rejected() {
    let bench = Workbench::new();
    let scratch = Scratch::new();
    let mut cases = 0;
    for v in VALID {
        let patch = v.patch_bytes();
        let old = v.old_path();
        for i in payload_range(&patch) {
            let mut p = patch.clone();
            p[i] ^= 1 << (i % 8);
            let context = format!("{}: bit {} of byte {i} flipped", v.patch, i % 8);
            let err = rejected(&bench, &p, old.as_deref(), &scratch, &context);
            assert_eq!(error_kind(&err), "Format/PayloadHash", "{context}");
            cases += 1;
        }
    }
    assert!(cases >= 300, "{cases}");
}

/// Payload mutations with `payload_sha256` and the checksum recomputed, so the
/// decoders themselves see the damage (what a forger or a buggy producer can send).
/// A mutation may be harmless (say, a bit of a frame header that does not matter);
/// then the output must still be exactly right. Each case decodes, so this sweep
/// samples the larger payloads to stay fast in debug builds.
#[test]
fn rehashed_payload_mutations_never_panic_or_install_bad_output() {
    let bench = Workbench::new();
    let scratch = Scratch::new();
    let mut rng = Rng(0xbad1);
    for v in VALID {
        let patch = v.patch_bytes();
        let new = v.new_bytes();
        let old = v.old_path();
        let (mut rejected_count, mut harmless) = (0, 0);
        // Every payload byte of the small patches; a spread of 500 in larger ones.
        let stride = (patch.len() - at::PAYLOAD).div_ceil(500);
        for i in payload_range(&patch).step_by(stride) {
            // Alternately one flipped bit and one random byte.
            let byte = if i % 2 == 0 {
                patch[i] ^ (1 << (i / 2 % 8))
            } else {
                patch[i] ^ (1 + rng.below(255) as u8)
            };
            let mut p = patch.clone();
            p[i] = byte;
            reseal_payload(&mut p);
            let context = format!("{}: payload byte {i} set to {byte:#04x}", v.patch);
            let path = bench.file("patch.dpatch", &p);
            match try_apply(old.as_deref(), &path, &scratch, None, &context) {
                Ok(_) => {
                    scratch.assert_dest(&new, &context);
                    scratch.reset();
                    harmless += 1;
                }
                Err(e) => {
                    let kind = error_kind(&e);
                    assert!(
                        kind == "Corrupt" || kind == "TargetMismatch",
                        "{context}: {kind}: {}",
                        chain(&e)
                    );
                    scratch.assert_untouched(&context);
                    rejected_count += 1;
                }
            }
        }
        eprintln!(
            "{}: {rejected_count} mutations rejected, {harmless} harmless",
            v.patch
        );
        assert!(rejected_count > harmless, "{}", v.patch);
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let bench = Workbench::new();
    let scratch = Scratch::new();
    let mut rng = Rng(7);
    for v in VALID {
        let patch = v.patch_bytes();
        for extra in [vec![0], vec![0; 1000], rng.bytes(1), rng.bytes(1000)] {
            let p = [patch.as_slice(), &extra].concat();
            let context = format!("{} + {} bytes", v.patch, extra.len());
            let err = rejected(&bench, &p, v.old_path().as_deref(), &scratch, &context);
            assert_eq!(error_kind(&err), "Format/WrongFileLength", "{context}");
        }
    }
}

/// Sizes far beyond the input in every size field, with the checksum recomputed and
/// with `apply_memory` either left alone or recomputed to match. Each must fail fast:
/// nothing may be allocated, read or written according to such a field.
#[test]
fn huge_declared_sizes_are_rejected_quickly() {
    const FIELDS: [(&str, usize); 7] = [
        ("source_size", at::SOURCE_SIZE),
        ("target_size", at::TARGET_SIZE),
        ("payload_size", at::PAYLOAD_SIZE),
        ("control_size", at::CONTROL_SIZE),
        ("diff_size", at::DIFF_SIZE),
        ("extra_size", at::EXTRA_SIZE),
        ("apply_memory", at::APPLY_MEMORY),
    ];
    const HUGE: [u64; 7] = [
        1 << 32,
        1 << 40,
        1 << 44,
        1 << 62,
        1 << 63,
        u64::MAX - 296,
        u64::MAX,
    ];
    let bench = Workbench::new();
    let scratch = Scratch::new();
    let mut slowest = Duration::ZERO;
    for v in VALID {
        let patch = v.patch_bytes();
        let old = v.old_path();
        let method = Method::from_code(patch[at::METHOD]).unwrap();
        for (field, offset) in FIELDS {
            for value in HUGE {
                for recompute in [false, true] {
                    for limit in [None, Some(u64::MAX)] {
                        let mut p = patch.clone();
                        set_u64(&mut p, offset, value);
                        if recompute && offset != at::APPLY_MEMORY {
                            let memory = memory_bound(
                                method,
                                p[at::WINDOW_LOG],
                                get_u64(&p, at::SOURCE_SIZE),
                                get_u64(&p, at::TARGET_SIZE),
                            );
                            set_u64(&mut p, at::APPLY_MEMORY, memory);
                        }
                        reseal(&mut p);
                        let context = format!(
                            "{}: {field} = {value}, apply_memory {}, limit {limit:?}",
                            v.patch,
                            if recompute { "recomputed" } else { "as was" }
                        );
                        let path = bench.file("patch.dpatch", &p);
                        let started = Instant::now();
                        let result = try_apply(old.as_deref(), &path, &scratch, limit, &context);
                        let took = started.elapsed();
                        slowest = slowest.max(took);
                        let err = result.err().unwrap_or_else(|| panic!("{context}: applied"));
                        assert!(
                            matches!(
                                err.kind(),
                                deltaapply::ErrorKind::BadInput
                                    | deltaapply::ErrorKind::WrongSource
                                    | deltaapply::ErrorKind::Limit
                            ),
                            "{context}: {}",
                            chain(&err)
                        );
                        assert!(took < Duration::from_secs(2), "{context}: took {took:?}");
                        scratch.assert_untouched(&context);
                    }
                }
            }
        }
    }
    eprintln!("slowest huge-size case: {slowest:?}");
}

/// The bsdiff stream boundaries moved, the sum kept equal to `payload_size`: each
/// stream then starts or ends mid-frame.
#[test]
fn moved_stream_boundaries_are_rejected() {
    let bench = Workbench::new();
    let scratch = Scratch::new();
    let v = VALID[0];
    assert_eq!(v.method, Method::Bsdiff);
    let patch = v.patch_bytes();
    let (c, d, e) = (
        get_u64(&patch, at::CONTROL_SIZE),
        get_u64(&patch, at::DIFF_SIZE),
        get_u64(&patch, at::EXTRA_SIZE),
    );
    let total = c + d + e;
    let mut splits = vec![(total, 0), (0, total), (0, 0), (c + d, 0), (0, c + d)];
    for delta in [-8i64, -1, 1, 8] {
        splits.push((
            c.saturating_add_signed(delta),
            d.saturating_add_signed(-delta),
        ));
        splits.push((c, d.saturating_add_signed(delta)));
    }
    for (control, diff) in splits {
        if (control, diff) == (c, d) || control + diff > total {
            continue;
        }
        let mut p = patch.clone();
        set_u64(&mut p, at::CONTROL_SIZE, control);
        set_u64(&mut p, at::DIFF_SIZE, diff);
        set_u64(&mut p, at::EXTRA_SIZE, total - control - diff);
        reseal(&mut p);
        let context = format!("streams {control} + {diff} + {}", total - control - diff);
        let err = rejected(&bench, &p, v.old_path().as_deref(), &scratch, &context);
        assert_eq!(error_kind(&err), "Corrupt", "{context}: {}", chain(&err));
    }
}

#[test]
fn garbage_is_rejected() {
    let bench = Workbench::new();
    let scratch = Scratch::new();
    let old = vector("exe.old");
    let mut rng = Rng(0x6a7b);
    let lengths = [
        0, 1, 7, 8, 11, 12, 100, 295, 296, 297, 572, 1000, 4096, 65536,
    ];
    for len in lengths {
        let random = rng.bytes(len);
        let zeros = vec![0u8; len];
        let ff = vec![0xffu8; len];
        let mut magic_then_random = random.clone();
        let n = len.min(8);
        magic_then_random[..n].copy_from_slice(&deltaapply::container::MAGIC[..n]);
        for (what, bytes) in [
            ("random", &random),
            ("zeros", &zeros),
            ("0xff", &ff),
            ("magic + random", &magic_then_random),
        ] {
            let context = format!("{len} bytes of {what}");
            rejected(&bench, bytes, Some(&old), &scratch, &context);
        }
    }
    // Headers that pass magic, version and length, with a correct checksum over
    // random fields.
    for i in 0..500 {
        let len = at::PAYLOAD + rng.below(64) as usize;
        let mut p = rng.bytes(len);
        p[..8].copy_from_slice(&deltaapply::container::MAGIC);
        p[8..12].copy_from_slice(&[1, 0, 0x28, 0x01]);
        reseal(&mut p);
        let context = format!("resealed random header {i}");
        let err = rejected(&bench, &p, Some(&old), &scratch, &context);
        assert!(error_kind(&err).starts_with("Format/"), "{context}: {err}");
    }
}

/// Headers that pass every check (the old file really is `exe.old`, the payload hash
/// is right) over random payloads, some starting with a zstd frame magic: only the
/// decoders stand between these and the output.
#[test]
fn consistent_headers_over_random_payloads_are_rejected() {
    let bench = Workbench::new();
    let scratch = Scratch::new();
    let old_path = vector("exe.old");
    let old = read_vector("exe.old");
    let mut rng = Rng(0xc0de);
    for i in 0..300 {
        let method = Method::ALL[i % 3];
        let window_log = 10 + rng.below(11) as u8;
        let payload_len = rng.below(200) as usize;
        let mut payload = rng.bytes(payload_len);
        if i % 2 == 0 && payload.len() >= 4 {
            payload[..4].copy_from_slice(&[0x28, 0xb5, 0x2f, 0xfd]);
        }
        let target_len = rng.below(100) as usize;
        let target = rng.bytes(target_len);
        let source = (method != Method::Full).then(|| deltaapply::FileId {
            size: old.len() as u64,
            sha256: deltaapply::Sha256Digest::of(&old),
        });
        let streams = (method == Method::Bsdiff).then(|| {
            let len = payload.len() as u64;
            let control = rng.below(len + 1);
            let diff = rng.below(len - control + 1);
            deltaapply::container::StreamSizes {
                control,
                diff,
                extra: len - control - diff,
                diff_coding: if rng.below(2) == 0 {
                    deltaapply::container::DiffCoding::Plain
                } else {
                    deltaapply::container::DiffCoding::ZeroRun
                },
                transform: 0,
            }
        });
        let header = deltaapply::Header {
            body: deltaapply::container::Body::from_parts(method, source, streams)
                .expect("the sweep builds each method's fields"),
            window_log,
            target: deltaapply::FileId {
                size: target.len() as u64,
                sha256: deltaapply::Sha256Digest::of(&target),
            },
            payload: deltaapply::FileId {
                size: payload.len() as u64,
                sha256: deltaapply::Sha256Digest::of(&payload),
            },
            apply_memory: memory_bound(method, window_log, old.len() as u64, target.len() as u64),
            signature: deltaapply::container::SignatureSlot::Unsigned,
        };
        let mut header = header;
        if method == Method::Full {
            header.apply_memory = memory_bound(method, window_log, 0, target.len() as u64);
        }
        let p = [header.encode().as_slice(), &payload].concat();
        let context = format!("{method} header over {} random bytes ({i})", payload.len());
        let err = rejected(&bench, &p, Some(&old_path), &scratch, &context);
        assert!(
            ["Corrupt", "TargetMismatch"].contains(&error_kind(&err).as_str()),
            "{context}: {}",
            chain(&err)
        );
    }
}

#[test]
fn a_wrong_old_file_is_rejected_and_named() {
    let bench = Workbench::new();
    let scratch = Scratch::new();
    for v in VALID.iter().filter(|v| v.old.is_some()) {
        let patch = vector(v.patch);
        let good = read_vector(v.old.unwrap());
        let last = good.len() - 1;
        let mut variants: Vec<(String, Vec<u8>)> = [0, good.len() / 2, last]
            .into_iter()
            .map(|i| {
                let mut b = good.clone();
                b[i] ^= 0x20;
                (format!("byte {i} changed"), b)
            })
            .collect();
        variants.push((
            "one byte appended".into(),
            [good.as_slice(), b"\n"].concat(),
        ));
        variants.push(("last byte removed".into(), good[..last].to_vec()));
        variants.push(("empty".into(), Vec::new()));
        variants.push(("another file".into(), read_vector("zeros.old")));
        for (what, bytes) in variants {
            let old = bench.file("old file.bin", &bytes);
            let context = format!("{}: old file {what}", v.patch);
            let err = try_apply(Some(&old), &patch, &scratch, None, &context)
                .err()
                .unwrap_or_else(|| panic!("{context}: applied"));
            assert_eq!(error_kind(&err), "WrongSource", "{context}");
            assert_eq!(err.kind(), deltaapply::ErrorKind::WrongSource, "{context}");
            let message = err.to_string();
            assert!(
                message.contains(&old.display().to_string()),
                "{context}: message does not name the old file: {message}"
            );
            scratch.assert_untouched(&context);
        }

        // No old file at all, and one that does not exist.
        let err = try_apply(None, &patch, &scratch, None, "no old file").unwrap_err();
        assert_eq!(
            (error_kind(&err).as_str(), err.kind()),
            ("MissingSource", deltaapply::ErrorKind::WrongSource)
        );
        let missing = bench.dir.path().join("no such file");
        let err = try_apply(Some(&missing), &patch, &scratch, None, "missing").unwrap_err();
        assert_eq!(
            (error_kind(&err).as_str(), err.kind()),
            ("SourceIo", deltaapply::ErrorKind::Failure)
        );
        assert!(err.to_string().contains(&missing.display().to_string()));
        scratch.assert_untouched("missing old file");
    }

    // A full image ignores whatever old file it is given.
    let full = VALID[2];
    assert_eq!(full.method, Method::Full);
    let wrong = vector("exe-wrong.old");
    try_apply(Some(&wrong), &vector(full.patch), &scratch, None, "full").unwrap();
    scratch.assert_dest(&full.new_bytes(), "full image with an unrelated old file");
}

#[test]
fn the_memory_limit_is_checked_before_anything_is_read() {
    let bench = Workbench::new();
    let scratch = Scratch::new();
    let missing_old = bench.dir.path().join("absent.old");
    for v in VALID {
        let patch = v.patch_bytes();
        let needed = get_u64(&patch, at::APPLY_MEMORY);
        // A corrupt payload and an old file that does not exist: the limit must be
        // what fails, so neither was looked at.
        let mut corrupt = patch.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let path = bench.file("patch.dpatch", &corrupt);
        for limit in [0, 1 << 20, needed - 1] {
            let context = format!("{} with limit {limit} < {needed}", v.patch);
            let mut progress_calls = 0;
            let result = deltaapply::apply_file(
                Some(&missing_old),
                &path,
                &scratch.dest,
                &Limits {
                    max_apply_memory: limit,
                },
                None,
                &mut |_| progress_calls += 1,
            );
            let err = result.err().unwrap_or_else(|| panic!("{context}: applied"));
            assert_eq!(
                error_kind(&err),
                "MemoryLimit",
                "{context}: {}",
                chain(&err)
            );
            assert_eq!(err.kind(), deltaapply::ErrorKind::Limit, "{context}");
            assert_eq!(progress_calls, 0, "{context}: something was read");
            scratch.assert_untouched(&context);
        }
        // Exactly the limit is enough.
        let report = try_apply(
            v.old_path().as_deref(),
            &vector(v.patch),
            &scratch,
            Some(needed),
            v.patch,
        )
        .unwrap();
        assert_eq!(report.method, v.method);
        scratch.assert_dest(&v.new_bytes(), v.patch);
        scratch.reset();
    }
}

/// `old == dest`: a failed in-place update leaves the old file byte for byte, and no
/// temporary file beside it; a good one replaces it.
#[test]
fn a_failed_in_place_update_leaves_the_old_file() {
    let bench = Workbench::new();
    let in_place = |v: Valid, bad: &[u8], context: &str| {
        let old = read_vector(v.old.unwrap_or("exe.old"));
        let scratch = Scratch::holding("app.bin", &old);
        let path = bench.file("patch.dpatch", bad);
        let result = try_apply(Some(&scratch.dest), &path, &scratch, None, context);
        assert!(result.is_err(), "{context}: applied");
        scratch.assert_untouched(context);
    };
    let mut rng = Rng(0x1234);
    for v in VALID {
        let patch = v.patch_bytes();
        let mut flipped = patch.clone();
        let mid = (at::PAYLOAD + patch.len()) / 2;
        flipped[mid] ^= 0x04;
        in_place(v, &flipped, &format!("{}: payload bit flipped", v.patch));
        in_place(
            v,
            &patch[..patch.len() - 1],
            &format!("{}: truncated", v.patch),
        );
        // Re-hashed payload damage, which fails while (or after) writing the output.
        for n in 0..20 {
            let mut p = patch.clone();
            let i = at::PAYLOAD + rng.below((patch.len() - at::PAYLOAD) as u64) as usize;
            p[i] = p[i].wrapping_add(1 + rng.below(255) as u8);
            reseal_payload(&mut p);
            let old = read_vector(v.old.unwrap_or("exe.old"));
            let scratch = Scratch::holding("app.bin", &old);
            let path = bench.file("patch.dpatch", &p);
            let context = format!("{}: in place, byte {i} changed ({n})", v.patch);
            if try_apply(Some(&scratch.dest), &path, &scratch, None, &context).is_ok() {
                scratch.assert_dest(&v.new_bytes(), &context);
            } else {
                scratch.assert_untouched(&context);
            }
        }
    }
    // Vectors that fail only at the end: the whole output was written, then refused.
    for name in ["wrong-target-hash", "diff-leftover", "control-short"] {
        let scratch = Scratch::holding("app.bin", &read_vector("fox.old"));
        let patch = vector(&format!("{name}.dpatch"));
        let err = try_apply(Some(&scratch.dest), &patch, &scratch, None, name).unwrap_err();
        assert_eq!(err.kind(), deltaapply::ErrorKind::BadInput, "{name}");
        scratch.assert_untouched(name);
    }
    // And a good patch replaces the file.
    for v in VALID.iter().filter(|v| v.old.is_some()) {
        let scratch = Scratch::holding("app.bin", &read_vector(v.old.unwrap()));
        try_apply(
            Some(&scratch.dest),
            &vector(v.patch),
            &scratch,
            None,
            v.patch,
        )
        .unwrap();
        scratch.assert_dest(&v.new_bytes(), v.patch);
    }
}

/// format-spec §5.1: a frame whose window exceeds `2^window_log` MUST be rejected.
/// `testdata/vectors/full-window-too-large.dpatch` covers a frame too big for the
/// applier's output buffer; this is the same with a small frame, which libzstd
/// decodes in one pass (`ZSTD_decompressStream`'s single-pass shortcut) without
/// checking `ZSTD_d_windowLogMax`, so the applier accepts it.
#[test]
fn a_small_frame_above_the_window_limit_is_rejected() {
    let bench = Workbench::new();
    let scratch = Scratch::new();
    let v = VALID[2];
    let mut p = v.patch_bytes();
    assert!(p[at::WINDOW_LOG] > 10);
    p[at::WINDOW_LOG] = 10;
    let target = get_u64(&p, at::TARGET_SIZE);
    set_u64(
        &mut p,
        at::APPLY_MEMORY,
        memory_bound(Method::Full, 10, 0, target),
    );
    reseal(&mut p);
    rejected(
        &bench,
        &p,
        None,
        &scratch,
        "full-valid's frame under window_log 10",
    );
}
