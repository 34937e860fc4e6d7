//! Signed patches through the library (format-spec `patch-v1.md` §3.5): the valid
//! patches of each method signed here, independently of `deltapack`'s signing code
//! (the signed message is built from the spec's definition), then applied with and
//! without a trusted key, bit-flipped, truncated, forged and re-signed. Every refusal
//! must come before the old file or the payload is read, leave the destination as it
//! was and leave no temporary file.

mod common;

use std::path::{Path, PathBuf};

use common::{Scratch, VALID, Valid, Workbench, at, chain, error_kind, read_vector, reseal};
use deltaapply::{ApplyReport, Error, KeyId, Limits, Origin, Patch, PublicKey, TrustedKeys};
use ed25519_dalek::{Signer, SigningKey};

/// The signing key of these tests, and another one nobody trusts.
const SEED: [u8; 32] = [0x5e; 32];
const OTHER_SEED: [u8; 32] = [0x07; 32];

/// The message a v1 patch signature signs: the context string, a zero byte and the
/// first 192 header bytes.
fn signed_message(patch: &[u8]) -> Vec<u8> {
    [b"deltapack patch v1\0".as_slice(), &patch[..at::SIGNED]].concat()
}

/// `patch` (valid, unsigned) with its signature block filled in by `seed`'s key.
fn sign(patch: &[u8], seed: &[u8; 32]) -> Vec<u8> {
    let key = SigningKey::from_bytes(seed);
    let mut p = patch.to_vec();
    let signature = key.sign(&signed_message(&p)).to_bytes();
    p[at::SIG_ALGORITHM] = 1;
    p[at::SIG_RESERVED..at::PUBLIC_KEY].fill(0);
    p[at::PUBLIC_KEY..at::SIGNATURE].copy_from_slice(&key.verifying_key().to_bytes());
    p[at::SIGNATURE..at::PAYLOAD].copy_from_slice(&signature);
    p
}

fn public(seed: &[u8; 32]) -> PublicKey {
    PublicKey::from_bytes(SigningKey::from_bytes(seed).verifying_key().to_bytes()).unwrap()
}

fn trusted() -> TrustedKeys {
    TrustedKeys::single(public(&SEED))
}

fn key_id() -> KeyId {
    public(&SEED).id()
}

/// Applies with the default limits, counting progress reports (there is one for every
/// chunk of the old file or payload read, and for the output written).
fn apply_counting(
    old: Option<&Path>,
    patch: &Path,
    dest: &Path,
    max_apply_memory: u64,
    trusted: Option<&TrustedKeys>,
) -> (Result<ApplyReport, Error>, usize) {
    let mut reports = 0;
    let limits = Limits { max_apply_memory };
    let result = deltaapply::apply_file(old, patch, dest, &limits, trusted, &mut |_| reports += 1);
    (result, reports)
}

/// Applies `bytes` and requires a refusal before anything but the header was read:
/// given a limit of 0 and an old file that does not exist, only the header checks and
/// the origin check can be what fails. Returns the error.
fn refused_at_header(
    bench: &Workbench,
    bytes: &[u8],
    scratch: &Scratch,
    trusted: Option<&TrustedKeys>,
    context: &str,
) -> Error {
    let patch = bench.file("patch.dpatch", bytes);
    let missing = bench.dir.path().join("no old file here");
    let (result, reports) = apply_counting(Some(&missing), &patch, &scratch.dest, 0, trusted);
    let err = result.err().unwrap_or_else(|| panic!("{context}: applied"));
    assert!(
        matches!(
            err.kind(),
            deltaapply::ErrorKind::BadInput | deltaapply::ErrorKind::Untrusted
        ),
        "{context}: {:?}: {}",
        err.kind(),
        chain(&err)
    );
    assert_eq!(
        reports, 0,
        "{context}: something beyond the header was read"
    );
    scratch.assert_untouched(context);
    err
}

fn signed(v: &Valid) -> Vec<u8> {
    sign(&v.patch_bytes(), &SEED)
}

#[test]
fn signed_patches_apply_with_and_without_the_key() {
    let bench = Workbench::new();
    let scratch = Scratch::new();
    let both = TrustedKeys::new(vec![public(&OTHER_SEED), public(&SEED)], 1).unwrap();
    for v in VALID {
        let path = bench.file("signed.dpatch", &signed(&v));
        let cases = [
            (Some(trusted()), Origin::Trusted { key_id: key_id() }),
            (Some(both.clone()), Origin::Trusted { key_id: key_id() }),
            (
                None,
                Origin::Unverified {
                    signed_by: Some(key_id()),
                },
            ),
        ];
        for (keys, origin) in cases {
            let context = format!("{} signed, trusting {keys:?}", v.patch);
            let (result, _) = apply_counting(
                v.old_path().as_deref(),
                &path,
                &scratch.dest,
                1 << 30,
                keys.as_ref(),
            );
            let report = result.unwrap_or_else(|e| panic!("{context}: {}", chain(&e)));
            assert_eq!(report.origin, origin, "{context}");
            scratch.assert_dest(&v.new_bytes(), &context);
            scratch.reset();
        }
        // The method on an opened patch says the same.
        let patch = Patch::open(&path).unwrap();
        assert_eq!(
            patch.check_origin(Some(&trusted())).unwrap(),
            Origin::Trusted { key_id: key_id() }
        );
        // And the unsigned original is unverified without a key.
        let unsigned = Patch::open(&common::vector(v.patch)).unwrap();
        assert_eq!(
            unsigned.check_origin(None).unwrap(),
            Origin::Unverified { signed_by: None }
        );
    }
}

/// Every single-bit change of a signed header is refused, with a trusted key and
/// without one, before the old file or the payload is read. Where the bit lands
/// decides which check catches it.
#[test]
fn every_bit_flip_of_a_signed_header_is_refused() {
    let bench = Workbench::new();
    let scratch = Scratch::new();
    let key = trusted();
    let mut cases = 0;
    for v in VALID {
        let patch = signed(&v);
        for bit in 0..at::PAYLOAD * 8 {
            let byte = bit / 8;
            let mut p = patch.clone();
            p[byte] ^= 1 << (bit % 8);
            for keys in [Some(&key), None] {
                let context = format!(
                    "{} signed, bit {bit} flipped, {}",
                    v.patch,
                    if keys.is_some() { "key" } else { "no key" }
                );
                let err = refused_at_header(&bench, &p, &scratch, keys, &context);
                let kind = error_kind(&err);
                let expected: &[&str] = match byte {
                    // Magic, version and header length have their own errors.
                    0..12 => &[
                        "Format/BadMagic",
                        "Format/UnsupportedVersion",
                        "Format/BadHeaderLength",
                    ],
                    12..at::SIGNED => &["Format/HeaderChecksum"],
                    at::SIG_ALGORITHM..at::PUBLIC_KEY => &["Format/BadSignatureBlock"],
                    // A changed key is another key: not trusted, or (with no key
                    // configured) not the key that made the signature.
                    at::PUBLIC_KEY..at::SIGNATURE if keys.is_some() => {
                        &["Untrusted/UntrustedPatchKey"]
                    }
                    _ => &["Untrusted/BadPatchSignature"],
                };
                assert!(
                    expected.contains(&kind.as_str()),
                    "{context}: {kind}: {}",
                    chain(&err)
                );
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 3 * 296 * 8 * 2);
}

#[test]
fn truncated_signed_patches_are_refused() {
    let bench = Workbench::new();
    let scratch = Scratch::new();
    let key = trusted();
    for v in VALID {
        let patch = signed(&v);
        for len in 0..patch.len() {
            for keys in [Some(&key), None] {
                let context = format!(
                    "{} signed, cut to {len} bytes, key {}",
                    v.patch,
                    keys.is_some()
                );
                let err = refused_at_header(&bench, &patch[..len], &scratch, keys, &context);
                let expected = if len < at::PAYLOAD {
                    "Format/TruncatedHeader"
                } else {
                    "Format/WrongFileLength"
                };
                assert_eq!(error_kind(&err), expected, "{context}");
                assert_eq!(err.kind(), deltaapply::ErrorKind::BadInput, "{context}");
            }
        }
    }
}

/// With a key configured, a patch not signed by it is refused before the memory
/// limit, the old file and the payload: a limit of 0 and a missing old file do not
/// change the error.
#[test]
fn with_a_key_unsigned_and_foreign_patches_are_refused_first() {
    let bench = Workbench::new();
    let scratch = Scratch::new();
    let key = trusted();
    for v in VALID {
        let unsigned = v.patch_bytes();
        let foreign = sign(&unsigned, &OTHER_SEED);
        for (what, bytes, kind) in [
            ("unsigned", &unsigned, "Untrusted/Unsigned"),
            (
                "signed by another key",
                &foreign,
                "Untrusted/UntrustedPatchKey",
            ),
        ] {
            let context = format!("{}: {what}", v.patch);
            let err = refused_at_header(&bench, bytes, &scratch, Some(&key), &context);
            assert_eq!(error_kind(&err), kind, "{context}: {}", chain(&err));
            assert_eq!(err.kind(), deltaapply::ErrorKind::Untrusted, "{context}");
            let message = chain(&err);
            assert!(message.contains("patch.dpatch"), "{context}: {message}");
            if kind == "Untrusted/UntrustedPatchKey" {
                // Both key ids are named, so the user can tell which key is which.
                assert!(
                    message.contains(&public(&OTHER_SEED).id().to_string())
                        && message.contains(&key_id().to_string()),
                    "{context}: {message}"
                );
            }
        }
        // Without a key, the foreign signature is verified against its own key.
        let path = bench.file("foreign.dpatch", &foreign);
        let (result, _) =
            apply_counting(v.old_path().as_deref(), &path, &scratch.dest, 1 << 30, None);
        assert_eq!(
            result.unwrap().origin,
            Origin::Unverified {
                signed_by: Some(public(&OTHER_SEED).id())
            }
        );
        scratch.reset();
    }
}

/// Changing a signed field and recomputing the header checksum (what an attacker
/// who cannot sign would do) fails the signature, with and without a key.
#[test]
fn a_header_changed_after_signing_is_refused() {
    let bench = Workbench::new();
    let scratch = Scratch::new();
    let key = trusted();
    for v in VALID {
        let patch = signed(&v);
        for (field, offset) in [
            ("target_sha256", at::TARGET_SHA),
            ("payload_sha256", at::PAYLOAD_SHA),
            ("source_sha256", at::SOURCE_SHA),
        ] {
            if v.old.is_none() && offset == at::SOURCE_SHA {
                continue;
            }
            let mut p = patch.clone();
            p[offset] ^= 0x01;
            reseal(&mut p);
            for keys in [Some(&key), None] {
                let context = format!("{}: {field} changed, key {}", v.patch, keys.is_some());
                let err = refused_at_header(&bench, &p, &scratch, keys, &context);
                assert_eq!(error_kind(&err), "Untrusted/BadPatchSignature", "{context}");
            }
        }
        // Re-signing the changed header with another key does not help with a key
        // configured.
        let mut p = v.patch_bytes();
        p[at::TARGET_SHA] ^= 0x01;
        reseal(&mut p);
        let resigned = sign(&p, &OTHER_SEED);
        let err = refused_at_header(&bench, &resigned, &scratch, Some(&key), v.patch);
        assert_eq!(error_kind(&err), "Untrusted/UntrustedPatchKey");
    }
}

/// An in-place update refused for its origin leaves the installed file as it was.
#[test]
fn a_refused_in_place_update_leaves_the_old_file() {
    let bench = Workbench::new();
    let key = trusted();
    for v in VALID.iter().filter(|v| v.old.is_some()) {
        let old = read_vector(v.old.unwrap());
        for (what, bytes) in [
            ("unsigned", v.patch_bytes()),
            ("foreign", sign(&v.patch_bytes(), &OTHER_SEED)),
        ] {
            let scratch = Scratch::holding("app.bin", &old);
            let path: PathBuf = bench.file("patch.dpatch", &bytes);
            let (result, reports) = apply_counting(
                Some(&scratch.dest),
                &path,
                &scratch.dest,
                1 << 30,
                Some(&key),
            );
            let err = result.expect_err(what);
            assert_eq!(err.kind(), deltaapply::ErrorKind::Untrusted, "{what}");
            assert_eq!(reports, 0, "{what}: the old file was read");
            scratch.assert_untouched(what);
        }
        // The signed one goes through.
        let scratch = Scratch::holding("app.bin", &old);
        let path = bench.file("patch.dpatch", &signed(v));
        let (result, _) = apply_counting(
            Some(&scratch.dest),
            &path,
            &scratch.dest,
            1 << 30,
            Some(&key),
        );
        result.unwrap();
        scratch.assert_dest(&v.new_bytes(), v.patch);
    }
}
