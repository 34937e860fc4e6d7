//! Signed key rotation end to end (`format-spec/rotation.md`; ADVERSARIAL-PLAN cases
//! 11-14): `deltapack keygen`, `deltapack build`, `deltapack keys rotate` and
//! `deltapack keys sign` make publish directories with a key chain, and `deltaapply
//! update --keys-root` follows it (or refuses it) on a device, from a local directory
//! and over HTTP from the test server on 127.0.0.1.
//!
//! `deltaapply` is another package's binary: run `cargo build -p deltaapply-cli` first
//! (or `cargo test --workspace`).

mod common;
#[path = "../../deltaapply/tests/common/http.rs"]
mod http;

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use common::{Dir, copy_dir, release_pair};
use deltaapply::manifest::{MANIFEST_FILE, SIGNATURE_FILE, Timestamp};
use deltaapply::rotation::{KeysDocument, document_path, signature_path};
use deltaapply::signature::encode_signature_file;
use deltapack::keys::SecretKey;
use serde_json::Value;

/// Exit codes from README.md ("Exit codes (both tools)").
const OK: i32 = 0;
const USAGE: i32 = 2;
const UNTRUSTED: i32 = 6;
const REFUSED: i32 = 7;

const ARTIFACT: &str = "app.bin";
const PRODUCT: &str = "rot-app";

fn deltapack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_deltapack"))
}

/// A publisher's workspace: key pairs by name, release files, publish directories.
struct Publisher {
    dir: Dir,
    clock: std::cell::Cell<u64>,
}

impl Publisher {
    fn new(keys: &[&str]) -> Publisher {
        let p = Publisher {
            dir: Dir::new(),
            clock: std::cell::Cell::new(Timestamp::now().0 - 20 * 86_400),
        };
        for name in keys {
            let out = deltapack()
                .arg("keygen")
                .arg("--secret-key")
                .arg(p.secret(name))
                .arg("--public-key")
                .arg(p.public(name))
                .output()
                .unwrap();
            assert!(out.status.success(), "keygen {name}: {out:?}");
        }
        p
    }

    fn secret(&self, name: &str) -> PathBuf {
        self.dir.join(&format!("{name}.key"))
    }

    fn public(&self, name: &str) -> PathBuf {
        self.dir.join(&format!("{name}.pub"))
    }

    fn out(&self) -> PathBuf {
        self.dir.join("publish")
    }

    /// `deltapack build` of `version` into `out`, signed by key `key`: its exit code.
    fn build(&self, out: &Path, key: &str, version: &str, content: &[u8]) -> (i32, String) {
        let file = self.dir.write(&format!("{version}.bin"), content);
        let created = Timestamp(self.clock.get());
        self.clock.set(self.clock.get() + 3600);
        let output = deltapack()
            .arg("build")
            .arg("--out")
            .arg(out)
            .arg("--secret-key")
            .arg(self.secret(key))
            .args([
                "--product",
                PRODUCT,
                "--channel",
                "stable",
                "--version",
                version,
            ])
            .arg("--artifact")
            .arg(format!("{ARTIFACT}={}", file.display()))
            .args(["--created", &created.to_string()])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap_or(-1), text)
    }

    fn build_ok(&self, key: &str, version: &str, content: &[u8]) {
        let (code, text) = self.build(&self.out(), key, version, content);
        assert_eq!(code, OK, "build {version} with {key}: {text}");
    }

    /// `deltapack keys rotate out --key K... --secret-key S... [extra]`: exit code and
    /// output.
    fn rotate(&self, out: &Path, keys: &[&str], signers: &[&str], extra: &[&str]) -> (i32, String) {
        let mut cmd = deltapack();
        cmd.args(["keys", "rotate"]).arg(out);
        for k in keys {
            cmd.arg("--key").arg(self.public(k));
        }
        for s in signers {
            cmd.arg("--secret-key").arg(self.secret(s));
        }
        let output = cmd.args(extra).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap_or(-1), text)
    }

    fn rotate_ok(&self, keys: &[&str], signers: &[&str], extra: &[&str]) {
        let (code, text) = self.rotate(&self.out(), keys, signers, extra);
        assert_eq!(code, OK, "keys rotate to {keys:?}: {text}");
    }

    /// Replaces `file`'s signature file with signatures by `signers` only.
    fn resign(&self, file: &Path, signers: &[&str]) {
        let mut sig = file.as_os_str().to_owned();
        sig.push(".sig");
        let _ = std::fs::remove_file(&sig);
        let mut cmd = deltapack();
        cmd.args(["keys", "sign"]).arg(file);
        for s in signers {
            cmd.arg("--secret-key").arg(self.secret(s));
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "keys sign {}: {out:?}",
            file.display()
        );
    }

    /// `deltapack verify out --key KEY --json`: exit code and report.
    fn verify(&self, out: &Path, key: &str) -> (i32, Value) {
        let output = deltapack()
            .arg("verify")
            .arg(out)
            .arg("--key")
            .arg(self.public(key))
            .arg("--json")
            .output()
            .unwrap();
        let report = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
        (output.status.code().unwrap_or(-1), report)
    }

    fn load(&self, name: &str) -> SecretKey {
        SecretKey::load(&self.secret(name)).unwrap()
    }
}

/// A device: an installed file and the keys document its installer pinned.
struct Device {
    dir: Dir,
    root: PathBuf,
}

impl Device {
    /// A device with `installed` at its target, pinning `root`.
    fn new(installed: &[u8], root: &Path) -> Device {
        let dir = Dir::new();
        dir.write(ARTIFACT, installed);
        let pinned = dir.join("pinned-keys.toml");
        std::fs::copy(root, &pinned).unwrap();
        Device { dir, root: pinned }
    }

    fn target(&self) -> PathBuf {
        self.dir.join(ARTIFACT)
    }

    /// `deltaapply update --from FROM --keys-root ROOT --json`; checks the exit code
    /// and that the target then holds `expect`.
    fn update(&self, from: &str, code: i32, expect: &[u8]) -> Value {
        let output = common::deltaapply_cmd(Duration::from_secs(120))
            .args(["update", "--from", from])
            .arg("--keys-root")
            .arg(&self.root)
            .arg("--target")
            .arg(self.target())
            .args(["--json", "--retries", "1"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(code),
            "update from {from}: {stdout}{stderr}"
        );
        assert!(
            std::fs::read(self.target()).unwrap() == expect,
            "update from {from}: the target does not hold the expected release"
        );
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    /// The version of the keys document the device kept, if any.
    fn kept_version(&self) -> Option<u64> {
        let path = self.dir.join(&format!(".{ARTIFACT}.deltaapply-state.keys"));
        let bytes = std::fs::read(path).ok()?;
        Some(KeysDocument::parse(&bytes).unwrap().version)
    }
}

fn local(dir: &Path) -> String {
    dir.display().to_string()
}

fn error_of(v: &Value) -> String {
    v["error"].as_str().unwrap_or_default().to_string()
}

/// Case 12: a rotation signed by the old and the new key is accepted; then a manifest
/// signed by the new key alone is, and one signed by the old key alone is not, even
/// from a mirror that no longer serves the chain.
#[test]
fn rotation_happy_path_over_http_and_from_a_directory() {
    let p = Publisher::new(&["a", "b"]);
    let (v0, v1) = release_pair(96 << 10, 11);
    p.build_ok("a", "1.0", &v0);
    p.rotate_ok(&["a"], &["a"], &["--product", PRODUCT]);
    let root = p.out().join(document_path(1));
    let device = Device::new(&v0, &root);
    let server = http::Server::start();
    server.put_dir("/", &p.out());
    let url = server.url();
    let first = device.update(&url, OK, &v0);
    assert_eq!(first["keys_version"], 1, "{first}");
    assert_eq!(
        device.kept_version(),
        None,
        "nothing newer than the pinned keys"
    );

    // The build refuses a key the chain does not list yet.
    let (code, text) = p.build(&p.out(), "b", "1.1", &v1);
    assert_eq!(code, USAGE, "{text}");
    assert!(text.contains("not one of the keys of version 1"), "{text}");

    p.rotate_ok(&["b"], &["a", "b"], &[]);
    // Until a release is signed by the new key, verify says devices would refuse it.
    let (code, report) = p.verify(&p.out(), "a");
    assert_ne!(code, OK, "{report}");
    assert!(
        report
            .to_string()
            .contains("following the key chain (version 2)"),
        "{report}"
    );
    p.build_ok("b", "1.1", &v1);
    let (code, report) = p.verify(&p.out(), "b");
    assert_eq!(code, OK, "{report}");
    assert_eq!(report["keys_version"], 2, "{report}");
    server.put_dir("/", &p.out());
    let updated = device.update(&url, OK, &v1);
    assert_eq!(updated["keys_version"], 2, "{updated}");
    assert_eq!(updated["result"]["outcome"], "updated", "{updated}");
    assert_eq!(device.kept_version(), Some(2));

    // The revoked key can no longer sign a release for the chain.
    let (code, text) = p.build(&p.out(), "a", "1.2", &v0);
    assert_eq!(code, USAGE, "{text}");

    // A manifest signed by the old key alone, from a mirror without the chain: the
    // device keeps version 2 and refuses it.
    let forged = p.dir.join("forged");
    copy_dir(&p.out(), &forged);
    std::fs::remove_dir_all(forged.join("keys")).unwrap();
    p.resign(&forged.join(MANIFEST_FILE), &["a"]);
    let refused = device.update(&local(&forged), UNTRUSTED, &v1);
    assert!(error_of(&refused).contains("signature"), "{refused}");
    assert_eq!(device.kept_version(), Some(2));

    // A fresh device pinned at version 1 walks the chain from the directory too.
    let fresh = Device::new(&v0, &root);
    let walked = fresh.update(&local(&p.out()), OK, &v1);
    assert_eq!(walked["keys_version"], 2, "{walked}");
}

/// Case 13: a gap (N+2 without N+1), a step signed by the new key only or by the old
/// key only, and a document that says another version than its place are refused;
/// the device keeps trusting what it trusted and its target is untouched.
#[test]
fn rotation_gaps_and_half_signed_steps_are_refused() {
    let p = Publisher::new(&["a", "b", "c"]);
    let (v0, v1) = release_pair(64 << 10, 12);
    p.build_ok("a", "1.0", &v0);
    p.rotate_ok(&["a"], &["a"], &["--product", PRODUCT]);
    let root = p.out().join(document_path(1));
    let before = p.dir.join("before-rotation");
    copy_dir(&p.out(), &before);
    p.rotate_ok(&["b"], &["a", "b"], &[]);
    p.rotate_ok(&["c"], &["b", "c"], &[]);
    p.build_ok("c", "1.1", &v1);

    // The producer refuses a step the appliers would refuse, and writes nothing.
    let scratch = p.dir.join("scratch");
    copy_dir(&before, &scratch);
    let (code, text) = p.rotate(&scratch, &["b"], &["b"], &[]);
    assert_eq!(code, USAGE, "{text}");
    assert!(!scratch.join(document_path(2)).exists());
    let (code, text) = p.rotate(&scratch, &["b"], &["a"], &[]);
    assert_eq!(code, USAGE, "{text}");

    // N+2 without N+1: the device stays at version 1, whose key did not sign.
    let gap = p.dir.join("gap");
    copy_dir(&p.out(), &gap);
    std::fs::remove_file(gap.join(document_path(2))).unwrap();
    std::fs::remove_file(gap.join(signature_path(2))).unwrap();
    let device = Device::new(&v0, &root);
    let refused = device.update(&local(&gap), UNTRUSTED, &v0);
    assert!(error_of(&refused).contains("signature"), "{refused}");
    assert_eq!(device.kept_version(), None);

    // Version 2 signed by the new key only, then by the old key only.
    for (signers, says) in [
        (&["b"][..], "not signed by enough keys of version 1"),
        (&["a"][..], "not signed by enough of its own keys"),
    ] {
        let half = p.dir.join(&format!("half-{}", signers[0]));
        copy_dir(&p.out(), &half);
        p.resign(&half.join(document_path(2)), signers);
        let refused = device.update(&local(&half), UNTRUSTED, &v0);
        assert!(error_of(&refused).contains(says), "{signers:?}: {refused}");
        assert_eq!(device.kept_version(), None);
    }

    // A document published as version 2 that says version 3, signed by everyone.
    let replay = p.dir.join("replay");
    copy_dir(&p.out(), &replay);
    std::fs::copy(replay.join(document_path(3)), replay.join(document_path(2))).unwrap();
    p.resign(&replay.join(document_path(2)), &["a", "b", "c"]);
    let refused = device.update(&local(&replay), UNTRUSTED, &v0);
    assert!(error_of(&refused).contains("says version 3"), "{refused}");

    // The intact chain is walked to version 3.
    let ok = device.update(&local(&p.out()), OK, &v1);
    assert_eq!(ok["keys_version"], 3, "{ok}");
    assert_eq!(device.kept_version(), Some(3));
}

/// Writes versions `from..=to` of a chain that keeps `key`, each signed by it.
fn extend_chain(out: &Path, key: &SecretKey, from: u64, to: u64) {
    for version in from..=to {
        let doc = KeysDocument {
            product: PRODUCT.into(),
            version,
            keys: vec![key.public_key()],
            threshold: 1,
            expires: None,
        }
        .encode();
        let sig = encode_signature_file(&[key.sign_keys(doc.as_bytes())]);
        std::fs::write(out.join(signature_path(version)), sig).unwrap();
        std::fs::write(out.join(document_path(version)), doc).unwrap();
    }
}

/// Case 14: a walk accepts at most 256 versions; a longer chain is refused with the
/// limit's exit code, and the device's trust and target are unchanged.
#[test]
fn a_chain_longer_than_the_cap_is_refused() {
    let p = Publisher::new(&["a"]);
    let (v0, v1) = release_pair(32 << 10, 14);
    p.build_ok("a", "1.0", &v0);
    p.rotate_ok(&["a"], &["a"], &["--product", PRODUCT]);
    let root = p.out().join(document_path(1));
    p.build_ok("a", "1.1", &v1);
    let key = p.load("a");

    // 1 + 256 versions: walked to the end.
    extend_chain(&p.out(), &key, 2, 257);
    let device = Device::new(&v0, &root);
    let ok = device.update(&local(&p.out()), OK, &v1);
    assert_eq!(ok["keys_version"], 257, "{ok}");

    // One more: a device pinned at version 1 stops and refuses.
    extend_chain(&p.out(), &key, 258, 258);
    let fresh = Device::new(&v0, &root);
    let refused = fresh.update(&local(&p.out()), REFUSED, &v0);
    assert!(error_of(&refused).contains("more than 256"), "{refused}");
    assert_eq!(fresh.kept_version(), None);
    // The device that kept version 257 takes the one step.
    let again = device.update(&local(&p.out()), OK, &v1);
    assert_eq!(again["keys_version"], 258, "{again}");
}

/// Case 11: a compromised key signs an absurd sequence number, which a device
/// accepts; once the key is rotated out by a signed rotation, the floor it set is
/// void and the real next release (a small sequence number, new key) is accepted.
#[test]
fn fast_forward_recovery_after_a_revoking_rotation() {
    let p = Publisher::new(&["a", "b"]);
    let (v0, v1) = release_pair(64 << 10, 13);
    p.build_ok("a", "1.0", &v0);
    p.rotate_ok(&["a"], &["a"], &["--product", PRODUCT]);
    let root = p.out().join(document_path(1));

    // The attacker, holding key a, raises the sequence to 2^62.
    let attack = p.dir.join("attack");
    copy_dir(&p.out(), &attack);
    let manifest = std::fs::read_to_string(attack.join(MANIFEST_FILE)).unwrap();
    let raised: String = manifest
        .lines()
        .map(|l| {
            if l.starts_with("sequence = ") {
                format!("sequence = {}\n", 1u64 << 62)
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(raised, manifest, "the manifest has a sequence line");
    std::fs::write(attack.join(MANIFEST_FILE), raised).unwrap();
    std::fs::remove_file(attack.join(SIGNATURE_FILE)).unwrap();
    p.resign(&attack.join(MANIFEST_FILE), &["a"]);
    let device = Device::new(&v0, &root);
    let taken = device.update(&local(&attack), OK, &v0);
    assert_eq!(taken["sequence"], 1u64 << 62, "{taken}");

    // Without a rotation the real next release is a rollback to the device.
    let plain = p.dir.join("plain");
    copy_dir(&p.out(), &plain);
    p.build(&plain, "a", "1.1", &v1);
    let refused = device.update(&local(&plain), REFUSED, &v0);
    assert!(error_of(&refused).contains("older"), "{refused}");

    // Rotated out: the floor goes with the key.
    p.rotate_ok(&["b"], &["a", "b"], &[]);
    p.build_ok("b", "1.1", &v1);
    let recovered = device.update(&local(&p.out()), OK, &v1);
    assert_eq!(recovered["keys_version"], 2, "{recovered}");
    assert_eq!(recovered["sequence"], 2, "{recovered}");
    // And the attacker's manifest is refused from now on.
    device.update(&local(&attack), UNTRUSTED, &v1);
}

/// An expired newest version is refused like an expired manifest.
#[test]
fn expired_keys_are_refused() {
    let p = Publisher::new(&["a"]);
    let (v0, v1) = release_pair(32 << 10, 15);
    p.build_ok("a", "1.0", &v0);
    p.rotate_ok(&["a"], &["a"], &["--product", PRODUCT]);
    let root = p.out().join(document_path(1));
    p.rotate_ok(&["a"], &["a"], &["--expires", "2020-01-01T00:00:00Z"]);
    p.build_ok("a", "1.1", &v1);
    let device = Device::new(&v0, &root);
    let refused = device.update(&local(&p.out()), REFUSED, &v0);
    assert!(error_of(&refused).contains("expired"), "{refused}");
    assert_eq!(device.kept_version(), None);
}
