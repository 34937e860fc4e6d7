//! Interoperability with the real `zstd` command (Debian's package; `scripts/test.sh`
//! installs it): our reference-method and full-image payloads are what `zstd
//! --patch-from` and `zstd` read, and a payload `zstd --patch-from` wrote, wrapped in our
//! container, applies with `deltaapply`.

use std::path::Path;
use std::process::Command;

use deltaapply::container::{FileId, HEADER_LEN, Header};
use deltaapply::{Limits, Method, Sha256Digest};
use deltapack::{Settings, make_one};

fn zstd_cli() -> Command {
    let probe = Command::new("zstd").arg("--version").output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "the zstd command is missing: run `bash scripts/test.sh`, which installs it"
    );
    Command::new("zstd")
}

/// An old/new pair shaped like two builds: shared blocks, an insertion, edits.
fn pair() -> (Vec<u8>, Vec<u8>) {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let old: Vec<u8> = (0..300_000)
        .map(|i| {
            if i % 7 == 0 {
                (next() % 251) as u8
            } else {
                (i / 13) as u8
            }
        })
        .collect();
    let mut new = old.clone();
    new.splice(100_000..100_000, (0..5000).map(|_| next() as u8));
    for i in (0..new.len()).step_by(9973) {
        new[i] ^= 0x55;
    }
    (old, new)
}

fn settings() -> Settings {
    Settings {
        level: 19,
        threads: 1,
        max_apply_memory: 1 << 30,
        ..Settings::default()
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run zstd");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn zstd_cli_decodes_our_reference_payload() {
    let (old, new) = pair();
    let patch = make_one(Method::ZstdRef, &old, &new, &settings()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (old_path, payload, out) = (
        dir.path().join("old"),
        dir.path().join("payload.zst"),
        dir.path().join("out"),
    );
    std::fs::write(&old_path, &old).unwrap();
    std::fs::write(&payload, &patch[HEADER_LEN..]).unwrap();
    run(zstd_cli()
        .args(["-q", "-d", "--long=31", "--patch-from"])
        .arg(&old_path)
        .arg(&payload)
        .arg("-o")
        .arg(&out));
    assert!(
        std::fs::read(&out).unwrap() == new,
        "zstd --patch-from decoded different bytes"
    );
}

#[test]
fn zstd_cli_decodes_our_full_payload() {
    let (old, new) = pair();
    let patch = make_one(Method::Full, &old, &new, &settings()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (payload, out) = (dir.path().join("payload.zst"), dir.path().join("out"));
    std::fs::write(&payload, &patch[HEADER_LEN..]).unwrap();
    run(zstd_cli()
        .args(["-q", "-d"])
        .arg(&payload)
        .arg("-o")
        .arg(&out));
    assert!(
        std::fs::read(&out).unwrap() == new,
        "zstd decoded different bytes"
    );
}

/// Wraps a payload made by another tool in a v1 container.
fn wrap(method: Method, window_log: u8, old: Option<&[u8]>, new: &[u8], payload: &[u8]) -> Vec<u8> {
    let id = |b: &[u8]| FileId {
        size: b.len() as u64,
        sha256: Sha256Digest::of(b),
    };
    let header = Header::unsigned(method, window_log, old.map(id), id(new), id(payload), None);
    let mut out = header.encode().to_vec();
    out.extend_from_slice(payload);
    out
}

fn apply(dir: &Path, old: Option<&Path>, patch: &[u8]) -> Vec<u8> {
    let patch_path = dir.join("wrapped.dpatch");
    std::fs::write(&patch_path, patch).unwrap();
    let out = dir.join("applied");
    deltaapply::apply_file(
        old,
        &patch_path,
        &out,
        &Limits::default(),
        None,
        &mut |_| {},
    )
    .unwrap();
    std::fs::read(out).unwrap()
}

#[test]
fn deltaapply_applies_a_zstd_cli_patch_from_payload() {
    let (old, new) = pair();
    let dir = tempfile::tempdir().unwrap();
    let (old_path, new_path, payload) = (
        dir.path().join("old"),
        dir.path().join("new"),
        dir.path().join("p.zst"),
    );
    std::fs::write(&old_path, &old).unwrap();
    std::fs::write(&new_path, &new).unwrap();
    // --long=20 gives a 1 MiB window: enough to reach back over old and new here.
    run(zstd_cli()
        .args(["-q", "-19", "--long=20", "--no-check", "--patch-from"])
        .arg(&old_path)
        .arg(&new_path)
        .arg("-o")
        .arg(&payload));
    let patch = wrap(
        Method::ZstdRef,
        20,
        Some(&old),
        &new,
        &std::fs::read(&payload).unwrap(),
    );
    assert!(apply(dir.path(), Some(&old_path), &patch) == new);
}

#[test]
fn deltaapply_applies_a_zstd_cli_full_payload() {
    let (_, new) = pair();
    let dir = tempfile::tempdir().unwrap();
    let (new_path, payload) = (dir.path().join("new"), dir.path().join("p.zst"));
    std::fs::write(&new_path, &new).unwrap();
    run(zstd_cli()
        .args(["-q", "-19", "--no-check"])
        .arg(&new_path)
        .arg("-o")
        .arg(&payload));
    let patch = wrap(
        Method::Full,
        20,
        None,
        &new,
        &std::fs::read(&payload).unwrap(),
    );
    assert!(apply(dir.path(), None, &patch) == new);
}
