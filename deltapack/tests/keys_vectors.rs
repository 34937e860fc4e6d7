//! The key-rotation test vectors (`testdata/keys-vectors`, `format-spec/rotation.md`
//! §7): a chain of three versions and refused next versions, made here from fixed
//! seeds (ed25519 signing is deterministic), compared byte for byte with the committed
//! files, and checked with the applier's own functions.
//!
//! To regenerate the files after a deliberate change of the format:
//! `DELTAPACK_WRITE_VECTORS=1 cargo test -p deltapack --test keys_vectors`.

use std::path::{Path, PathBuf};

use deltaapply::PublicKey;
use deltaapply::manifest::Timestamp;
use deltaapply::rotation::{
    KeysDocument, RotationError, keys_message, verify_rotation, verify_self_signed,
};
use deltaapply::signature::{SignatureEntry, SignatureError, encode_signature_file};
use deltapack::keys::SecretKey;

const PRODUCT: &str = "vector-app";

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[0x50 + n; 32])
}

fn doc(version: u64, keys: &[&SecretKey], threshold: usize, expires: Option<&str>) -> String {
    KeysDocument {
        product: PRODUCT.into(),
        version,
        keys: keys.iter().map(|k| k.public_key()).collect(),
        threshold,
        expires: expires.map(|t| Timestamp::parse(t).unwrap()),
    }
    .encode()
}

fn signed(text: &str, by: &[&SecretKey]) -> String {
    let entries: Vec<SignatureEntry> = by.iter().map(|k| k.sign_keys(text.as_bytes())).collect();
    encode_signature_file(&entries)
}

/// What checking a refused next version must report.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Refusal {
    PreviousThreshold,
    PreviousBadSignature,
    OwnThreshold,
    Version,
    Product,
    Malformed,
}

fn refusal(e: &RotationError) -> Refusal {
    match e {
        RotationError::PreviousKeys {
            source: SignatureError::BadSignature { .. },
            ..
        } => Refusal::PreviousBadSignature,
        RotationError::PreviousKeys { .. } => Refusal::PreviousThreshold,
        RotationError::OwnKeys { .. } => Refusal::OwnThreshold,
        RotationError::Version { .. } => Refusal::Version,
        RotationError::Product { .. } => Refusal::Product,
        RotationError::Malformed(_) | RotationError::TooLarge { .. } => Refusal::Malformed,
        RotationError::TooManySteps { .. } => panic!("not a single-step refusal"),
    }
}

/// Files by path relative to `testdata/keys-vectors`.
type Files = Vec<(String, Vec<u8>)>;

/// Every file of the vectors, and the refused cases with their refusal.
fn vectors() -> (Files, Vec<(&'static str, Refusal)>) {
    let (a, b, c) = (key(1), key(2), key(3));
    let mut files = Vec::new();
    let mut put = |name: &str, text: String| files.push((name.to_string(), text.into_bytes()));

    let v1 = doc(1, &[&a], 1, None);
    let v2 = doc(2, &[&a, &b], 2, None);
    let v3 = doc(3, &[&b, &c], 1, Some("2030-01-01T00:00:00Z"));
    put("chain/1.toml.sig", signed(&v1, &[&a]));
    put("chain/2.toml.sig", signed(&v2, &[&a, &b]));
    put("chain/3.toml.sig", signed(&v3, &[&a, &b]));
    put("chain/1.toml", v1);
    put("chain/2.toml", v2);
    put("chain/3.toml", v3.clone());

    // Next versions after chain/2.toml (keys a, b; threshold 2) that are refused.
    let mut cases = Vec::new();
    let mut case = |name: &'static str, text: String, sig: String, why: Refusal| {
        put(&format!("refused/{name}.toml"), text);
        put(&format!("refused/{name}.toml.sig"), sig);
        cases.push((name, why));
    };
    case(
        "signed-by-new-key-only",
        v3.clone(),
        signed(&v3, &[&c]),
        Refusal::PreviousThreshold,
    );
    case(
        "one-previous-key",
        v3.clone(),
        signed(&v3, &[&a]),
        Refusal::PreviousThreshold,
    );
    let only_c = doc(3, &[&c], 1, None);
    case(
        "not-signed-by-own-keys",
        only_c.clone(),
        signed(&only_c, &[&a, &b]),
        Refusal::OwnThreshold,
    );
    let says_4 = doc(4, &[&b, &c], 1, None);
    case(
        "says-version-4",
        says_4.clone(),
        signed(&says_4, &[&a, &b, &c]),
        Refusal::Version,
    );
    let other = doc(3, &[&b, &c], 1, None).replace(PRODUCT, "other-app");
    case(
        "other-product",
        other.clone(),
        signed(&other, &[&a, &b, &c]),
        Refusal::Product,
    );
    let tampered = v3.replace("version = 3", "version = 3 ");
    case(
        "changed-after-signing",
        tampered,
        signed(&v3, &[&a, &b]),
        Refusal::PreviousBadSignature,
    );
    let as_manifest = encode_signature_file(&[
        a.sign_manifest(v3.as_bytes()),
        b.sign_manifest(v3.as_bytes()),
    ]);
    case(
        "manifest-context",
        v3.clone(),
        as_manifest,
        Refusal::PreviousBadSignature,
    );
    let twice = format!(
        "format = \"deltapack-keys-v1\"\nproduct = \"{PRODUCT}\"\nversion = 3\nthreshold = 1\nkeys = [\"{}\", \"{}\"]\n",
        c.public_key(),
        c.public_key()
    );
    case(
        "key-listed-twice",
        twice.clone(),
        signed(&twice, &[&a, &b]),
        Refusal::Malformed,
    );
    let weak = format!(
        "format = \"deltapack-keys-v1\"\nproduct = \"{PRODUCT}\"\nversion = 3\nthreshold = 1\nkeys = [\"ed25519:{}\"]\n",
        "01".to_string() + &"00".repeat(31)
    );
    case(
        "small-order-key",
        weak.clone(),
        signed(&weak, &[&a, &b]),
        Refusal::Malformed,
    );
    (files, cases)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/keys-vectors")
}

#[test]
fn committed_vectors_are_what_the_code_writes_and_reads() {
    let (files, cases) = vectors();
    if std::env::var_os("DELTAAPPLY_WRITE_VECTORS").is_some()
        || std::env::var_os("DELTAPACK_WRITE_VECTORS").is_some()
    {
        for (name, bytes) in &files {
            let path = root().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }
    for (name, bytes) in &files {
        let committed = std::fs::read(root().join(name))
            .unwrap_or_else(|e| panic!("testdata/keys-vectors/{name}: {e}"));
        assert!(
            committed == *bytes,
            "testdata/keys-vectors/{name} differs from what the code writes"
        );
    }
    let read = |name: &str| std::fs::read(root().join(name)).unwrap();

    // The chain: version 1 by its own keys, then each step from the one before.
    let v1 = verify_self_signed(&read("chain/1.toml"), &read("chain/1.toml.sig")).unwrap();
    let v2 = verify_rotation(&v1, &read("chain/2.toml"), &read("chain/2.toml.sig")).unwrap();
    let v3 = verify_rotation(&v2, &read("chain/3.toml"), &read("chain/3.toml.sig")).unwrap();
    assert_eq!((v2.threshold, v3.version, v3.threshold), (2, 3, 1));
    assert!(v3.is_expired(Timestamp::parse("2030-01-01T00:00:01Z").unwrap()));
    assert_eq!(v2.revoked_by(&v3), vec![key(1).public_key().id()]);
    // Every document reads back as written (one canonical encoding).
    for d in [&v1, &v2, &v3] {
        let name = format!("chain/{}.toml", d.version);
        assert_eq!(d.encode().into_bytes(), read(&name), "{name}");
    }
    // A step cannot be skipped: 3 from 1 is refused.
    let skip = verify_rotation(&v1, &read("chain/3.toml"), &read("chain/3.toml.sig"));
    assert!(
        matches!(
            skip,
            Err(RotationError::Version {
                expected: 2,
                got: 3
            })
        ),
        "{skip:?}"
    );

    for (name, why) in cases {
        let got = verify_rotation(
            &v2,
            &read(&format!("refused/{name}.toml")),
            &read(&format!("refused/{name}.toml.sig")),
        );
        match got {
            Ok(d) => panic!("{name}: accepted {d:?}"),
            Err(e) => assert_eq!(refusal(&e), why, "{name}: {e}"),
        }
    }
    // A keys signature never verifies as a manifest's or the reverse.
    let message = keys_message(&read("chain/1.toml"));
    let pk: PublicKey = key(1).public_key();
    let entry = key(1).sign_manifest(&read("chain/1.toml"));
    assert!(!pk.verify(&message, &entry.signature));
}
