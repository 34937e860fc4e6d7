//! `deltapack build` and `deltapack verify` with tree artifacts, through the real
//! binary: three releases of a directory (full tree images, a tree patch from each
//! kept release, per-file full containers for the newest release only), verify
//! passing and naming each corrupted file, byte-identical builds, and a release with a
//! file artifact beside a tree artifact.

#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use common::trees::{
    assert_same_tree, chmod, copy_tree, gen_tree, link, put, remove, snapshot_tree,
};
use common::{Dir, Kind, deltaapply_bin, fill, release_pair, snapshot};
use deltaapply::manifest::{ArtifactKind, MANIFEST_FILE, Manifest, SIGNATURE_FILE, TreeEntryKind};
use deltaapply::{Method, PatchKind, Sha256Digest};
use deltapack::keys::SecretKey;
use serde_json::Value;

const CREATED: [&str; 3] = [
    "2026-11-01T10:00:00Z",
    "2026-11-02T10:00:00Z",
    "2026-11-03T10:00:00Z",
];

/// Before every manifest expires.
const CHECK_AT: &str = "2026-12-01T00:00:00Z";

fn deltapack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_deltapack"))
}

/// A key, three versions of a release tree, and room for publish directories.
struct Setup {
    dir: Dir,
    key: SecretKey,
}

impl Setup {
    fn new(seed: u8) -> Self {
        let dir = Dir::new();
        let key = SecretKey::from_seed(&[seed; 32]);
        key.save(&dir.join("release.key"), false).unwrap();
        let s = Setup { dir, key };
        let v0 = s.tree(0);
        gen_tree(&v0, seed.into());
        let v1 = s.tree(1);
        copy_tree(&v0, &v1);
        edit(&v1, "bin/app", 1);
        put(&v1, "share/doc/NEWS", b"1.1: faster\n");
        remove(&v1, "share/data/blob-3");
        chmod(&v1, "bin/tool", 0o700);
        let v2 = s.tree(2);
        copy_tree(&v1, &v2);
        edit(&v2, "bin/app", 2);
        std::fs::rename(v2.join("lib/plugins/b.so"), v2.join("lib/plugins/b2.so")).unwrap();
        put(&v2, "lib/plugins/d.so", &fill(Kind::Code64, 6 << 10, 9));
        remove(&v2, "app");
        link(&v2, "app", "bin/tool");
        // The same content at two paths: one container serves both.
        put(&v2, "share/doc/NEWS", b"1.2: smaller\n");
        put(&v2, "share/doc/NEWS.old", b"1.2: smaller\n");
        s
    }

    fn tree(&self, i: usize) -> PathBuf {
        self.dir.join(&format!("tree-{i}"))
    }

    fn public(&self) -> String {
        self.key.public_key().to_string()
    }

    /// `deltapack build` of version `1.<i>` with `artifacts` (NAME=PATH) into `out`.
    fn build(&self, out: &Path, i: usize, artifacts: &[String]) -> Value {
        let mut cmd = deltapack();
        cmd.arg("build")
            .arg("--out")
            .arg(out)
            .arg("--secret-key")
            .arg(self.dir.join("release.key"))
            .args(["--product", "tree-app", "--version", &format!("1.{i}")])
            .args(["--created", CREATED[i], "--json"]);
        for a in artifacts {
            cmd.arg("--artifact").arg(a);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "build 1.{i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Builds 1.0, 1.1 and 1.2 of the tree (as artifact `app`) into `out`.
    fn build_all(&self, out: &Path) -> Vec<Value> {
        (0..3)
            .map(|i| self.build(out, i, &[format!("app={}", self.tree(i).display())]))
            .collect()
    }

    fn verify(&self, out: &Path) -> (i32, Value) {
        let output = deltapack()
            .arg("verify")
            .arg(out)
            .args(["--key", &self.public(), "--at", CHECK_AT, "--json"])
            .output()
            .unwrap();
        let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "verify printed no JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
        (output.status.code().unwrap(), json)
    }
}

/// A small edit in the middle of a big file.
fn edit(root: &Path, rel: &str, seed: u8) {
    let path = root.join(rel);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes.splice(mid..mid + 10, [seed; 40]);
    std::fs::write(&path, bytes).unwrap();
}

fn manifest(out: &Path) -> Manifest {
    Manifest::parse(&std::fs::read(out.join(MANIFEST_FILE)).unwrap()).unwrap()
}

fn problems(json: &Value) -> Vec<(String, String)> {
    json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["file"].as_str().unwrap().to_string(),
                p["problem"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn flip_middle(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn three_tree_releases_build_verify_and_apply() {
    let s = Setup::new(11);
    let out = s.dir.join("publish");
    let reports = s.build_all(&out);
    let m = manifest(&out);
    assert_eq!((m.version.as_str(), m.sequence), ("1.2", 3));
    let a = &m.artifacts[0];
    assert_eq!(a.kind, ArtifactKind::Tree);
    assert_eq!(a.full.path.as_str().split('/').next(), Some("full"));
    let bases: Vec<&str> = a.patches.iter().map(|p| p.base_version.as_str()).collect();
    assert_eq!(bases, ["1.1", "1.0"]);
    assert!(a.patches.iter().all(|p| p.method == PatchKind::Tree));
    // The 1.0 -> 1.1 tree patch stays listed for chains.
    let kept: Vec<&str> = m.previous[0].artifacts[0]
        .patches
        .iter()
        .map(|p| p.base_version.as_str())
        .collect();
    assert_eq!(kept, ["1.0"]);

    // Per-file containers for the newest release's files only.
    for e in &a.entries {
        assert_eq!(
            e.full.is_some(),
            e.kind == TreeEntryKind::File,
            "{}",
            e.path
        );
        if let Some(f) = &e.full {
            assert!(f.path.as_str().starts_with("files/"), "{}", f.path.as_str());
        }
    }
    for r in &m.previous {
        assert!(r.artifacts[0].entries.iter().all(|e| e.full.is_none()));
        assert!(!r.artifacts[0].entries.is_empty());
    }
    let news = |p: &str| {
        a.entries
            .iter()
            .find(|e| e.path == p)
            .and_then(|e| e.full.clone())
            .unwrap()
    };
    assert_eq!(news("share/doc/NEWS"), news("share/doc/NEWS.old"));

    // The summary counts every referenced file once: full images, the newest
    // release's patches, the per-file containers, the manifest and its signature.
    let mut others = std::collections::BTreeMap::new();
    for p in &a.patches {
        others.insert(p.path.to_string(), p.size);
    }
    for f in a.entries.iter().filter_map(|e| e.full.as_ref()) {
        others.insert(f.path.to_string(), f.size);
    }
    let full_only = reports[2]["full_only_bytes"].as_u64().unwrap();
    let signed = std::fs::metadata(out.join(MANIFEST_FILE)).unwrap().len()
        + std::fs::metadata(out.join(SIGNATURE_FILE)).unwrap().len();
    assert_eq!(
        reports[2]["publish_bytes"].as_u64().unwrap(),
        full_only + others.values().sum::<u64>() + signed,
        "{}",
        reports[2]
    );

    let (code, json) = s.verify(&out);
    assert_eq!(code, 0, "{json}");
    assert!(problems(&json).is_empty(), "{json}");
    assert_eq!(json["full_images_checked"], 3, "{json}");
    assert_eq!(json["patches_applied"], 3, "{json}");
    let containers: std::collections::BTreeSet<&str> = a
        .entries
        .iter()
        .filter_map(|e| e.full.as_ref().map(|f| f.path.as_str()))
        .collect();
    assert_eq!(json["file_containers_checked"], containers.len(), "{json}");
    // Older releases' containers are left for clients of older manifests, and are
    // listed as such; those this manifest references are not.
    let unreferenced: Vec<&str> = json["unreferenced"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        unreferenced.iter().any(|n| n.starts_with("files/")),
        "{json}"
    );
    for c in &containers {
        assert!(!unreferenced.contains(c), "{c} is referenced: {json}");
    }
    let text = deltapack()
        .arg("verify")
        .arg(&out)
        .args(["--key", &s.public(), "--at", CHECK_AT])
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("OK: no problems found"), "{text}");
    assert!(text.contains("per-file full containers"), "{text}");

    // Each tree patch turns its base into 1.2, through the real applier.
    let want = snapshot_tree(&s.tree(2));
    for p in &a.patches {
        let base = if p.base_version == "1.1" { 1 } else { 0 };
        let made = s.dir.join(&format!("made-from-{base}"));
        let out = std::process::Command::new(deltaapply_bin())
            .arg("apply")
            .arg(s.tree(base))
            .arg(p.path.under(&out))
            .arg("-o")
            .arg(&made)
            .args(["--key", &s.public()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_same_tree(&snapshot_tree(&made), &want, &p.base_version);
    }
}

#[test]
fn verify_names_each_corrupted_file() {
    let s = Setup::new(12);
    let clean = s.dir.join("publish");
    s.build_all(&clean);
    let m = manifest(&clean);
    let a = &m.artifacts[0];
    let container = a
        .entries
        .iter()
        .find(|e| e.path == "bin/app")
        .and_then(|e| e.full.clone())
        .unwrap()
        .path
        .to_string();
    let cases = [
        ("a per-file container", container),
        ("a tree patch", a.patches[0].path.to_string()),
        ("the newest full tree image", a.full.path.to_string()),
        (
            "an older full tree image",
            m.previous[1].artifacts[0].full.path.to_string(),
        ),
    ];
    for (i, (what, file)) in cases.iter().enumerate() {
        let out = s.dir.join(&format!("corrupt-{i}"));
        copy_tree(&clean, &out);
        flip_middle(&out.join(file));
        let (code, json) = s.verify(&out);
        assert_eq!(code, 1, "{what}: {json}");
        let found = problems(&json);
        assert!(
            found.iter().any(|(f, _)| f == file),
            "{what}: {file} not named in {found:?}"
        );
        assert!(
            found.iter().all(|(f, _)| f == file),
            "{what}: only {file} is wrong: {found:?}"
        );
    }

    // A container replaced by another file's (same size and hash as the manifest
    // says cannot be faked without re-signing; a missing one is named).
    let out = s.dir.join("missing");
    copy_tree(&clean, &out);
    let file = a.entries.iter().find_map(|e| e.full.clone()).unwrap().path;
    std::fs::remove_file(file.under(&out)).unwrap();
    let (code, json) = s.verify(&out);
    assert_eq!(code, 1, "{json}");
    assert!(
        problems(&json)
            .iter()
            .any(|(f, p)| f == file.as_str() && p.contains("cannot read")),
        "{json}"
    );

    // A leftover temporary file in files/ is a problem too.
    let out = s.dir.join("leftover");
    copy_tree(&clean, &out);
    std::fs::write(out.join("files/.tmp-123"), b"half").unwrap();
    let (code, json) = s.verify(&out);
    assert_eq!(code, 1, "{json}");
    assert!(
        problems(&json).iter().any(|(f, _)| f == "files/.tmp-123"),
        "{json}"
    );
}

#[test]
fn tree_builds_are_deterministic() {
    let s = Setup::new(13);
    let (a, b) = (s.dir.join("a"), s.dir.join("b"));
    s.build_all(&a);
    s.build_all(&b);
    let (snap_a, snap_b) = (snapshot(&a), snapshot(&b));
    assert_eq!(
        snap_a.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        snap_b.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for ((name, bytes_a), (_, bytes_b)) in snap_a.iter().zip(&snap_b) {
        assert!(
            bytes_a == bytes_b,
            "{name} differs between two identical builds"
        );
    }
}

#[test]
fn a_release_with_a_file_and_a_tree() {
    let s = Setup::new(14);
    let (bin0, bin1) = release_pair(48 << 10, 3);
    let files = [
        s.dir.write("tool-0.bin", &bin0),
        s.dir.write("tool-1.bin", &bin1),
    ];
    let out = s.dir.join("publish");
    for (i, file) in files.iter().enumerate() {
        let json = s.build(
            &out,
            i,
            &[
                format!("tool.bin={}", file.display()),
                format!("app={}", s.tree(i).display()),
            ],
        );
        assert_eq!(json["ok"], true, "{json}");
    }
    let m = manifest(&out);
    let (tool, app) = (m.artifact("tool.bin").unwrap(), m.artifact("app").unwrap());
    assert_eq!(tool.kind, ArtifactKind::File);
    assert!(tool.entries.is_empty());
    assert_eq!(tool.sha256, Sha256Digest::of(&bin1));
    assert!(matches!(
        tool.patches[0].method,
        PatchKind::File(Method::Bsdiff | Method::ZstdRef)
    ));
    assert_eq!(app.kind, ArtifactKind::Tree);
    assert_eq!(app.patches[0].method, PatchKind::Tree);
    let (code, json) = s.verify(&out);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["full_images_checked"], 4, "{json}");
    assert_eq!(json["patches_applied"], 2, "{json}");

    // Both patches apply with the real applier.
    let key = ["--key".to_string(), s.public()];
    let made = s.dir.join("tool-made.bin");
    let o = std::process::Command::new(deltaapply_bin())
        .arg("apply")
        .arg(&files[0])
        .arg(tool.patches[0].path.under(&out))
        .arg("-o")
        .arg(&made)
        .args(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&made).unwrap(), bin1);
    let installed = s.dir.join("installed");
    copy_tree(&s.tree(0), &installed);
    let o = std::process::Command::new(deltaapply_bin())
        .arg("apply")
        .arg("--in-place")
        .arg(&installed)
        .arg(app.patches[0].path.under(&out))
        .args(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_tree(
        &snapshot_tree(&installed),
        &snapshot_tree(&s.tree(1)),
        "in place",
    );
}

/// Rewrites the manifest of `out` with `change` and signs it again with the build key,
/// so only verify's checks of the files themselves can tell.
fn resign(s: &Setup, out: &Path, change: impl FnOnce(&mut Manifest)) {
    let mut m = manifest(out);
    change(&mut m);
    let bytes = deltapack::build::render(&m);
    let sig = deltaapply::signature::encode_signature_file(&[s.key.sign_manifest(&bytes)]);
    std::fs::write(out.join(MANIFEST_FILE), &bytes).unwrap();
    std::fs::write(out.join(SIGNATURE_FILE), sig).unwrap();
}

#[test]
fn verify_decodes_what_the_signed_manifest_points_at() {
    let s = Setup::new(15);
    let clean = s.dir.join("publish");
    s.build_all(&clean);

    // Two files' containers swapped: each is well signed and hashes as listed, but
    // makes the other file.
    let out = s.dir.join("swapped");
    copy_tree(&clean, &out);
    let mut swapped = Vec::new();
    resign(&s, &out, |m| {
        let entries = &mut m.artifacts[0].entries;
        let i = entries.iter().position(|e| e.path == "bin/tool").unwrap();
        let j = entries.iter().position(|e| e.path == "run.sh").unwrap();
        let (a, b) = (entries[i].full.clone(), entries[j].full.clone());
        swapped = vec![
            a.as_ref().unwrap().path.to_string(),
            b.as_ref().unwrap().path.to_string(),
        ];
        entries[i].full = b;
        entries[j].full = a;
    });
    let (code, json) = s.verify(&out);
    assert_eq!(code, 1, "{json}");
    let found = problems(&json);
    assert_eq!(found.len(), 2, "{found:?}");
    for f in &swapped {
        assert!(
            found
                .iter()
                .any(|(file, p)| file == f && p.contains("but the manifest says")),
            "{f}: {found:?}"
        );
    }

    // The tree's full image pointing at a tree patch (which needs a base), and a
    // per-file container pointing at the full tree image (method tree).
    let out = s.dir.join("wrong-kinds");
    copy_tree(&clean, &out);
    let (mut patch_file, mut tree_file) = (String::new(), String::new());
    resign(&s, &out, |m| {
        let a = &mut m.artifacts[0];
        let p = a.patches[0].clone();
        patch_file = p.path.to_string();
        tree_file = a.full.path.to_string();
        let entry = a.entries.iter_mut().find(|e| e.path == "bin/app").unwrap();
        entry.full = Some(deltaapply::manifest::FileRef {
            path: a.full.path.clone(),
            size: a.full.size,
            sha256: a.full.sha256,
        });
        a.full.path = p.path;
        a.full.size = p.size;
        a.full.sha256 = p.sha256;
        a.full.apply_memory = p.apply_memory;
    });
    let (code, json) = s.verify(&out);
    assert_eq!(code, 1, "{json}");
    let found = problems(&json);
    assert!(
        found
            .iter()
            .any(|(f, p)| *f == patch_file && p.contains("instead of the empty tree")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(f, p)| *f == tree_file && p.contains("must use the full method, not tree")),
        "{found:?}"
    );

    // A tree's full image that is a single file's container (method full).
    let out = s.dir.join("file-as-tree");
    copy_tree(&clean, &out);
    let mut container = String::new();
    resign(&s, &out, |m| {
        let a = &mut m.artifacts[0];
        let f = a.entries.iter().find_map(|e| e.full.clone()).unwrap();
        container = f.path.to_string();
        a.full.path = f.path;
        a.full.size = f.size;
        a.full.sha256 = f.sha256;
    });
    let (code, json) = s.verify(&out);
    assert_eq!(code, 1, "{json}");
    assert!(
        problems(&json)
            .iter()
            .any(|(f, p)| *f == container
                && p.contains("must be a tree patch (method tree), not full")),
        "{json}"
    );
}

/// `deltaapply update --from OUT --artifact NAME --target PATH --key PUB --json`.
fn update(s: &Setup, out: &Path, artifact: &str, target: &Path) -> Value {
    let o = std::process::Command::new(deltaapply_bin())
        .env_remove("DELTAAPPLY_KEY")
        .arg("update")
        .arg("--from")
        .arg(out)
        .args(["--artifact", artifact, "--key", &s.public(), "--json"])
        .arg("--target")
        .arg(target)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "update {artifact}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn deltaapply_update_brings_both_artifacts_of_a_mixed_release() {
    let s = Setup::new(16);
    let (bin0, bin1) = release_pair(48 << 10, 4);
    let files = [
        s.dir.write("tool-0.bin", &bin0),
        s.dir.write("tool-1.bin", &bin1),
    ];
    let out = s.dir.join("publish");
    for (i, file) in files.iter().enumerate() {
        s.build(
            &out,
            i,
            &[
                format!("tool.bin={}", file.display()),
                format!("app={}", s.tree(i).display()),
            ],
        );
    }
    let want = snapshot_tree(&s.tree(1));
    let devices = s.dir.join("devices");

    // The file artifact, installed at 1.0.
    let tool = devices.join("a/tool.bin");
    put(&devices, "a/tool.bin", &bin0);
    update(&s, &out, "tool.bin", &tool);
    assert_eq!(std::fs::read(&tool).unwrap(), bin1);

    // The tree, installed at 1.0 with a file of the user's: the tree patch.
    let tree = devices.join("b/app");
    copy_tree(&s.tree(0), &tree);
    put(&tree, "user-notes.txt", b"mine");
    let json = update(&s, &out, "app", &tree);
    assert_eq!(json["result"]["route"], "tree-patch", "{json}");
    let mut got = snapshot_tree(&tree);
    assert!(got.remove("user-notes.txt").is_some(), "{json}");
    assert_same_tree(&got, &want, "tree updated from 1.0");

    // A tree with a damaged file: repaired (per-file containers or the full image).
    let tree = devices.join("c/app");
    copy_tree(&s.tree(0), &tree);
    put(&tree, "lib/plugins/c.so", b"damaged");
    let json = update(&s, &out, "app", &tree);
    // The tree patch, with the damaged file fetched whole from its files/ container.
    assert_eq!(json["result"]["route"], "tree-patch", "{json}");
    let fetched = &json["result"]["files"];
    assert_eq!(fetched[0]["path"], "lib/plugins/c.so", "{json}");
    assert!(
        fetched[0]["publish_path"]
            .as_str()
            .is_some_and(|p| p.starts_with("files/")),
        "{json}"
    );
    assert_same_tree(&snapshot_tree(&tree), &want, &format!("repaired: {json}"));

    // Nothing installed (the parent directory exists): the full tree image.
    let tree = devices.join("d/app");
    std::fs::create_dir_all(devices.join("d")).unwrap();
    let json = update(&s, &out, "app", &tree);
    assert_same_tree(&snapshot_tree(&tree), &want, &format!("fresh: {json}"));
}
