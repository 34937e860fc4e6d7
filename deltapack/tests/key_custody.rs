//! The signing key in CI: `--key-env VAR` (the PEM text in an environment variable) and
//! `--key-fd N` (read from an inherited descriptor, e.g. a pipe) sign exactly as
//! `--secret-key FILE` does, and a bad or missing key is reported by where it was looked
//! for, never by its content.

mod common;

use std::path::Path;

use assert_cmd::Command;
use common::{Dir, snapshot};
use deltapack::keys::SecretKey;

fn deltapack() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deltapack"));
    cmd.timeout(std::time::Duration::from_secs(120));
    cmd
}

/// A key file and its PEM text.
fn key(dir: &Dir) -> (std::path::PathBuf, String) {
    let path = dir.join("release.key");
    SecretKey::from_seed(&[42; 32]).save(&path, false).unwrap();
    let pem = std::fs::read_to_string(&path).unwrap();
    (path, pem)
}

/// `deltapack build` of one small release into `out` with `key_flags`.
fn build(dir: &Dir, out: &Path, key_flags: &[&str]) -> Command {
    let artifact = dir.join("app.bin");
    if !artifact.exists() {
        let (old, _) = common::release_pair(50_000, 3);
        std::fs::write(&artifact, old).unwrap();
    }
    let mut cmd = deltapack();
    cmd.arg("build")
        .arg("--out")
        .arg(out)
        .args(key_flags)
        .args(["--product", "custody", "--version", "1.0"])
        .arg("--artifact")
        .arg(format!("app.bin={}", artifact.display()))
        .args(["--created", "2026-11-01T10:00:00Z", "--jobs", "1"]);
    cmd
}

#[test]
fn a_key_from_an_environment_variable_or_a_descriptor_signs_as_the_file_does() {
    let dir = Dir::new();
    let (path, pem) = key(&dir);
    let by_file = dir.join("by-file");
    build(&dir, &by_file, &["--secret-key", path.to_str().unwrap()])
        .assert()
        .success();

    let by_env = dir.join("by-env");
    build(&dir, &by_env, &["--key-env", "RELEASE_KEY_PEM"])
        .env("RELEASE_KEY_PEM", &pem)
        .assert()
        .success();
    assert_eq!(snapshot(&by_env), snapshot(&by_file), "--key-env");

    // Standard input is descriptor 0: a pipe from the parent.
    let by_stdin = dir.join("by-stdin");
    build(&dir, &by_stdin, &["--key-fd", "0"])
        .write_stdin(pem.clone())
        .assert()
        .success();
    assert_eq!(snapshot(&by_stdin), snapshot(&by_file), "--key-fd 0");

    // Descriptor 3, handed over by a shell as CI scripts do (`3<&0` makes it the pipe).
    let by_fd3 = dir.join("by-fd3");
    let inner = build(&dir, &by_fd3, &["--key-fd", "3"]);
    let program = inner.get_program().to_owned();
    let args: Vec<_> = inner.get_args().map(|a| a.to_owned()).collect();
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg("exec \"$@\" 3<&0 0</dev/null")
        .arg("sh")
        .arg(program)
        .args(args)
        .write_stdin(pem.clone());
    sh.assert().success();
    assert_eq!(snapshot(&by_fd3), snapshot(&by_file), "--key-fd 3");
}

#[test]
fn a_bad_key_is_named_by_where_it_was_read_never_by_its_content() {
    let dir = Dir::new();
    let (path, _) = key(&dir);
    let marker = "MIIsecretMARKERzzzz";
    let bogus = format!("-----BEGIN PRIVATE KEY-----\n{marker}\n-----END PRIVATE KEY-----\n");

    let out = build(&dir, &dir.join("a"), &["--key-env", "BAD_KEY"])
        .env("BAD_KEY", &bogus)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("environment variable BAD_KEY"), "{stderr}");
    assert!(
        !stderr.contains(marker),
        "the key's text was echoed: {stderr}"
    );
    assert!(!dir.join("a").join("manifest.toml").exists());

    let out = build(&dir, &dir.join("b"), &["--key-env", "NO_SUCH_KEY_VAR"])
        .env_remove("NO_SUCH_KEY_VAR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("NO_SUCH_KEY_VAR is not set"), "{stderr}");

    let out = build(&dir, &dir.join("c"), &["--key-fd", "0"])
        .write_stdin(bogus.clone())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("file descriptor 0"), "{stderr}");
    assert!(
        !stderr.contains(marker),
        "the key's text was echoed: {stderr}"
    );

    let out = build(&dir, &dir.join("d"), &["--key-fd", "57"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("file descriptor 57"), "{stderr}");

    // Two places at once is a usage error.
    let out = build(
        &dir,
        &dir.join("e"),
        &["--secret-key", path.to_str().unwrap(), "--key-env", "X"],
    )
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn keys_sign_takes_its_keys_from_the_environment_and_descriptors() {
    let dir = Dir::new();
    let (path, pem) = key(&dir);
    let out = dir.join("pub");
    build(&dir, &out, &["--secret-key", path.to_str().unwrap()])
        .assert()
        .success();
    let second = SecretKey::from_seed(&[43; 32]);
    let second_path = dir.join("second.key");
    second.save(&second_path, false).unwrap();
    let second_pem = std::fs::read_to_string(&second_path).unwrap();
    let manifest = out.join("manifest.toml");
    let before = std::fs::read(out.join("manifest.toml.sig")).unwrap();
    let assert = deltapack()
        .args(["keys", "sign"])
        .arg(&manifest)
        .args(["--key-env", "SECOND_KEY", "--key-fd", "0", "--json"])
        .env("SECOND_KEY", &second_pem)
        .write_stdin(pem)
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(json["count"], 2, "{json}");
    let after = std::fs::read_to_string(out.join("manifest.toml.sig")).unwrap();
    assert_ne!(after.as_bytes(), before.as_slice());
    assert!(!after.contains("PRIVATE"), "{after}");
    // Both keys' signatures check out: a threshold of two is met.
    let first = SecretKey::from_seed(&[42; 32]).public_key().to_string();
    deltapack()
        .arg("verify")
        .arg(&out)
        .args(["--key", &first, "--key", &second.public_key().to_string()])
        .args(["--threshold", "2", "--at", "2026-11-02T00:00:00Z"])
        .assert()
        .success();

    let out = deltapack()
        .args(["keys", "sign"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--key-env VAR"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
