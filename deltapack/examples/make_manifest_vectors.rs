//! Regenerates `testdata/manifest-vectors/`: a small signed publish directory and
//! signed manifests / signature files that must be accepted or refused.
//!
//! ```sh
//! cargo run --release -p deltapack --example make_manifest_vectors -- testdata/manifest-vectors
//! ```
//!
//! Deterministic: fixed key seeds, fixed times, generated artifacts. The keys are test
//! keys, published on purpose in `cases.json`; never trust them anywhere else.

use std::path::Path;

use deltaapply::manifest::{MANIFEST_FILE, Timestamp};
use deltaapply::signature::{SIGNATURE_FILE_MAGIC, encode_signature_file};
use deltapack::Settings;
use deltapack::build::{BuildSpec, build};
use deltapack::keys::SecretKey;
use serde_json::json;

const TEST_SEED: [u8; 32] = [0x42; 32];
const SECOND_SEED: [u8; 32] = [0x43; 32];
const OTHER_SEED: [u8; 32] = [0x44; 32];

/// A deterministic text-like artifact of `len` bytes; `version` changes a few lines.
fn artifact(len: usize, version: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut line = 0u64;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let changed = line % 37 == version % 37 && version > 0;
        let word = if changed {
            version * 1000 + line
        } else {
            x % 100_000
        };
        out.extend_from_slice(format!("line {line}: value {word} status ok\n").as_bytes());
        line += 1;
    }
    out.truncate(len);
    out
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: make_manifest_vectors OUT_DIR");
    let out = Path::new(&out);
    // README.md stays: it is written by hand.
    for generated in ["publish", "cases"] {
        let dir = out.join(generated);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("clear the output directory");
        }
    }
    std::fs::create_dir_all(out).expect("create the output directory");
    let test = SecretKey::from_seed(&TEST_SEED);
    let second = SecretKey::from_seed(&SECOND_SEED);
    let other = SecretKey::from_seed(&OTHER_SEED);

    // A publish directory of three releases.
    let publish = out.join("publish");
    let scratch = tempfile::tempdir().expect("scratch directory");
    let times = [
        "2026-11-01T00:00:00Z",
        "2026-11-02T00:00:00Z",
        "2026-11-03T00:00:00Z",
    ];
    for (i, time) in times.iter().enumerate() {
        let file = scratch.path().join(format!("app-{i}.txt"));
        std::fs::write(&file, artifact(8000 + 100 * i, i as u64)).expect("write artifact");
        let spec = BuildSpec {
            out: deltapack::store::Location::Dir(publish.clone()),
            cache: None,
            product: Some("vector-app".into()),
            channel: Some("stable".into()),
            version: format!("1.{i}"),
            artifacts: vec![("app.txt".into(), file)],
            keep: 5,
            max_patch_share: 0.75,
            created: Timestamp::parse(time).expect("valid time"),
            valid_for: 365 * 86_400,
            settings: Settings {
                threads: 1,
                ..Settings::default()
            },
            jobs: 1,
        };
        build(&spec, &test, &mut |_| {}).expect("build a vector release");
    }
    let manifest = std::fs::read(publish.join(MANIFEST_FILE)).expect("read manifest");
    let text = String::from_utf8(manifest.clone()).expect("UTF-8");

    // Signed manifests and signature files.
    let cases_dir = out.join("cases");
    std::fs::create_dir_all(&cases_dir).expect("create cases");
    let mut cases = Vec::new();
    let mut case = |name: &str,
                    manifest: &[u8],
                    signature: String,
                    trusted: &[&str],
                    threshold: usize,
                    now: &str,
                    expect: &str,
                    why: &str| {
        std::fs::write(cases_dir.join(format!("{name}.toml")), manifest).expect("write case");
        std::fs::write(cases_dir.join(format!("{name}.sig")), signature).expect("write case");
        cases.push(json!({
            "name": name,
            "manifest": format!("cases/{name}.toml"),
            "signature": format!("cases/{name}.sig"),
            "trusted": trusted,
            "threshold": threshold,
            "now": now,
            "expect": expect,
            "why": why,
        }));
    };
    let sign = |keys: &[&SecretKey], bytes: &[u8]| {
        encode_signature_file(
            &keys
                .iter()
                .map(|k| k.sign_manifest(bytes))
                .collect::<Vec<_>>(),
        )
    };
    let now = "2026-12-01T00:00:00Z";
    let signed = sign(&[&test], &manifest);
    case(
        "valid",
        &manifest,
        signed.clone(),
        &["test"],
        1,
        now,
        "ok",
        "signed by the trusted key",
    );
    case(
        "valid-with-untrusted-extra",
        &manifest,
        sign(&[&other, &test], &manifest),
        &["test"],
        1,
        now,
        "ok",
        "a second signature by an untrusted key is ignored (key rotation)",
    );
    case(
        "threshold-2-met",
        &manifest,
        sign(&[&test, &second], &manifest),
        &["test", "second"],
        2,
        now,
        "ok",
        "two distinct trusted keys signed",
    );
    case(
        "threshold-2-not-met",
        &manifest,
        signed.clone(),
        &["test", "second"],
        2,
        now,
        "not-enough-trusted",
        "only one of the two trusted keys signed",
    );
    case(
        "other-key",
        &manifest,
        sign(&[&other], &manifest),
        &["test"],
        1,
        now,
        "not-enough-trusted",
        "signed by a key that is not trusted",
    );
    let changed = text.replacen("sequence = 3", "sequence = 4", 1);
    case(
        "changed-after-signing",
        changed.as_bytes(),
        signed.clone(),
        &["test"],
        1,
        now,
        "bad-signature",
        "one byte of the manifest changed after it was signed",
    );
    case(
        "signature-truncated",
        &manifest,
        signed[..signed.len() - 10].to_string(),
        &["test"],
        1,
        now,
        "malformed-signature",
        "the signature line is cut short",
    );
    let line = signed.lines().nth(1).expect("a signature line").to_string();
    case(
        "signature-duplicate-key",
        &manifest,
        format!("{SIGNATURE_FILE_MAGIC}\n{line}\n{line}\n"),
        &["test"],
        1,
        now,
        "malformed-signature",
        "the same key twice (would count twice towards a threshold)",
    );
    case(
        "signature-uppercase",
        &manifest,
        signed
            .to_uppercase()
            .replacen("DELTAPACK-SIGNATURES V1", SIGNATURE_FILE_MAGIC, 1)
            .replacen("ED25519", "ed25519", 1),
        &["test"],
        1,
        now,
        "malformed-signature",
        "uppercase hex",
    );
    case(
        "signature-crlf",
        &manifest,
        signed.replace('\n', "\r\n"),
        &["test"],
        1,
        now,
        "malformed-signature",
        "CRLF line ends",
    );
    case(
        "signature-empty",
        &manifest,
        format!("{SIGNATURE_FILE_MAGIC}\n"),
        &["test"],
        1,
        now,
        "malformed-signature",
        "no signature line",
    );
    case(
        "expired",
        &manifest,
        signed.clone(),
        &["test"],
        1,
        "2028-01-01T00:00:00Z",
        "expired",
        "checked after `expires`",
    );
    for (name, edited, expect, why) in [
        (
            "signed-path-traversal",
            text.replacen("path = \"patches/", "path = \"../patches/", 1),
            "invalid-manifest",
            "correctly signed, but a path leaves the directory",
        ),
        (
            "signed-format-2",
            text.replacen("format = 1", "format = 2", 1),
            "unsupported-format",
            "correctly signed, but a format this applier does not read",
        ),
        (
            "signed-not-toml",
            text.replacen("[[artifact]]", "[[artifact]", 1),
            "invalid-manifest",
            "correctly signed, but not TOML",
        ),
        (
            "signed-control-character",
            text.replacen("vector-app", "vector-app\u{1}", 1),
            "invalid-manifest",
            "correctly signed, but a control character in a label",
        ),
    ] {
        let bytes = edited.into_bytes();
        case(
            name,
            &bytes,
            sign(&[&test], &bytes),
            &["test"],
            1,
            now,
            expect,
            why,
        );
    }
    let mut not_utf8 = manifest.clone();
    let at = text.find("vector-app").expect("product name") + 1;
    not_utf8.insert(at, 0xFF);
    case(
        "signed-not-utf8",
        &not_utf8,
        sign(&[&test], &not_utf8),
        &["test"],
        1,
        now,
        "invalid-manifest",
        "correctly signed, but not UTF-8",
    );

    let doc = json!({
        "keys": {
            "test": test.public_key().to_string(),
            "second": second.public_key().to_string(),
            "other": other.public_key().to_string(),
        },
        "key_seeds": {
            "test": "42 repeated 32 times (hex)",
            "second": "43 repeated 32 times (hex)",
            "other": "44 repeated 32 times (hex)",
        },
        "publish": {
            "dir": "publish",
            "trusted": "test",
            "now": now,
            "product": "vector-app",
            "version": "1.2",
            "patches": 2,
        },
        "cases": cases,
    });
    std::fs::write(
        out.join("cases.json"),
        serde_json::to_string_pretty(&doc).expect("JSON") + "\n",
    )
    .expect("write cases.json");
    println!("wrote {}", out.display());
}
