//! End-to-end tests of `deltapack diff OLD_DIR NEW_DIR` and `deltapack inspect` on the
//! tree patches it makes: the recipes chosen (read back with the applier's own
//! `TreePatch::open`), the text and JSON summaries, signing, determinism across
//! `--threads`, and every refusal's exit code and message. Applying tree patches is
//! `deltaapply`'s and is tested there.

mod common;

use deltaapply::KeyFile as _;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use common::{Dir, release_pair};
use deltaapply::tree::{EntryKind, Recipe, TreePatch, TreePath};
use deltaapply::{Limits, Origin};
use serde_json::Value;

/// Exit codes from README.md ("Exit codes (both tools)").
mod code {
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const LIMIT: i32 = 5;
}

fn deltapack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_deltapack"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8 output")
}

fn stdout_json(output: &std::process::Output) -> Value {
    let text = text(&output.stdout);
    assert_eq!(text.lines().count(), 1, "one JSON line expected: {text:?}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// Two release trees, `old/` and `new/`, and room for patches beside them.
struct Trees {
    dir: Dir,
}

impl Trees {
    /// A release pair with an unchanged file, a patched binary, a rename, a moved and
    /// changed plugin, a mode change, a new file, a deleted file, an empty directory
    /// and a symbolic link.
    fn new() -> Self {
        let trees = Trees { dir: Dir::new() };
        let (app, app2) = release_pair(64 << 10, 7);
        let (plugin, plugin2) = release_pair(24 << 10, 8);
        let (data, _) = release_pair(8 << 10, 9);
        trees.write("old/bin/app", &app);
        trees.write("new/bin/app", &app2);
        trees.write("old/README", b"read me");
        trees.write("new/README", b"read me");
        trees.write("old/share/data-1.bin", &data);
        trees.write("new/share/data-2.bin", &data);
        trees.write("old/plugins/v1/plugin.so", &plugin);
        trees.write("new/plugins/v2/plugin.so", &plugin2);
        trees.write("old/run.sh", b"#!/bin/sh\nexec bin/app\n");
        trees.write("new/run.sh", b"#!/bin/sh\nexec bin/app\n");
        trees.write("old/obsolete.cfg", b"old = true\n");
        trees.write("new/added.cfg", b"new = true\n");
        std::fs::create_dir_all(trees.path("new/var/empty")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                trees.path("new/run.sh"),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap();
            std::os::unix::fs::symlink("bin/app", trees.path("new/app")).unwrap();
        }
        trees
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn write(&self, rel: &str, bytes: &[u8]) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// `deltapack diff OLD NEW -o PATCH` plus `args`, paths relative to the directory.
    fn diff(&self, old: &str, new: &str, patch: &str, args: &[&str]) -> Command {
        let mut cmd = deltapack();
        cmd.arg("diff")
            .arg(self.path(old))
            .arg(self.path(new))
            .arg("-o")
            .arg(self.path(patch))
            .args(args);
        cmd
    }

    /// Makes `patch` from `old/` to `new/`, checking that it succeeds quietly;
    /// returns stdout.
    fn make(&self, patch: &str, args: &[&str]) -> std::process::Output {
        let out = self.diff("old", "new", patch, args).output().expect("run");
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "");
        out
    }
}

/// Opens a tree patch as the applier does; returns each new file's path with its
/// recipe and, for a copy or a patch, the old path it reads.
fn recipes(patch: &Path) -> Vec<(String, Recipe, Option<String>)> {
    let opened = TreePatch::open(patch, &Limits::default(), None, &mut |_| {}).expect("opens");
    let index = opened.index();
    index
        .new
        .entries()
        .iter()
        .filter_map(|e| {
            let EntryKind::File { recipe: r, .. } = e.kind else {
                return None;
            };
            let from = r.from().map(|i| index.old.entries()[i].path.to_string());
            Some((e.path.to_string(), r, from))
        })
        .collect()
}

#[test]
fn diffs_two_directories_into_a_tree_patch() {
    let trees = Trees::new();
    let out = trees.make("tree.dpatch", &[]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("tree patch"), "{stdout}");
    for label in [
        "unchanged",
        "renamed/copied",
        "bsdiff",
        "zstd",
        "full",
        "deleted",
        "new tree",
    ] {
        assert!(stdout.contains(label), "no {label} line: {stdout}");
    }

    let got = recipes(&trees.path("tree.dpatch"));
    let find = |p: &str| {
        got.iter()
            .find(|(path, ..)| path == p)
            .unwrap_or_else(|| panic!("{p} has no recipe"))
            .clone()
    };
    assert!(matches!(find("README"), (_, Recipe::Copy { .. }, Some(f)) if f == "README"));
    assert!(matches!(find("run.sh"), (_, Recipe::Copy { .. }, Some(f)) if f == "run.sh"));
    assert!(
        matches!(find("share/data-2.bin"), (_, Recipe::Copy { .. }, Some(f)) if f == "share/data-1.bin")
    );
    assert!(matches!(find("bin/app"), (_, Recipe::Patch { .. }, Some(f)) if f == "bin/app"));
    assert!(
        matches!(find("plugins/v2/plugin.so"), (_, Recipe::Patch { .. }, Some(f)) if f == "plugins/v1/plugin.so")
    );
    assert!(matches!(find("added.cfg"), (_, Recipe::Full { .. }, None)));
    assert_eq!(got.len(), 6);

    let opened = TreePatch::open(
        &trees.path("tree.dpatch"),
        &Limits::default(),
        None,
        &mut |_| {},
    )
    .unwrap();
    let new = &opened.index().new;
    let entry = |p: &str| new.get(&TreePath::new(p).unwrap()).cloned();
    assert!(
        entry("var/empty").is_some(),
        "the empty directory is listed"
    );
    #[cfg(unix)]
    {
        assert_eq!(entry("run.sh").unwrap().mode, 0o755);
        assert_eq!(entry("app").unwrap().to_string(), "app -> bin/app");
    }
    let patch_len = std::fs::metadata(trees.path("tree.dpatch")).unwrap().len();
    assert!(
        patch_len < (64 + 24) << 10 >> 2,
        "{patch_len} bytes: deltas and copies should be far smaller than the tree"
    );
}

#[test]
fn diff_json_reports_counts_and_bytes_per_recipe() {
    let trees = Trees::new();
    let out = trees.make("tree.dpatch", &["--json"]);
    let v = stdout_json(&out);
    let patch_len = std::fs::metadata(trees.path("tree.dpatch")).unwrap().len();
    assert_eq!(v["ok"], true);
    assert_eq!(v["method"], "tree");
    assert_eq!(v["patch_size"], patch_len);
    let s = &v["stats"];
    assert_eq!(s["unchanged"]["files"], 2);
    assert_eq!(s["unchanged"]["bytes"], 7 + 23);
    assert_eq!(s["renamed_or_copied"]["files"], 1);
    assert_eq!(s["renamed_or_copied"]["bytes"], 8 << 10);
    let patched = s["bsdiff"]["files"].as_u64().unwrap() + s["zstd"]["files"].as_u64().unwrap();
    assert_eq!(patched, 2);
    assert_eq!(s["full"]["files"], 1);
    assert_eq!(s["full"]["bytes"], 11);
    assert_eq!(s["deleted"]["files"], 3);
    assert_eq!(s["new_tree"]["files"], 6);
    let new_size = s["new_tree"]["bytes"].as_u64().unwrap();
    assert_eq!(v["new_size"], new_size);
    let share = v["share_of_new"].as_f64().unwrap();
    assert!(
        (share - patch_len as f64 / new_size as f64).abs() < 1e-9,
        "{share}"
    );
    let blobs: u64 = ["bsdiff", "zstd", "full"]
        .iter()
        .map(|m| s[m]["blob_bytes"].as_u64().unwrap())
        .sum();
    assert!(blobs < patch_len);
    assert_eq!(v["signed_by"], Value::Null);
}

#[test]
fn the_same_bytes_whatever_the_threads() {
    let trees = Trees::new();
    trees.make("one.dpatch", &["--threads", "1"]);
    trees.make("four.dpatch", &["--threads", "4"]);
    assert!(
        std::fs::read(trees.path("one.dpatch")).unwrap()
            == std::fs::read(trees.path("four.dpatch")).unwrap(),
        "--threads changed the patch"
    );
}

#[test]
fn a_signed_tree_patch_is_trusted_by_its_key_and_inspect_says_so() {
    let trees = Trees::new();
    let status = deltapack()
        .arg("keygen")
        .arg("--secret-key")
        .arg(trees.path("release.key"))
        .arg("--public-key")
        .arg(trees.path("release.pub"))
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status.stderr));
    let out = trees.make(
        "tree.dpatch",
        &[
            "--json",
            "--secret-key",
            trees.path("release.key").to_str().unwrap(),
        ],
    );
    let v = stdout_json(&out);
    let public = deltaapply::PublicKey::from_file(&trees.path("release.pub")).unwrap();
    assert_eq!(v["signed_by"], public.id().to_string());
    let trusted = deltaapply::TrustedKeys::new(vec![public], 1).unwrap();
    let opened = TreePatch::open(
        &trees.path("tree.dpatch"),
        &Limits::default(),
        Some(&trusted),
        &mut |_| {},
    )
    .unwrap();
    assert!(matches!(opened.origin(), Origin::Trusted { .. }));

    let out = deltapack()
        .arg("inspect")
        .arg(trees.path("tree.dpatch"))
        .arg("--key")
        .arg(trees.path("release.pub"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("trusted: signed by key"), "{stdout}");

    // Another key refuses it, as for any patch (exit 6).
    let other = deltapack()
        .arg("keygen")
        .arg("--secret-key")
        .arg(trees.path("other.key"))
        .arg("--public-key")
        .arg(trees.path("other.pub"))
        .output()
        .unwrap();
    assert!(other.status.success());
    let out = deltapack()
        .arg("inspect")
        .arg(trees.path("tree.dpatch"))
        .arg("--key")
        .arg(trees.path("other.pub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
}

#[test]
fn inspect_summarises_the_index() {
    let trees = Trees::new();
    trees.make("tree.dpatch", &[]);
    let out = deltapack()
        .arg("inspect")
        .arg(trees.path("tree.dpatch"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("method         tree"), "{stdout}");
    assert!(
        stdout.contains("recipes        2 unchanged, 1 renamed or copied, 2 patched, 1 full"),
        "{stdout}"
    );
    assert!(stdout.contains("blobs          3 ("), "{stdout}");

    let out = deltapack()
        .arg("inspect")
        .arg(trees.path("tree.dpatch"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    assert_eq!(v["method"], "tree");
    let t = &v["tree"];
    assert_eq!(t["recipes"]["unchanged"], 2);
    assert_eq!(t["recipes"]["renamed_or_copied"], 1);
    assert_eq!(t["recipes"]["patch"], 2);
    assert_eq!(t["recipes"]["full"], 1);
    assert_eq!(t["blobs"]["count"], 3);
    assert_eq!(t["new"]["files"], 6);
    assert_eq!(t["old"]["files"], 6);
    let by_method: u64 = ["bsdiff", "zstd", "full"]
        .iter()
        .map(|m| t["blobs"][m].as_u64().unwrap())
        .sum();
    assert_eq!(by_method, 3);
    // A file patch still inspects as before.
    let (old, new) = release_pair(16 << 10, 1);
    trees.write("a.bin", &old);
    trees.write("b.bin", &new);
    trees
        .diff("a.bin", "b.bin", "file.dpatch", &[])
        .assert()
        .success();
    let out = deltapack()
        .arg("inspect")
        .arg(trees.path("file.dpatch"))
        .arg("--json")
        .output()
        .unwrap();
    let v = stdout_json(&out);
    assert!(v.get("tree").is_none());
    assert_ne!(v["method"], "tree");
}

#[test]
fn one_directory_and_one_file_is_a_usage_error() {
    let trees = Trees::new();
    for (old, new) in [("old", "new/README"), ("old/README", "new")] {
        let out = trees.diff(old, new, "x.dpatch", &[]).output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code::USAGE), "{stderr}");
        assert!(stderr.contains("is a directory but"), "{stderr}");
        assert!(stderr.contains("README"), "{stderr}");
        assert!(!trees.path("x.dpatch").exists());
    }
}

#[test]
fn a_method_other_than_auto_is_refused_for_trees() {
    let trees = Trees::new();
    let out = trees
        .diff("old", "new", "x.dpatch", &["--method", "bsdiff", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(code::USAGE));
    let v = stdout_json(&out);
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("--method"), "{v}");
    assert!(!trees.path("x.dpatch").exists());
    trees.make("auto.dpatch", &["--method", "auto"]);
}

#[cfg(unix)]
#[test]
fn a_tree_that_cannot_be_shipped_is_refused_naming_the_entry() {
    let trees = Trees::new();
    std::os::unix::fs::symlink("/etc/passwd", trees.path("new/passwd")).unwrap();
    let out = trees.diff("old", "new", "x.dpatch", &[]).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code::FAILURE), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot make a tree patch"),
        "{stderr}"
    );
    assert!(
        stderr.contains("passwd") && stderr.contains("absolute"),
        "{stderr}"
    );
    assert!(!trees.path("x.dpatch").exists());

    let trees = Trees::new();
    let socket = trees.path("new/control.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let out = trees.diff("old", "new", "x.dpatch", &[]).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code::FAILURE), "{stderr}");
    assert!(
        stderr.contains(&socket.display().to_string()) && stderr.contains("socket"),
        "{stderr}"
    );
}

#[test]
fn a_file_over_the_memory_budget_exits_5() {
    let trees = Trees::new();
    let out = trees
        .diff("old", "new", "x.dpatch", &["--max-apply-memory", "1MiB"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code::LIMIT), "{stderr}");
    assert!(stderr.contains("--max-apply-memory"), "{stderr}");
    assert!(!trees.path("x.dpatch").exists());
}

#[test]
fn an_identical_tree_ships_no_blob() {
    let trees = Trees::new();
    let out = trees
        .diff("old", "old", "same.dpatch", &["--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    for m in ["bsdiff", "zstd", "full"] {
        assert_eq!(v["stats"][m]["files"], 0, "{v}");
    }
    assert!(
        recipes(&trees.path("same.dpatch"))
            .iter()
            .all(|(path, r, from)| matches!(r, Recipe::Copy { .. }) && from.as_ref() == Some(path))
    );
    let opened = TreePatch::open(
        &trees.path("same.dpatch"),
        &Limits::default(),
        None,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(
        std::fs::read(trees.path("same.dpatch")).unwrap()[12],
        4,
        "method byte"
    );
    assert_eq!(opened.index().blobs.len(), 0);
}
