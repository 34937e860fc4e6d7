//! Updates on real filesystems that fail (ADVERSARIAL-PLAN cases 34 and 35): a small
//! tmpfs that fills up while the new release is written, and a read-only mount. Each
//! runs `deltaapply update` inside a private mount namespace (`unshare --user
//! --map-root-user --mount`, no privileges needed), where the target lives on a tmpfs
//! mounted for the test; a shell script there runs the applier, then records the exit
//! code, the target's SHA-256 and the directory listing for the test to check.
//!
//! Needs `unshare` (util-linux) and unprivileged user namespaces; without them the
//! tests fail and say so. `deltaapply` is another package's binary: run `cargo build
//! -p deltaapply-cli` first (or `cargo test --workspace`).

mod common;

use std::process::Command;

use common::{Dir, release_pair};
use deltaapply::Sha256Digest;
use deltaapply::manifest::Timestamp;
use serde_json::Value;

const ARTIFACT: &str = "app.bin";

/// A publish directory with releases 1.0 and 1.1 of `ARTIFACT`, signed by a new key.
struct Published {
    dir: Dir,
    old: Vec<u8>,
    new: Vec<u8>,
}

impl Published {
    fn new(size: usize, seed: u64) -> Published {
        let dir = Dir::new();
        let deltapack = env!("CARGO_BIN_EXE_deltapack");
        let ok = |cmd: &mut Command, what: &str| {
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{what}: {out:?}");
        };
        ok(
            Command::new(deltapack)
                .arg("keygen")
                .arg("--secret-key")
                .arg(dir.join("release.key"))
                .arg("--public-key")
                .arg(dir.join("release.pub")),
            "keygen",
        );
        let (old, new) = release_pair(size, seed);
        let created = Timestamp::now().0 - 86_400;
        for (i, (version, content)) in [("1.0", &old), ("1.1", &new)].into_iter().enumerate() {
            let file = dir.write(&format!("{version}.bin"), content);
            ok(
                Command::new(deltapack)
                    .arg("build")
                    .arg("--out")
                    .arg(dir.join("publish"))
                    .arg("--secret-key")
                    .arg(dir.join("release.key"))
                    .args(["--product", "fs-app", "--version", version])
                    .arg("--artifact")
                    .arg(format!("{ARTIFACT}={}", file.display()))
                    .args(["--created", &Timestamp(created + i as u64).to_string()]),
                "build",
            );
        }
        Published { dir, old, new }
    }
}

/// What one run of the applier in the namespace left.
#[derive(Debug)]
struct Run {
    code: i32,
    json: Value,
    target_sha256: String,
    listing: Vec<String>,
}

/// Runs `script` (which mounts `$DEV` and calls `run_update NAME` for each run) in a
/// private mount namespace; returns each run by name.
fn in_namespace(p: &Published, script: &str, names: &[&str]) -> Vec<Run> {
    let dev = p.dir.join("dev");
    let out = p.dir.join("out");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let installed = p.dir.write("installed.bin", &p.old);
    let prelude = r#"
set -eu
run_update() {
  set +e
  "$DELTAAPPLY" update --from "$PUBLISH" --key "$KEY" --target "$DEV/app.bin" --json \
    > "$OUT/$1.json" 2> "$OUT/$1.err"
  echo $? > "$OUT/$1.code"
  set -e
  sha256sum "$DEV/app.bin" | cut -d' ' -f1 > "$OUT/$1.sha"
  ls -A "$DEV" > "$OUT/$1.ls"
}
"#;
    let status = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(format!("{prelude}\n{script}"))
        .env("DELTAAPPLY", common::deltaapply_bin())
        .env("PUBLISH", p.dir.join("publish"))
        .env("KEY", p.dir.join("release.pub"))
        .env("DEV", &dev)
        .env("OUT", &out)
        .env("INSTALLED", &installed)
        .env_remove("DELTAAPPLY_KEY")
        .output()
        .unwrap_or_else(|e| panic!("cannot run unshare (util-linux): {e}"));
    assert!(
        status.status.success(),
        "the namespace script failed (are unprivileged user namespaces allowed?): {status:?}"
    );
    names
        .iter()
        .map(|name| {
            let read = |ext: &str| {
                std::fs::read_to_string(out.join(format!("{name}.{ext}")))
                    .unwrap_or_else(|e| panic!("{name}.{ext}: {e}"))
            };
            Run {
                code: read("code").trim().parse().unwrap(),
                json: serde_json::from_str(&read("json"))
                    .unwrap_or_else(|e| panic!("{name}: {e}: {}", read("err"))),
                target_sha256: read("sha").trim().to_string(),
                listing: read("ls").lines().map(str::to_string).collect(),
            }
        })
        .collect()
}

fn sha(bytes: &[u8]) -> String {
    Sha256Digest::of(bytes).to_string()
}

/// No temporary file of the applier in `listing`.
fn no_temporaries(listing: &[String], what: &str) {
    for name in listing {
        assert!(
            !name.contains("deltaapply-tmp") && !name.contains(".part"),
            "{what}: {name} left in the target's directory: {listing:?}"
        );
    }
}

/// Case 34 on a real filesystem: a tmpfs with room for the old release and the patch
/// but not for the new release beside it. The update fails before it decodes anything
/// (exit 1, "no room for the N bytes": the applier checks the free space first), the
/// target is the old release byte for byte and nothing half-written is left; once the
/// filesystem is larger, the same command completes.
#[test]
fn a_full_tmpfs_leaves_the_old_release_and_a_rerun_completes() {
    let p = Published::new(700 << 10, 34);
    let runs = in_namespace(
        &p,
        r#"
mount -t tmpfs -o size=1100k tmpfs "$DEV"
cp "$INSTALLED" "$DEV/app.bin"
run_update full
mount -o remount,size=8m "$DEV"
run_update roomy
"#,
        &["full", "roomy"],
    );
    let (full, roomy) = (&runs[0], &runs[1]);
    assert_eq!(full.code, 1, "{full:?}");
    // Found by the free-space check before anything is decoded (the preflight of case 34).
    let error = full.json["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("no room for") && error.contains("No space left"),
        "{error}"
    );
    assert_eq!(
        full.target_sha256,
        sha(&p.old),
        "the target changed: {full:?}"
    );
    no_temporaries(&full.listing, "after ENOSPC");
    assert_eq!(roomy.code, 0, "{roomy:?}");
    assert_eq!(roomy.target_sha256, sha(&p.new));
    no_temporaries(&roomy.listing, "after the rerun");
}

/// Case 35 on a real filesystem: the target's filesystem is mounted read-only. The
/// update fails with a clear error (exit 1, "Read-only file system"), writes nothing
/// (no state file, no download directory) and the target is untouched.
#[test]
fn a_read_only_mount_is_refused_cleanly() {
    let p = Published::new(64 << 10, 35);
    let runs = in_namespace(
        &p,
        r#"
mount -t tmpfs -o size=4m tmpfs "$DEV"
cp "$INSTALLED" "$DEV/app.bin"
mount -o remount,ro "$DEV"
run_update readonly
"#,
        &["readonly"],
    );
    let ro = &runs[0];
    assert_eq!(ro.code, 1, "{ro:?}");
    let error = ro.json["error"].as_str().unwrap_or_default();
    assert!(error.contains("Read-only file system"), "{error}");
    assert_eq!(ro.target_sha256, sha(&p.old));
    assert_eq!(
        ro.listing,
        [ARTIFACT],
        "nothing else on the read-only mount"
    );
}
