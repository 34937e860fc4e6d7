//! End-to-end tests of `deltaapply check` and `update` on whole release directories:
//! `deltapack build` publishes tree releases, the fault-injecting server serves them on
//! 127.0.0.1, and `deltaapply` brings an installed tree to the newest release by a tree
//! patch, a tree patch with some files fetched whole (the per-file fallback), a repair,
//! or the full tree image. After each update the tree is compared with the release
//! entry by entry (kind, content, mode, link target), files the user added must still
//! be there, and nothing may be left beside the tree.
//!
//! Run `cargo build -p deltaapply-cli` first (or `cargo test --workspace`).

#![cfg(unix)]

mod common;
#[path = "../../deltaapply/tests/common/http.rs"]
mod http;

use deltaapply::KeyFile as _;
use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};

use common::trees::{Node, copy_tree, snapshot_tree};
use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use common::{Dir, Rng, release_pair};
use deltaapply::manifest::{MANIFEST_FILE, Manifest};
use http::{Fault, Server};
use serde_json::Value;

const ARTIFACT: &str = "app";

fn deltapack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_deltapack"))
}

fn deltaapply() -> Command {
    common::deltaapply_cmd(Duration::from_secs(120))
}

fn write(root: &Path, rel: &str, bytes: &[u8], mode: u32) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Releases 1.0 and 2.0 of an application tree: two large binaries edited between the
/// releases, text files, a renamed file, a deleted and an added one, a mode change, a
/// link and an empty directory.
fn make_releases(root: &Path) -> (PathBuf, PathBuf) {
    let (v1, v2) = (root.join("1.0"), root.join("2.0"));
    let (bin1, bin2) = release_pair(96 << 10, 7);
    let (lib1, lib2) = release_pair(64 << 10, 8);
    let mut rng = Rng::new(9);
    let data: Vec<u8> = (0..20_000).map(|_| rng.byte()).collect();
    for (dir, bin, lib) in [(&v1, &bin1, &lib1), (&v2, &bin2, &lib2)] {
        write(dir, "bin/app", bin, 0o755);
        write(dir, "lib/libcore.so", lib, 0o644);
        write(dir, "share/data.bin", &data, 0o644);
        std::fs::create_dir_all(dir.join("var/empty")).unwrap();
        symlink("../lib/libcore.so", dir.join("bin/libcore.so")).unwrap();
    }
    write(&v1, "README", b"app 1.0\n", 0o644);
    write(&v2, "README", b"app 2.0\n", 0o644);
    write(&v1, "doc/old-guide.txt", &b"guide ".repeat(3000), 0o644);
    write(&v2, "doc/guide.txt", &b"guide ".repeat(3000), 0o644);
    write(&v1, "doc/obsolete.txt", b"going away", 0o644);
    write(&v2, "doc/new.txt", &b"brand new ".repeat(500), 0o644);
    write(&v1, "bin/helper.sh", b"#!/bin/sh\necho help\n", 0o644);
    write(&v2, "bin/helper.sh", b"#!/bin/sh\necho help\n", 0o755);
    (v1, v2)
}

/// A publish directory with releases 1.0 and 2.0, its key and the release trees.
struct Published {
    dir: Dir,
    v1: PathBuf,
    v2: PathBuf,
}

impl Published {
    fn new() -> Published {
        let dir = Dir::new();
        let out = deltapack()
            .arg("keygen")
            .arg("--secret-key")
            .arg(dir.join("k.sec"))
            .arg("--public-key")
            .arg(dir.join("k.pub"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let (v1, v2) = make_releases(&dir.join("trees"));
        let p = Published { dir, v1, v2 };
        let now = deltaapply::manifest::Timestamp::now().0;
        p.build("1.0", &p.v1.clone(), now - 7200);
        p.build("2.0", &p.v2.clone(), now - 3600);
        p
    }

    fn out(&self) -> PathBuf {
        self.dir.join("publish")
    }

    fn build(&self, version: &str, tree: &Path, created: u64) {
        let out = deltapack()
            .arg("build")
            .arg("--out")
            .arg(self.out())
            .arg("--secret-key")
            .arg(self.dir.join("k.sec"))
            .args(["--product", "demo", "--version", version])
            .arg("--artifact")
            .arg(format!("{ARTIFACT}={}", tree.display()))
            .args([
                "--created",
                &deltaapply::manifest::Timestamp(created).to_string(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "build {version}: {out:?}");
    }

    fn manifest(&self) -> Manifest {
        Manifest::parse(&std::fs::read(self.out().join(MANIFEST_FILE)).unwrap()).unwrap()
    }

    /// The newest release's files with their per-file container (URL path, size).
    fn file_containers(&self) -> BTreeMap<String, (String, u64)> {
        let m = self.manifest();
        m.artifacts[0]
            .entries
            .iter()
            .filter_map(|e| {
                e.full
                    .as_ref()
                    .map(|f| (e.path.clone(), (format!("/{}", f.path), f.size)))
            })
            .collect()
    }

    /// The tree patch from 1.0 (URL path, size) and the full image (URL path, size).
    fn patch_and_full(&self) -> ((String, u64), (String, u64)) {
        let m = self.manifest();
        let a = &m.artifacts[0];
        let p = &a.patches[0];
        (
            (format!("/{}", p.path), p.size),
            (format!("/{}", a.full.path), a.full.size),
        )
    }
}

/// A device: a directory holding the installed tree `app`.
struct Device {
    dir: Dir,
    key: PathBuf,
}

impl Device {
    fn new(p: &Published, installed: Option<&Path>) -> Device {
        let dir = Dir::new();
        if let Some(tree) = installed {
            copy_tree(tree, &dir.join(ARTIFACT));
        }
        Device {
            dir,
            key: p.dir.join("k.pub"),
        }
    }

    fn target(&self) -> PathBuf {
        self.dir.join(ARTIFACT)
    }

    /// Runs `deltaapply SUB --from FROM --key K --target app --json EXTRA`, asserts the
    /// exit code and that nothing but the tree, the state file and (after a failure)
    /// the download directory is beside the tree; returns the JSON.
    fn run(&self, sub: &str, from: &str, extra: &[&str], code: i32) -> Value {
        let output = deltaapply()
            .arg(sub)
            .args(["--from", from])
            .arg("--key")
            .arg(&self.key)
            .arg("--target")
            .arg(self.target())
            .args(["--json", "--retries", "1", "--read-timeout", "10"])
            .args(extra)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let json: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{e}: {stdout}{}", String::from_utf8_lossy(&output.stderr)));
        assert_eq!(output.status.code(), Some(code), "{json:#}");
        let mut allowed = vec![
            ARTIFACT.to_string(),
            format!(".{ARTIFACT}.deltaapply-state"),
        ];
        if code != 0 {
            allowed.push(format!(".{ARTIFACT}.deltaapply-cache"));
        }
        for name in self.dir.names() {
            assert!(
                allowed.contains(&name),
                "{name:?} left beside the tree: {json:#}"
            );
        }
        json
    }

    /// Asserts the tree is exactly `release` plus the user's own file `extra`.
    fn assert_tree(&self, release: &Path, extra: &[(&str, &[u8])]) {
        let mut want = snapshot_tree(release);
        for (rel, bytes) in extra {
            want.insert(rel.to_string(), Node::File(0o644, bytes.to_vec()));
        }
        let got = snapshot_tree(&self.target());
        let differ: Vec<_> = want
            .keys()
            .chain(got.keys())
            .filter(|k| want.get(*k) != got.get(*k))
            .collect();
        assert!(
            differ.is_empty(),
            "the tree differs from the release at {differ:?}"
        );
    }
}

fn serve(p: &Published) -> Server {
    let server = Server::start();
    server.put_dir("/", &p.out());
    server
}

/// Bytes the server sent for each path.
fn served(server: &Server) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for l in server.log() {
        *out.entry(l.path.clone()).or_default() += 1;
    }
    out
}

const USER_FILE: (&str, &[u8]) = ("my-notes.txt", b"mine, not the release's");

#[test]
fn a_clean_tree_downloads_only_the_tree_patch() {
    let p = Published::new();
    let server = serve(&p);
    let device = Device::new(&p, Some(&p.v1));
    write(&device.target(), USER_FILE.0, USER_FILE.1, 0o644);
    let ((patch, patch_size), (full, full_size)) = p.patch_and_full();
    assert!(patch_size * 10 < full_size, "{patch_size} vs {full_size}");

    let check = device.run("check", &server.url(), &[], 0);
    assert_eq!(check["installed"]["state"], "release");
    assert_eq!(check["plan"]["route"], "tree-patch");
    assert_eq!(check["plan"]["files"], serde_json::json!([]));

    let json = device.run("update", &server.url(), &[], 0);
    device.assert_tree(&p.v2, &[USER_FILE]);
    assert_eq!(json["result"]["downloaded"], patch_size);
    let log = served(&server);
    assert!(
        log.contains_key(&patch) && !log.contains_key(&full),
        "{log:?}"
    );
    assert!(!log.keys().any(|k| k.starts_with("/files/")), "{log:?}");

    let again = device.run("update", &server.url(), &[], 0);
    assert_eq!(again["result"]["outcome"], "up-to-date");
}

#[test]
fn modified_files_are_fetched_whole_and_the_rest_patched() {
    let p = Published::new();
    let server = serve(&p);
    let device = Device::new(&p, Some(&p.v1));
    write(&device.target(), USER_FILE.0, USER_FILE.1, 0o644);
    // Two installed files modified on the device: one the release patches, one it keeps.
    write(&device.target(), "bin/app", b"locally rebuilt", 0o755);
    write(&device.target(), "share/data.bin", b"truncated", 0o644);
    let ((patch, patch_size), (full, full_size)) = p.patch_and_full();
    let containers = p.file_containers();

    let check = device.run("check", &server.url(), &[], 0);
    assert_eq!(check["installed"]["state"], "tree");
    assert_eq!(check["installed"]["version"], "1.0");
    let differing: Vec<&str> = check["installed"]["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert_eq!(differing, ["bin/app", "share/data.bin"]);
    assert_eq!(check["plan"]["route"], "tree-patch");
    let planned: Vec<&str> = check["plan"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(planned, ["bin/app", "share/data.bin"]);
    assert_eq!(check["plan"]["files"][0]["why"]["problem"], "modified");

    let json = device.run("update", &server.url(), &[], 0);
    device.assert_tree(&p.v2, &[USER_FILE]);
    let whole = containers["bin/app"].1 + containers["share/data.bin"].1;
    assert_eq!(json["result"]["downloaded"], patch_size + whole);
    assert!(patch_size + whole < full_size);
    let log = served(&server);
    assert!(log.contains_key(&patch), "{log:?}");
    assert!(
        !log.contains_key(&full),
        "the whole image was fetched: {log:?}"
    );
    let fetched: Vec<&String> = log.keys().filter(|k| k.starts_with("/files/")).collect();
    assert_eq!(fetched.len(), 2, "{log:?}");
}

#[test]
fn the_newest_tree_with_damage_is_repaired() {
    let p = Published::new();
    let server = serve(&p);
    let device = Device::new(&p, Some(&p.v2));
    write(&device.target(), "doc/new.txt", b"damaged", 0o644);
    std::fs::remove_file(device.target().join("bin/libcore.so")).unwrap();
    std::fs::set_permissions(
        device.target().join("bin/app"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::remove_dir(device.target().join("var/empty")).unwrap();
    let containers = p.file_containers();

    let json = device.run("update", &server.url(), &[], 0);
    assert_eq!(json["plan"]["route"], "repair", "{json:#}");
    device.assert_tree(&p.v2, &[]);
    assert_eq!(json["result"]["downloaded"], containers["doc/new.txt"].1);
}

#[test]
fn what_a_killed_update_left_beside_the_tree_is_removed_by_the_next_even_when_up_to_date() {
    let p = Published::new();
    let server = serve(&p);
    let device = Device::new(&p, Some(&p.v2));
    // Killed after staging a file and before writing its journal: the staging
    // directory, a journal's temporary file and the lock file stay behind.
    let stage = device.dir.join(&format!(".{ARTIFACT}.deltaapply-stage"));
    std::fs::create_dir(&stage).unwrap();
    std::fs::write(stage.join("f3"), vec![1u8; 1 << 20]).unwrap();
    device
        .dir
        .write(&format!(".{ARTIFACT}.deltaapply-journal.tmp"), b"half");
    device
        .dir
        .write(&format!(".{ARTIFACT}.deltaapply-lock"), b"");
    let json = device.run("update", &server.url(), &[], 0);
    assert_eq!(json["plan"]["route"], "up-to-date", "{json:#}");
    device.assert_tree(&p.v2, &[]);
}

#[test]
fn an_update_of_a_tree_another_updater_holds_is_refused_and_touches_nothing() {
    let p = Published::new();
    let server = serve(&p);
    let device = Device::new(&p, Some(&p.v1));
    let lock = deltaapply::lock::TargetLock::acquire(&device.target()).unwrap();
    let stage = device.dir.join(&format!(".{ARTIFACT}.deltaapply-stage"));
    std::fs::create_dir(&stage).unwrap();
    let output = deltaapply()
        .arg("update")
        .args(["--from", &server.url()])
        .arg("--key")
        .arg(&device.key)
        .arg("--target")
        .arg(device.target())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(10), "{stderr}");
    assert!(stderr.contains("being updated by another"), "{stderr}");
    assert!(
        stage.exists(),
        "removed the staging of the updater holding the lock"
    );
    assert!(
        server.log().is_empty(),
        "fetched while another updater runs"
    );
    device.assert_tree(&p.v1, &[]);
    drop(lock);
    std::fs::remove_dir(&stage).unwrap();
    device.run("update", &server.url(), &[], 0);
    device.assert_tree(&p.v2, &[]);
}

#[test]
fn a_missing_tree_is_installed_from_the_full_image() {
    let p = Published::new();
    let server = serve(&p);
    let device = Device::new(&p, None);
    let (_, (full, full_size)) = p.patch_and_full();
    let json = device.run("update", &server.url(), &[], 0);
    assert_eq!(json["plan"]["route"], "full");
    assert_eq!(json["result"]["downloaded"], full_size);
    assert!(served(&server).contains_key(&full));
    device.assert_tree(&p.v2, &[]);
}

#[test]
fn a_corrupt_tree_patch_falls_back_to_the_full_image() {
    let p = Published::new();
    let server = serve(&p);
    let ((patch, _), _) = p.patch_and_full();
    let mut body = server.body(&patch).unwrap();
    let mid = body.len() / 2;
    body[mid] ^= 1;
    server.put(&patch, http::Resource::new(&body, "\"corrupt\""));
    let device = Device::new(&p, Some(&p.v1));
    write(&device.target(), USER_FILE.0, USER_FILE.1, 0o644);
    let json = device.run("update", &server.url(), &[], 0);
    assert_eq!(json["result"]["route"], "full", "{json:#}");
    assert!(json["result"]["fallback"].as_str().is_some());
    device.assert_tree(&p.v2, &[USER_FILE]);
}

#[test]
fn a_directory_replaced_by_a_link_out_of_the_tree_is_refused() {
    let p = Published::new();
    let server = serve(&p);
    let device = Device::new(&p, Some(&p.v1));
    let outside = Dir::new();
    outside.write("keep.txt", b"outside the tree");
    std::fs::remove_dir_all(device.target().join("lib")).unwrap();
    symlink(outside.path(), device.target().join("lib")).unwrap();
    let json = device.run("update", &server.url(), &[], 1);
    assert!(json["error"].as_str().unwrap().contains("lib"), "{json:#}");
    assert_eq!(outside.names(), ["keep.txt"]);
    assert_eq!(outside.read("keep.txt"), b"outside the tree");
}

#[test]
#[cfg_attr(
    not(feature = "crash-hook"),
    ignore = "needs the crash hook: --features deltapack/crash-hook"
)]
fn an_update_killed_while_switching_trees_is_finished_by_the_next_run() {
    let p = Published::new();
    let server = serve(&p);
    let mut points = 0;
    // Crash at steps 1, 4, 7, ... until a run gets through; each time the next run
    // without the crash finishes with exactly the new tree.
    for at in (1..200).step_by(3) {
        let device = Device::new(&p, Some(&p.v1));
        write(&device.target(), USER_FILE.0, USER_FILE.1, 0o644);
        let out = deltaapply()
            .arg("update")
            .args(["--from", &server.url()])
            .arg("--key")
            .arg(&device.key)
            .arg("--target")
            .arg(device.target())
            .env("DELTAAPPLY_CRASH_AT", at.to_string())
            .output()
            .unwrap();
        if out.status.success() {
            device.assert_tree(&p.v2, &[USER_FILE]);
            break;
        }
        points += 1;
        device.run("update", &server.url(), &[], 0);
        device.assert_tree(&p.v2, &[USER_FILE]);
    }
    assert!(points >= 5, "only {points} crash points were reached");
}

#[test]
fn no_full_with_an_unusable_patch_leaves_the_tree_and_fails() {
    let p = Published::new();
    let server = serve(&p);
    let ((patch, _), _) = p.patch_and_full();
    server.faults(
        &patch,
        [Fault::Status(404), Fault::Status(404), Fault::Status(404)],
    );
    let device = Device::new(&p, Some(&p.v1));
    let json = device.run("update", &server.url(), &["--no-full"], 9);
    assert!(
        json["error"].as_str().unwrap().contains("patches/"),
        "{json:#}"
    );
    device.assert_tree(&p.v1, &[]);
}

/// Runs `deltaapply update` with the crash hook set to `at`; whether it got through.
fn update_crashing_at(device: &Device, server: &Server, at: u64, extra: &[&str]) -> bool {
    let out = deltaapply()
        .arg("update")
        .args(["--from", &server.url()])
        .arg("--key")
        .arg(&device.key)
        .arg("--target")
        .arg(device.target())
        .args(extra)
        .env("DELTAAPPLY_CRASH_AT", at.to_string())
        .output()
        .unwrap();
    if !out.status.success() {
        assert_eq!(out.status.code(), None, "step {at}: {out:?}");
    }
    out.status.success()
}

/// Damages an installed 2.0 so that only a repair brings it back.
fn damage(device: &Device) {
    write(&device.target(), "doc/new.txt", b"damaged", 0o644);
    std::fs::remove_file(device.target().join("bin/libcore.so")).unwrap();
    std::fs::set_permissions(
        device.target().join("bin/app"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::remove_dir(device.target().join("var/empty")).unwrap();
}

#[test]
#[cfg_attr(
    not(feature = "crash-hook"),
    ignore = "needs the crash hook: --features deltapack/crash-hook"
)]
fn a_repair_killed_at_every_step_is_finished_by_the_next_run() {
    let p = Published::new();
    let server = serve(&p);
    let mut points = 0;
    for at in 1..100 {
        let device = Device::new(&p, Some(&p.v2));
        damage(&device);
        write(&device.target(), USER_FILE.0, USER_FILE.1, 0o644);
        if update_crashing_at(&device, &server, at, &[]) {
            device.assert_tree(&p.v2, &[USER_FILE]);
            break;
        }
        points += 1;
        let json = device.run("update", &server.url(), &[], 0);
        assert!(
            ["repair", "up-to-date"].contains(&json["result"]["route"].as_str().unwrap()),
            "after a crash at step {at}: {json:#}"
        );
        device.assert_tree(&p.v2, &[USER_FILE]);
    }
    // One staged file, the journal, the operations (a file placed, a link, a directory,
    // two modes) and the clean-up: every one a point a crash can come.
    assert!(points >= 6, "only {points} crash points were reached");
}

#[test]
#[cfg_attr(
    not(feature = "crash-hook"),
    ignore = "needs the crash hook: --features deltapack/crash-hook"
)]
fn a_full_image_update_killed_at_every_step_still_removes_what_the_release_drops() {
    let p = Published::new();
    let server = serve(&p);
    let mut points = 0;
    for at in 1..200 {
        let device = Device::new(&p, Some(&p.v1));
        write(&device.target(), USER_FILE.0, USER_FILE.1, 0o644);
        if update_crashing_at(&device, &server, at, &["--prefer-full"]) {
            device.assert_tree(&p.v2, &[USER_FILE]);
            break;
        }
        points += 1;
        device.run("update", &server.url(), &["--prefer-full"], 0);
        // 1.0's doc/obsolete.txt and doc/old-guide.txt are gone, the user's file stays.
        device.assert_tree(&p.v2, &[USER_FILE]);
    }
    assert!(points >= 10, "only {points} crash points were reached");
}

#[test]
fn a_forged_journal_beside_the_tree_is_refused_by_update() {
    let p = Published::new();
    let server = serve(&p);
    let v2 = p.manifest().artifacts[0].listing().unwrap().unwrap();
    let v2_id = v2.id().sha256;
    let journal_path =
        |device: &Device| device.dir.join(&format!(".{ARTIFACT}.deltaapply-journal"));
    use deltaapply::tree::TreePath;
    use deltaapply::tree::journal::{Journal, Op};
    let outside = Dir::new();
    // A journal for the newest tree with a link out of it; one for a tree no release
    // of the manifest has.
    let cases = [
        (
            v2_id,
            vec![Op::Link(
                TreePath::new("bin/evil").unwrap(),
                format!("../../../../../../..{}", outside.path().display()),
            )],
        ),
        (
            deltaapply::Sha256Digest([9; 32]),
            vec![Op::Delete(TreePath::new("README").unwrap())],
        ),
    ];
    for (new, ops) in cases {
        let device = Device::new(&p, Some(&p.v1));
        let journal = Journal {
            patch: None,
            old: v2_id,
            new,
            ops,
        };
        std::fs::write(journal_path(&device), journal.encode()).unwrap();
        let output = deltaapply()
            .arg("update")
            .args(["--from", &server.url()])
            .arg("--key")
            .arg(&device.key)
            .arg("--target")
            .arg(device.target())
            .arg("--json")
            .output()
            .unwrap();
        let json: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(output.status.code(), Some(1), "{json:#}");
        let err = json["error"].as_str().unwrap();
        assert!(err.contains("cannot be trusted"), "{err}");
        device.assert_tree(&p.v1, &[]);
        assert!(std::fs::symlink_metadata(device.target().join("bin/evil")).is_err());
    }
}

#[test]
fn a_directory_swapped_for_a_link_while_a_repair_downloads_is_not_written_through() {
    use deltaapply::update::{Event, Updater};
    use deltaapply::{PublicKey, Source, TrustedKeys};
    let p = Published::new();
    let server = serve(&p);
    let device = Device::new(&p, Some(&p.v2));
    write(&device.target(), "doc/new.txt", b"damaged", 0o644);
    // What the link will point to: a copy of doc/ outside the tree.
    let outside = Dir::new();
    copy_tree(&device.target().join("doc"), &outside.join("doc"));
    let before = snapshot_tree(&outside.join("doc"));
    let key = PublicKey::from_arg(p.dir.join("k.pub").to_str().unwrap()).unwrap();
    let updater = Updater::new(
        Source::parse(&server.url()).unwrap(),
        TrustedKeys::single(key),
        device.target(),
    );
    let target = device.target();
    let mut swapped = false;
    let result = updater.update(&mut |event| {
        if let Event::Download { .. } = event
            && !swapped
        {
            // Between the identification and the write: doc/ becomes a link out.
            swapped = true;
            std::fs::rename(target.join("doc"), target.join("doc.moved")).unwrap();
            symlink(outside.join("doc"), target.join("doc")).unwrap();
        }
    });
    assert!(swapped, "the repair downloaded nothing");
    let err = result.expect_err("the update wrote through a link");
    assert!(
        err.to_string().contains("doc") || format!("{err:?}").contains("doc"),
        "{err:?}"
    );
    assert_eq!(
        snapshot_tree(&outside.join("doc")),
        before,
        "written outside the tree"
    );
}
