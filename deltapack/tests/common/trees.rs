//! Release trees for the tree tests: a deterministic generator (nested directories,
//! text and binary files of many sizes, an empty directory, symbolic links to files and
//! directories inside the tree, executable and read-only files), copying a tree as it
//! is, and a snapshot of everything a tree patch carries (kinds, contents, modes, link
//! targets).

use std::collections::BTreeMap;
use std::path::Path;

use super::{Kind, Rng, fill, release_pair};

/// What one entry of a tree on disk is, as a tree patch carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file: permission bits and content.
    File(u32, Vec<u8>),
    /// A directory and its permission bits.
    Dir(u32),
    /// A symbolic link and its target.
    Link(String),
}

/// Every entry below `root` (not following links), by relative path.
pub fn snapshot_tree(root: &Path) -> BTreeMap<String, Node> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o777;
            let node = if meta.file_type().is_symlink() {
                Node::Link(
                    std::fs::read_link(&path)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                )
            } else if meta.is_dir() {
                walk(root, &path, out);
                Node::Dir(mode)
            } else {
                Node::File(mode, std::fs::read(&path).unwrap())
            };
            out.insert(rel, node);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Asserts two snapshots are equal, naming the first differences.
pub fn assert_same_tree(got: &BTreeMap<String, Node>, want: &BTreeMap<String, Node>, what: &str) {
    if got == want {
        return;
    }
    let mut diffs = Vec::new();
    for (p, w) in want {
        match got.get(p) {
            None => diffs.push(format!("{p}: missing")),
            Some(g) if g != w => diffs.push(format!("{p}: got {}, want {}", short(g), short(w))),
            Some(_) => {}
        }
    }
    for p in got.keys().filter(|p| !want.contains_key(*p)) {
        diffs.push(format!("{p}: not expected ({})", short(&got[p])));
    }
    panic!("{what}: trees differ:\n  {}", diffs.join("\n  "));
}

fn short(n: &Node) -> String {
    match n {
        Node::File(mode, bytes) => format!(
            "file {mode:o}, {} bytes, sha256 {}",
            bytes.len(),
            deltaapply::Sha256Digest::of(bytes)
        ),
        Node::Dir(mode) => format!("dir {mode:o}"),
        Node::Link(t) => format!("link -> {t}"),
    }
}

/// Writes `bytes` at `root/rel`, creating parents.
pub fn put(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Sets the permission bits of `root/rel`.
pub fn chmod(root: &Path, rel: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Makes `root/rel` a symbolic link to `target`.
pub fn link(root: &Path, rel: &str, target: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, path).unwrap();
}

/// Removes `root/rel`, whatever it is.
pub fn remove(root: &Path, rel: &str) {
    let path = root.join(rel);
    let meta = std::fs::symlink_metadata(&path).unwrap();
    if meta.is_dir() {
        std::fs::remove_dir_all(path).unwrap();
    } else {
        std::fs::remove_file(path).unwrap();
    }
}

/// Copies the tree `from` to `to` (which must not exist): files with their modes,
/// links as links, directories with their modes.
pub fn copy_tree(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    let snap = snapshot_tree(from);
    for (rel, node) in &snap {
        let path = to.join(rel);
        match node {
            Node::Dir(_) => std::fs::create_dir_all(&path).unwrap(),
            Node::File(mode, bytes) => {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, bytes).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
            }
            Node::Link(target) => {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(target, &path).unwrap();
            }
        }
    }
    // Directory modes last (deepest first), so a read-only one does not stop the copy.
    for (rel, node) in snap.iter().rev() {
        if let Node::Dir(mode) = node {
            std::fs::set_permissions(to.join(rel), std::fs::Permissions::from_mode(*mode)).unwrap();
        }
    }
}

/// Text of `lines` lines, varying with `seed`.
pub fn text(lines: usize, seed: u64) -> Vec<u8> {
    let words = [
        "delta", "release", "tree", "patch", "apply", "file", "mode", "link", "copy", "zstd",
        "bsdiff", "manifest",
    ];
    let mut rng = Rng::new(seed);
    let mut out = String::new();
    for i in 0..lines {
        out.push_str(&format!("{i:05}:"));
        for _ in 0..1 + rng.below(10) {
            out.push(' ');
            out.push_str(words[rng.below(words.len())]);
        }
        out.push('\n');
    }
    out.into_bytes()
}

/// Writes a release tree into `root` (which must not exist), deterministic in `seed`:
///
/// - `bin/app` (an executable of 160 KiB, machine-code-like), `bin/tool` (8 KiB,
///   executable), `run.sh` (executable script)
/// - `lib/plugins/{a,b,c}.so` (4 to 40 KiB), `lib/deep/er/still/lib.so`
/// - `share/doc/{README,CHANGES}` (text), `share/data/blob-{0..5}` (random, 0 bytes to
///   20 KiB, including a 1-byte file)
/// - `conf/main.cfg`, `conf/locked.cfg` (read-only, 0o444), `conf/secret.cfg` (0o600)
/// - `var/empty/` (an empty directory)
/// - links: `app -> bin/app` (a file), `docs -> share/doc` (a directory),
///   `lib/deep/er/cfg -> ../../../conf/main.cfg` (up and down again)
pub fn gen_tree(root: &Path, seed: u64) {
    std::fs::create_dir_all(root).unwrap();
    let (app, _) = release_pair(160 << 10, seed);
    put(root, "bin/app", &app);
    chmod(root, "bin/app", 0o755);
    put(root, "bin/tool", &fill(Kind::Code32, 8 << 10, seed + 1));
    chmod(root, "bin/tool", 0o755);
    put(
        root,
        "run.sh",
        b"#!/bin/sh\nexec \"$(dirname \"$0\")/bin/app\" \"$@\"\n",
    );
    chmod(root, "run.sh", 0o755);
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let len = [4 << 10, 17 << 10, 40 << 10][i];
        put(
            root,
            &format!("lib/plugins/{name}.so"),
            &fill(Kind::Code64, len, seed * 10 + i as u64),
        );
    }
    put(
        root,
        "lib/deep/er/still/lib.so",
        &fill(Kind::Code64, 12 << 10, seed + 7),
    );
    put(root, "share/doc/README", &text(40, seed + 2));
    put(root, "share/doc/CHANGES", &text(300, seed + 3));
    for (i, len) in [0usize, 1, 100, 4096, 9000, 20 << 10].iter().enumerate() {
        put(
            root,
            &format!("share/data/blob-{i}"),
            &fill(Kind::Random, *len, seed * 100 + i as u64),
        );
    }
    put(root, "conf/main.cfg", b"level = 3\nname = \"app\"\n");
    put(root, "conf/locked.cfg", b"locked = true\n");
    chmod(root, "conf/locked.cfg", 0o444);
    put(root, "conf/secret.cfg", b"token = none\n");
    chmod(root, "conf/secret.cfg", 0o600);
    std::fs::create_dir_all(root.join("var/empty")).unwrap();
    link(root, "app", "bin/app");
    link(root, "docs", "share/doc");
    link(root, "lib/deep/er/cfg", "../../../conf/main.cfg");
}
