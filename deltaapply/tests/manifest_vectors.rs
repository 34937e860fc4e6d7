//! The manifest and signature test vectors (`testdata/manifest-vectors`,
//! manifest-v1.md §9, signatures.md §5): every case of `cases.json` checked in the
//! order an applier checks (signature, then parse, then expiry), and the vector
//! publish directory checked file by file, each patch applied to its base rebuilt
//! from its full image.
//!
//! Needs the `cli` feature (`serde_json` to read the case list).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use deltaapply::manifest::{MANIFEST_FILE, Manifest, ManifestError, SIGNATURE_FILE, Timestamp};
use deltaapply::signature::{SignatureError, parse_signature_file, verify_manifest};
use deltaapply::{PublicKey, Sha256Digest, TrustedKeys};
use serde::Deserialize;

#[derive(Deserialize)]
struct Index {
    keys: BTreeMap<String, String>,
    publish: Publish,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Publish {
    dir: String,
    trusted: String,
    now: String,
    product: String,
    version: String,
    patches: usize,
}

#[derive(Deserialize, Debug)]
struct Case {
    name: String,
    manifest: String,
    signature: String,
    trusted: Vec<String>,
    threshold: usize,
    now: String,
    expect: String,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/manifest-vectors")
}

fn index() -> Index {
    let text = std::fs::read_to_string(root().join("cases.json")).expect("read cases.json");
    serde_json::from_str(&text).expect("parse cases.json")
}

fn trusted(index: &Index, names: &[String], threshold: usize) -> TrustedKeys {
    let keys = names
        .iter()
        .map(|n| PublicKey::parse(&index.keys[n]).expect("vector key"))
        .collect();
    TrustedKeys::new(keys, threshold).expect("vector trust set")
}

/// What an applier concludes about a signed manifest, as a `cases.json` outcome.
fn outcome(manifest: &[u8], signature: &[u8], trusted: &TrustedKeys, now: Timestamp) -> String {
    match verify_manifest(manifest, signature, trusted) {
        Err(SignatureError::Malformed { .. } | SignatureError::TooLarge { .. }) => {
            return "malformed-signature".into();
        }
        Err(SignatureError::BadSignature { .. }) => return "bad-signature".into(),
        Err(SignatureError::NotEnoughTrusted { .. }) => return "not-enough-trusted".into(),
        Err(e) => return format!("unexpected signature error: {e}"),
        Ok(_) => {}
    }
    match Manifest::parse(manifest) {
        Err(ManifestError::UnsupportedFormat { .. }) => "unsupported-format".into(),
        Err(_) => "invalid-manifest".into(),
        Ok(m) if m.is_expired(now) => "expired".into(),
        Ok(_) => "ok".into(),
    }
}

#[test]
fn every_case_has_its_expected_outcome() {
    let index = index();
    assert!(index.cases.len() >= 15, "too few cases");
    for case in &index.cases {
        let manifest = std::fs::read(root().join(&case.manifest)).expect("case manifest");
        let signature = std::fs::read(root().join(&case.signature)).expect("case signature");
        let now = Timestamp::parse(&case.now).expect("case time");
        let got = outcome(
            &manifest,
            &signature,
            &trusted(&index, &case.trusted, case.threshold),
            now,
        );
        assert_eq!(got, case.expect, "case {}", case.name);
    }
}

#[test]
fn the_vector_publish_directory_checks_out() {
    let index = index();
    let p = &index.publish;
    let dir = root().join(&p.dir);
    let trust = trusted(&index, std::slice::from_ref(&p.trusted), 1);
    let manifest = std::fs::read(dir.join(MANIFEST_FILE)).unwrap();
    let signature = std::fs::read(dir.join(SIGNATURE_FILE)).unwrap();
    let now = Timestamp::parse(&p.now).unwrap();
    assert_eq!(outcome(&manifest, &signature, &trust, now), "ok");
    let m = Manifest::parse(&manifest).unwrap();
    assert_eq!(
        (m.product.as_str(), m.version.as_str()),
        (p.product.as_str(), p.version.as_str())
    );
    let artifact = &m.artifacts[0];
    assert_eq!(artifact.patches.len(), p.patches);

    let scratch = tempfile::tempdir().unwrap();
    let limits = deltaapply::Limits::default();
    let file_hash = |rel: &deltaapply::manifest::RelPath| {
        let bytes = std::fs::read(rel.under(&dir)).unwrap();
        (bytes.len() as u64, Sha256Digest::of(&bytes))
    };
    // Rebuild every release from its full image.
    let mut rebuilt = BTreeMap::new();
    let releases = std::iter::once((m.version.clone(), artifact.sha256, &artifact.full)).chain(
        m.previous.iter().map(|r| {
            (
                r.version.clone(),
                r.artifacts[0].sha256,
                &r.artifacts[0].full,
            )
        }),
    );
    for (version, sha256, full) in releases {
        assert_eq!(file_hash(&full.path), (full.size, full.sha256), "{version}");
        let dest = scratch.path().join(format!("app-{version}"));
        let report = deltaapply::apply_file(
            None,
            &full.path.under(&dir),
            &dest,
            &limits,
            Some(&trust),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(report.target.sha256, sha256);
        assert_eq!(Sha256Digest::of(&std::fs::read(&dest).unwrap()), sha256);
        rebuilt.insert(version, dest);
    }
    // Every patch turns its base into its target release: those to the newest, and
    // those kept to older releases for chains.
    let mut targets = vec![(&artifact.patches, artifact.sha256)];
    for r in &m.previous {
        targets.push((&r.artifacts[0].patches, r.artifacts[0].sha256));
    }
    let kept: usize = m
        .previous
        .iter()
        .map(|r| r.artifacts[0].patches.len())
        .sum();
    assert_eq!(kept, 1, "the patch 1.0 -> 1.1 is kept");
    for (patches, target) in targets {
        for patch in patches {
            assert_eq!(file_hash(&patch.path), (patch.size, patch.sha256));
            let dest = scratch.path().join("patched");
            let base = &rebuilt[&patch.base_version];
            deltaapply::apply_file(
                Some(base),
                &patch.path.under(&dir),
                &dest,
                &limits,
                Some(&trust),
                &mut |_| {},
            )
            .unwrap();
            assert_eq!(Sha256Digest::of(&std::fs::read(&dest).unwrap()), target);
        }
    }
}

/// Adversarial plan cases 2 and 3: every single-bit flip of the signed manifest, and
/// every truncation, extension and bit flip of its signature file, is refused by the
/// signature check (before the manifest is parsed).
#[test]
fn every_bit_flip_of_the_manifest_or_its_signature_is_refused() {
    let index = index();
    let p = &index.publish;
    let dir = root().join(&p.dir);
    let trust = trusted(&index, std::slice::from_ref(&p.trusted), 1);
    let manifest = std::fs::read(dir.join(MANIFEST_FILE)).unwrap();
    let signature = std::fs::read(dir.join(SIGNATURE_FILE)).unwrap();
    assert!(verify_manifest(&manifest, &signature, &trust).is_ok());
    let mut refused = 0;
    for bit in 0..manifest.len() * 8 {
        let mut m = manifest.clone();
        m[bit / 8] ^= 1 << (bit % 8);
        assert!(
            verify_manifest(&m, &signature, &trust).is_err(),
            "manifest bit {bit} flipped and still accepted"
        );
        refused += 1;
    }
    assert_eq!(refused, manifest.len() * 8);
    for bit in 0..signature.len() * 8 {
        let mut s = signature.clone();
        s[bit / 8] ^= 1 << (bit % 8);
        // A flip in a comment or in whitespace may leave the signature itself intact.
        if let Ok(keys) = verify_manifest(&manifest, &s, &trust) {
            assert!(!keys.is_empty(), "bit {bit}: accepted without a valid key");
            assert_eq!(
                parse_signature_file(&s).unwrap(),
                parse_signature_file(&signature).unwrap(),
                "signature bit {bit} flipped, a different signature accepted"
            );
        }
    }
    for len in 0..signature.len() {
        let cut = &signature[..len];
        if verify_manifest(&manifest, cut, &trust).is_ok() {
            assert_eq!(
                parse_signature_file(cut).unwrap(),
                parse_signature_file(&signature).unwrap(),
                "a truncated signature file ({len} bytes) accepted as another"
            );
        }
    }
    let mut longer = signature.clone();
    longer.push(b'x');
    assert!(verify_manifest(&manifest, &longer, &trust).is_err());
    assert!(verify_manifest(&manifest, b"", &trust).is_err());
}
