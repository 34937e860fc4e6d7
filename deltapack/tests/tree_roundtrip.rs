//! Round trips of whole release trees through the real binaries: generated trees
//! (nested directories, text and binary files of many sizes, an empty directory,
//! links to files and directories, executable and read-only files) and mutations of
//! them (adds, deletes, renames, copies, small edits of big files, mode changes, link
//! retargeting, a directory replaced by a file and back, deeply nested new
//! directories, the empty tree to a tree and back). For each: `deltapack diff` the two
//! directories, `deltaapply apply OLD P -o NEW` and `--in-place` on a copy holding a
//! file of the user's, and compare everything a tree carries with the new tree. The
//! patch must ship nothing the old tree already has.
//!
//! `cargo build -p deltaapply-cli` first (see `common::deltaapply_bin`).

#![cfg(unix)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use assert_cmd::Command;
use common::trees::{
    Node, assert_same_tree, chmod, copy_tree, gen_tree, link, put, remove, snapshot_tree, text,
};
use common::{Dir, Kind, Rng, deltaapply_bin, fill};
use deltaapply::tree::{EntryKind, Recipe, TreePatch};
use deltaapply::{Limits, Sha256Digest};
use serde_json::Value;

/// A file of the user's, added to the installed tree; every update keeps it.
const USER_FILE: &str = "user-notes.txt";

fn deltapack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_deltapack"))
}

fn deltaapply() -> Command {
    let mut cmd = Command::new(deltaapply_bin());
    cmd.env_remove("DELTAAPPLY_KEY")
        .env_remove("DELTAAPPLY_CRASH_AT");
    cmd
}

fn run(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What a round trip found, for case-specific checks.
struct Outcome {
    /// `deltapack diff --json`.
    json: Value,
    /// Each new file's recipe, by path.
    recipes: BTreeMap<String, Recipe>,
}

/// Makes `old/` with `make_old`, `new/` as a copy changed by `mutate`, and runs the
/// whole round trip (see the module documentation).
fn round_trip(name: &str, make_old: impl FnOnce(&Path), mutate: impl FnOnce(&Path)) -> Outcome {
    let dir = Dir::new();
    let (old, new) = (dir.join("old"), dir.join("new"));
    make_old(&old);
    copy_tree(&old, &new);
    mutate(&new);
    let old_snap = snapshot_tree(&old);
    let new_snap = snapshot_tree(&new);
    assert_ne!(old_snap, new_snap, "{name}: the mutation changes nothing");

    // The patch.
    let patch = dir.join("tree.dpatch");
    let out = run(
        deltapack()
            .arg("diff")
            .arg(&old)
            .arg(&new)
            .arg("-o")
            .arg(&patch)
            .arg("--json"),
        &format!("{name}: deltapack diff"),
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let recipes = check_nothing_unchanged_is_shipped(name, &patch, &old_snap, &new_snap, &json);

    // Out of place: the old tree is left as it was.
    let made = dir.join("made");
    run(
        deltaapply()
            .arg("apply")
            .arg(&old)
            .arg(&patch)
            .arg("-o")
            .arg(&made),
        &format!("{name}: apply -o"),
    );
    assert_same_tree(&snapshot_tree(&made), &new_snap, &format!("{name}: -o"));
    assert_same_tree(
        &snapshot_tree(&old),
        &old_snap,
        &format!("{name}: old after -o"),
    );

    // In place, on a copy with a file of the user's.
    let installed = dir.join("installed");
    copy_tree(&old, &installed);
    put(&installed, USER_FILE, b"my notes\n");
    chmod(&installed, USER_FILE, 0o640);
    run(
        deltaapply()
            .arg("apply")
            .arg("--in-place")
            .arg(&installed)
            .arg(&patch),
        &format!("{name}: apply --in-place"),
    );
    let mut got = snapshot_tree(&installed);
    assert_eq!(
        got.remove(USER_FILE),
        Some(Node::File(0o640, b"my notes\n".to_vec())),
        "{name}: the user's file survives in place"
    );
    assert_same_tree(&got, &new_snap, &format!("{name}: --in-place"));
    // Nothing of the applier's is left behind beside the tree.
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !["old", "new", "made", "installed", "tree.dpatch"].contains(&n.as_str()))
        .collect();
    assert!(leftovers.is_empty(), "{name}: left behind {leftovers:?}");
    Outcome { json, recipes }
}

/// Reads the patch back as the applier does and checks that a blob is shipped only
/// for content the old tree does not have anywhere, that every file the old tree
/// has is a copy, and that the `--json` counts say the same. Returns the recipes.
fn check_nothing_unchanged_is_shipped(
    name: &str,
    patch: &Path,
    old: &BTreeMap<String, Node>,
    new: &BTreeMap<String, Node>,
    json: &Value,
) -> BTreeMap<String, Recipe> {
    let opened = TreePatch::open(patch, &Limits::default(), None, &mut |_| {})
        .unwrap_or_else(|e| panic!("{name}: the patch does not open: {e}"));
    let index = opened.index();
    let old_content: BTreeSet<Vec<u8>> = old
        .values()
        .filter_map(|n| match n {
            Node::File(_, b) => Some(b.clone()),
            _ => None,
        })
        .collect();
    let old_hashes: BTreeSet<Sha256Digest> =
        old_content.iter().map(|b| Sha256Digest::of(b)).collect();
    let mut recipes = BTreeMap::new();
    let mut shipped = 0u64;
    let mut unchanged = 0u64;
    for entry in index.new.entries() {
        let path = entry.path.to_string();
        let EntryKind::File { sha256, recipe, .. } = entry.kind else {
            continue;
        };
        let in_old = old_hashes.contains(&sha256);
        match recipe {
            Recipe::Copy { from } => {
                assert!(in_old, "{name}: {path} copied from nothing");
                assert_eq!(
                    index.old.entries()[from].kind.file().map(|f| f.sha256),
                    Some(sha256),
                    "{name}: {path} copied from another content"
                );
                if index.old.entries()[from].path == entry.path {
                    unchanged += 1;
                }
            }
            Recipe::Patch { .. } | Recipe::Full { .. } => {
                assert!(
                    !in_old,
                    "{name}: {path} is shipped ({recipe:?}) though the old tree has its content"
                );
                shipped += 1;
            }
        }
        recipes.insert(path, recipe);
    }
    // Every new file is in the index, and the index is the new tree.
    let new_files = new.values().filter(|n| matches!(n, Node::File(..))).count();
    assert_eq!(recipes.len(), new_files, "{name}: one recipe per new file");
    assert_eq!(index.new.entries().len(), new.len(), "{name}: new entries");
    let s = &json["stats"];
    let json_shipped: u64 = ["bsdiff", "zstd", "full"]
        .iter()
        .map(|m| s[m]["files"].as_u64().unwrap())
        .sum();
    assert_eq!(json_shipped, shipped, "{name}: shipped files in {json}");
    assert_eq!(index.blobs.len() as u64, shipped, "{name}: blobs");
    let copies = s["unchanged"]["files"].as_u64().unwrap()
        + s["renamed_or_copied"]["files"].as_u64().unwrap();
    assert_eq!(
        copies + shipped,
        new_files as u64,
        "{name}: counts in {json}"
    );
    assert!(
        s["unchanged"]["files"].as_u64().unwrap() <= unchanged,
        "{name}: unchanged count in {json}"
    );
    recipes
}

fn base(root: &Path) {
    gen_tree(root, 1);
}

/// Flips a few bytes in the middle of `root/rel` (a small edit of a big file).
fn small_edit(root: &Path, rel: &str, seed: u64) {
    let path = root.join(rel);
    let mut bytes = std::fs::read(&path).unwrap();
    let mut rng = Rng::new(seed);
    for _ in 0..8 {
        let at = bytes.len() / 3 + rng.below(bytes.len() / 3);
        bytes[at] ^= 0x5a;
    }
    bytes.splice(bytes.len() / 2..bytes.len() / 2, *b"inserted in the middle");
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn adds() {
    let o = round_trip("adds", base, |n| {
        put(n, "bin/helper", &fill(Kind::Code32, 30 << 10, 50));
        chmod(n, "bin/helper", 0o755);
        put(n, "share/doc/NEWS", &text(50, 51));
        put(n, "plugins/extra/x.so", &fill(Kind::Code64, 5 << 10, 52));
        std::fs::create_dir_all(n.join("var/cache/empty-too")).unwrap();
        put(n, "zero-length", b"");
        link(n, "plugins/current", "extra");
    });
    for p in ["bin/helper", "share/doc/NEWS", "plugins/extra/x.so"] {
        assert!(matches!(o.recipes[p], Recipe::Full { .. }), "{p}");
    }
    // The old tree has an empty file already.
    assert!(matches!(o.recipes["zero-length"], Recipe::Copy { .. }));
    assert_eq!(o.json["stats"]["unchanged"]["files"], 18, "{}", o.json);
}

#[test]
fn deletes() {
    let o = round_trip("deletes", base, |n| {
        remove(n, "bin/tool");
        remove(n, "lib/plugins");
        remove(n, "share/data/blob-3");
        remove(n, "conf/locked.cfg");
        remove(n, "var/empty");
        remove(n, "docs");
    });
    assert_eq!(o.json["stats"]["deleted"]["files"], 6, "{}", o.json);
    assert!(o.recipes.values().all(|r| matches!(r, Recipe::Copy { .. })));
}

#[test]
fn renames_of_files_and_directories() {
    let o = round_trip("renames", base, |n| {
        std::fs::rename(n.join("bin/tool"), n.join("bin/tool-2")).unwrap();
        std::fs::rename(n.join("lib/plugins"), n.join("lib/modules")).unwrap();
        std::fs::rename(n.join("share/data"), n.join("data")).unwrap();
    });
    assert!(o.recipes.values().all(|r| matches!(r, Recipe::Copy { .. })));
    assert_eq!(
        o.json["stats"]["renamed_or_copied"]["files"],
        1 + 3 + 6,
        "{}",
        o.json
    );
}

#[test]
fn copies() {
    let o = round_trip("copies", base, |n| {
        std::fs::copy(n.join("bin/app"), n.join("bin/app-backup")).unwrap();
        std::fs::copy(n.join("lib/plugins/b.so"), n.join("lib/deep/b.so")).unwrap();
        put(
            n,
            "share/doc/README.copy",
            &std::fs::read(n.join("share/doc/README")).unwrap(),
        );
    });
    assert!(o.recipes.values().all(|r| matches!(r, Recipe::Copy { .. })));
    assert_eq!(
        o.json["stats"]["renamed_or_copied"]["files"], 3,
        "{}",
        o.json
    );
}

#[test]
fn small_edits_of_big_files_are_patches() {
    let o = round_trip("edits", base, |n| {
        small_edit(n, "bin/app", 60);
        small_edit(n, "lib/plugins/c.so", 61);
        let mut changes = std::fs::read(n.join("share/doc/CHANGES")).unwrap();
        changes.extend_from_slice(b"00300: a new line at the end\n");
        std::fs::write(n.join("share/doc/CHANGES"), changes).unwrap();
        // A read-only file whose content changes.
        chmod(n, "conf/locked.cfg", 0o644);
        put(n, "conf/locked.cfg", b"locked = false\n");
        chmod(n, "conf/locked.cfg", 0o444);
    });
    for p in ["bin/app", "lib/plugins/c.so", "share/doc/CHANGES"] {
        assert!(
            matches!(o.recipes[p], Recipe::Patch { .. }),
            "{p}: {:?}",
            o.recipes[p]
        );
    }
    let patch_size = o.json["patch_size"].as_u64().unwrap();
    assert!(
        patch_size < 20 << 10,
        "{patch_size} bytes for a few small edits"
    );
}

#[test]
fn mode_changes() {
    let o = round_trip("modes", base, |n| {
        chmod(n, "bin/tool", 0o644);
        chmod(n, "share/doc/README", 0o755);
        chmod(n, "conf/locked.cfg", 0o644);
        chmod(n, "conf/main.cfg", 0o400);
        chmod(n, "var/empty", 0o700);
        chmod(n, "lib/deep", 0o750);
    });
    assert!(o.recipes.values().all(|r| matches!(r, Recipe::Copy { .. })));
    assert!(
        o.json["patch_size"].as_u64().unwrap() < 8 << 10,
        "{}",
        o.json
    );
}

#[test]
fn symlink_retargeting() {
    round_trip("links", base, |n| {
        remove(n, "app");
        link(n, "app", "bin/tool");
        remove(n, "docs");
        link(n, "docs", "lib/plugins");
        remove(n, "lib/deep/er/cfg");
        link(n, "lib/deep/er/cfg", "../../plugins/a.so");
        // A link becomes a file, a file becomes a link.
        remove(n, "run.sh");
        link(n, "run.sh", "bin/app");
        remove(n, "share/data/blob-1");
        put(n, "share/data/blob-1", b"");
        remove(n, "share/data/blob-0");
        link(n, "share/data/blob-0", "blob-2");
    });
}

#[test]
fn a_directory_replaced_by_a_file_and_a_file_by_a_directory() {
    let o = round_trip("dir <-> file", base, |n| {
        // `docs` points into share/doc, which becomes a file.
        remove(n, "docs");
        remove(n, "share/doc");
        put(n, "share/doc", &text(10, 70));
        remove(n, "conf/main.cfg");
        remove(n, "lib/deep/er/cfg");
        put(n, "conf/main.cfg/level", b"3\n");
        put(n, "conf/main.cfg/name", b"app\n");
        // A directory replaced by a link to another, and a link by a directory.
        remove(n, "lib/deep/er/still");
        link(n, "lib/deep/er/still", "../../plugins");
        remove(n, "app");
        put(
            n,
            "app/README",
            &std::fs::read(n.join("share/data/blob-4")).unwrap(),
        );
    });
    assert!(matches!(o.recipes["app/README"], Recipe::Copy { .. }));
}

#[test]
fn deeply_nested_new_directories() {
    let deep = "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p";
    let o = round_trip("deep", base, |n| {
        put(
            n,
            &format!("{deep}/file.bin"),
            &fill(Kind::Random, 3000, 80),
        );
        std::fs::create_dir_all(n.join(format!("{deep}/q/r/s/empty"))).unwrap();
        link(
            n,
            &format!("{deep}/top"),
            "../../../../../../../../../../../../../../../../bin",
        );
        std::fs::copy(n.join("bin/app"), n.join(format!("{deep}/app"))).unwrap();
    });
    assert!(matches!(
        o.recipes[&format!("{deep}/app")],
        Recipe::Copy { .. }
    ));
}

#[test]
fn the_empty_tree_to_a_tree_and_back() {
    let empty = |root: &Path| std::fs::create_dir_all(root).unwrap();
    let o = round_trip("empty -> tree", empty, |n| gen_tree(&n.join("t"), 2));
    assert!(o.recipes.values().all(|r| matches!(r, Recipe::Full { .. })));
    let o = round_trip("tree -> empty", base, |n| {
        for e in std::fs::read_dir(n).unwrap() {
            let name = e.unwrap().file_name();
            remove(n, &name.to_string_lossy());
        }
    });
    assert!(o.recipes.is_empty());
    assert_eq!(o.json["stats"]["new_tree"]["files"], 0, "{}", o.json);
}

#[test]
fn everything_at_once_on_several_seeds() {
    for seed in [3, 4, 5] {
        round_trip(
            &format!("mixed {seed}"),
            |o| gen_tree(o, seed),
            |n| {
                let mut rng = Rng::new(seed);
                small_edit(n, "bin/app", seed);
                std::fs::rename(n.join("lib/plugins/a.so"), n.join("lib/a.so")).unwrap();
                remove(n, "share/data/blob-5");
                put(
                    n,
                    "share/data/blob-6",
                    &fill(Kind::Text, 1000 + rng.below(5000), seed),
                );
                chmod(n, "run.sh", 0o700);
                remove(n, "app");
                link(n, "app", "lib/a.so");
                remove(n, "var/empty");
                put(n, "var/empty", b"now a file\n");
                std::fs::copy(n.join("bin/tool"), n.join("share/tool")).unwrap();
            },
        );
    }
}
