//! Tree patches applied to directories: round trips out of place and in place, a full
//! tree image, a wrong base, substitutes, every crash point of an in-place update
//! (through the real binary, with `DELTAAPPLY_CRASH_AT`), hostile indexes and hostile
//! trees on disk. Unix only: the trees hold symbolic links and permission bits.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use deltaapply::container::BASE_APPLY_MEMORY;
use deltaapply::tree::journal::{Journal, Op};
use deltaapply::tree::{
    Entry, EntryKind, Listing, Recipe, TreeApply, TreeApplyError, TreeIndex, TreePatch, TreePath,
    apply_tree,
};
use deltaapply::{FileId, Header, Limits, Method, Sha256Digest, TreeHeader};
use deltaapply_cli::exit;

/// One entry of a test tree.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Node {
    File(Vec<u8>, u32),
    Dir(u32),
    Link(String),
}

type Spec = BTreeMap<String, Node>;

fn file(content: impl AsRef<[u8]>, mode: u32) -> Node {
    Node::File(content.as_ref().to_vec(), mode)
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tree-apply-")
        .tempdir()
        .unwrap()
}

fn write_tree(root: &Path, spec: &Spec) {
    fs::create_dir_all(root).unwrap();
    for (path, node) in spec {
        let at = root.join(path);
        match node {
            Node::Dir(_) => fs::create_dir(&at).unwrap(),
            Node::File(content, mode) => {
                fs::write(&at, content).unwrap();
                fs::set_permissions(&at, fs::Permissions::from_mode(*mode)).unwrap();
            }
            Node::Link(target) => std::os::unix::fs::symlink(target, &at).unwrap(),
        }
    }
    for (path, node) in spec.iter().rev() {
        if let Node::Dir(mode) = node {
            fs::set_permissions(root.join(path), fs::Permissions::from_mode(*mode)).unwrap();
        }
    }
}

/// Everything under `root`: kinds, contents, modes, link targets.
fn snapshot(root: &Path) -> Spec {
    fn walk(root: &Path, dir: &Path, out: &mut Spec) {
        for item in fs::read_dir(dir).unwrap() {
            let item = item.unwrap();
            let path = item.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let m = fs::symlink_metadata(&path).unwrap();
            let mode = m.permissions().mode() & 0o777;
            if m.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(rel, Node::Link(target.to_str().unwrap().into()));
            } else if m.is_dir() {
                out.insert(rel, Node::Dir(mode));
                walk(root, &path, out);
            } else {
                out.insert(rel, Node::File(fs::read(&path).unwrap(), mode));
            }
        }
    }
    let mut out = Spec::new();
    walk(root, root, &mut out);
    out
}

fn tree_path(s: &str) -> TreePath {
    TreePath::new(s).unwrap()
}

fn id_of(content: &[u8]) -> FileId {
    FileId {
        size: content.len() as u64,
        sha256: Sha256Digest::of(content),
    }
}

fn listing(spec: &Spec) -> Listing {
    Listing::new(
        spec.iter()
            .map(|(path, node)| Entry {
                path: tree_path(path),
                mode: match node {
                    Node::File(_, m) | Node::Dir(m) => *m,
                    Node::Link(_) => 0,
                },
                kind: match node {
                    Node::File(c, _) => EntryKind::File {
                        size: c.len() as u64,
                        sha256: Sha256Digest::of(c),
                        recipe: (),
                    },
                    Node::Dir(_) => EntryKind::Dir,
                    Node::Link(t) => EntryKind::Symlink { target: t.clone() },
                },
            })
            .collect(),
    )
    .unwrap()
}

/// A patch-v1 container of method full for `content`.
fn full_blob(content: &[u8]) -> Vec<u8> {
    let frame = zstd::bulk::compress(content, 3).unwrap();
    let header = Header::unsigned(Method::Full, 20, None, id_of(content), id_of(&frame), None);
    [header.encode().as_slice(), &frame].concat()
}

/// A patch-v1 container of the zstd reference method from `old` to `new`.
fn ref_blob(old: &[u8], new: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), 3, old).unwrap();
    enc.include_contentsize(true).unwrap();
    enc.set_pledged_src_size(Some(new.len() as u64)).unwrap();
    enc.window_log(20).unwrap();
    enc.write_all(new).unwrap();
    let frame = enc.finish().unwrap();
    let header = Header::unsigned(
        Method::ZstdRef,
        20,
        Some(id_of(old)),
        id_of(new),
        id_of(&frame),
        None,
    );
    [header.encode().as_slice(), &frame].concat()
}

/// Builds a tree patch from `old` to `new`: copies for content the old tree has (same
/// path first), reference-method patches for files listed in `patched`, full images
/// for the rest.
fn make_patch(old: &Spec, new: &Spec, patched: &[&str], out: &Path) {
    let old_listing = listing(old);
    let new_listing = listing(new);
    let mut blobs = Vec::new();
    let new_listing = new_listing.with_recipes(|_, entry| {
        let Node::File(content, _) = &new[entry.path.as_str()] else {
            unreachable!("recipes are made for files")
        };
        let id = id_of(content);
        let same_path = old_listing
            .position(&entry.path)
            .filter(|&i| old_listing.entries()[i].kind.file() == Some(id));
        let any_path = || {
            old_listing
                .entries()
                .iter()
                .position(|e| e.kind.file() == Some(id))
        };
        if let Some(from) = same_path.or_else(any_path) {
            return Recipe::Copy { from };
        }
        if patched.contains(&entry.path.as_str()) {
            let from = old_listing.position(&entry.path).unwrap();
            let Node::File(old_content, _) = &old[entry.path.as_str()] else {
                unreachable!()
            };
            blobs.push(ref_blob(old_content, content));
            return Recipe::Patch {
                from,
                blob: blobs.len() - 1,
            };
        }
        blobs.push(full_blob(content));
        Recipe::Full {
            blob: blobs.len() - 1,
        }
    });
    let index = TreeIndex {
        old: old_listing,
        new: new_listing,
        blobs: vec![],
    };
    let (header, payload) = index.assemble(&blobs);
    fs::write(out, [header.encode().as_slice(), &payload].concat()).unwrap();
}

fn deltaapply() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deltaapply"));
    cmd.env_remove("DELTAAPPLY_KEY")
        .env_remove("DELTAAPPLY_CRASH_AT");
    cmd
}

fn in_place(dir: &Path, patch: &Path, crash_at: Option<u64>) -> Output {
    let mut cmd = deltaapply();
    cmd.arg("apply")
        .arg("--in-place")
        .arg(dir)
        .arg(patch)
        .arg("--json");
    if let Some(n) = crash_at {
        cmd.env("DELTAAPPLY_CRASH_AT", n.to_string());
    }
    cmd.output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?} stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stage_of(dir: &Path) -> PathBuf {
    let name = dir.file_name().unwrap().to_str().unwrap();
    dir.with_file_name(format!(".{name}.deltaapply-stage"))
}

fn journal_of(dir: &Path) -> PathBuf {
    let name = dir.file_name().unwrap().to_str().unwrap();
    dir.with_file_name(format!(".{name}.deltaapply-journal"))
}

fn assert_clean(dir: &Path) {
    assert_clean_except(dir, &[]);
}

/// Like [`assert_clean`], allowing the names in `allowed` beside the tree.
fn assert_clean_except(dir: &Path, allowed: &[&str]) {
    assert!(!stage_of(dir).exists(), "staging directory left behind");
    assert!(!journal_of(dir).exists(), "journal left behind");
    let parent = dir.parent().unwrap();
    let names: Vec<_> = fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("deltaapply") && !allowed.contains(&n.as_str()))
        .collect();
    assert!(names.is_empty(), "left behind: {names:?}");
}

/// The release pair of the kill test: adds, deletes, renames, a patched file, mode
/// changes, links, an empty directory, a file that becomes a directory and a
/// directory that becomes a file.
fn releases() -> (Spec, Spec) {
    let mut old = Spec::new();
    let mut new = Spec::new();
    for d in ["bin", "lib", "docs", "data", "share"] {
        old.insert(d.into(), Node::Dir(0o755));
        new.insert(d.into(), Node::Dir(0o755));
    }
    new.insert("docs".into(), Node::Dir(0o750));
    old.insert("lib/plugins".into(), Node::Dir(0o755));
    for i in 1..=5 {
        old.insert(
            format!("lib/plugins/p{i}"),
            file(format!("plugin {i}"), 0o644),
        );
    }
    old.insert("old-only".into(), Node::Dir(0o755));
    old.insert("old-only/a".into(), file("a", 0o644));
    old.insert("old-only/b".into(), file("b", 0o644));
    old.insert("bin/app".into(), file("app v1", 0o755));
    new.insert("bin/app".into(), file("app v2, larger", 0o755));
    old.insert("bin/tool".into(), file("the tool", 0o755));
    new.insert("bin/tool".into(), file("the tool", 0o700));
    new.insert("bin/tool2".into(), file("the tool", 0o755));
    let lib_old = "library ".repeat(40);
    let lib_new = format!("{}patched", "library ".repeat(41));
    old.insert("lib/libfoo.so".into(), file(&lib_old, 0o644));
    new.insert("lib/libfoo.so".into(), file(&lib_new, 0o644));
    new.insert("lib/link".into(), Node::Link("libfoo.so".into()));
    old.insert("docs/readme".into(), file("read me", 0o644));
    new.insert("docs/README.md".into(), file("read me", 0o644));
    old.insert("docs/manual".into(), file("manual 1", 0o644));
    new.insert("docs/manual".into(), file("manual 2", 0o644));
    old.insert("docs/latest".into(), Node::Link("readme".into()));
    new.insert("docs/latest".into(), Node::Link("README.md".into()));
    for i in 1..=20 {
        old.insert(format!("data/x{i}"), file(format!("data {i} old"), 0o644));
        new.insert(format!("data/x{i}"), file(format!("data {i} new"), 0o644));
    }
    for i in 1..=10 {
        old.insert(format!("share/f{i}"), file(format!("share {i}"), 0o644));
        new.insert(format!("share/f{i}"), file(format!("share {i}"), 0o644));
    }
    for i in 11..=20 {
        new.insert(format!("share/f{i}"), file(format!("share {i}"), 0o644));
    }
    new.insert("empty".into(), Node::Dir(0o750));
    old.insert("config".into(), file("key = 1", 0o600));
    new.insert("config".into(), file("key = 1", 0o640));
    old.insert("current".into(), Node::Link("bin/app".into()));
    new.insert("current".into(), Node::Link("bin/tool2".into()));
    old.insert("swap".into(), file("was a file", 0o644));
    new.insert("swap".into(), Node::Dir(0o755));
    new.insert("swap/inner".into(), file("now inside", 0o644));
    old.insert("flip".into(), Node::Dir(0o755));
    old.insert("flip/x".into(), file("x", 0o644));
    new.insert("flip".into(), file("now a file", 0o644));
    (old, new)
}

/// Files the user added to the installed tree; they must survive every update.
fn user_files() -> Spec {
    let mut user = Spec::new();
    user.insert("docs/user-notes.txt".into(), file("mine", 0o600));
    user.insert("old-only/user.txt".into(), file("mine too", 0o644));
    user.insert("mine".into(), Node::Dir(0o700));
    user.insert("mine/stuff".into(), file("stuff", 0o644));
    user
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    tree: PathBuf,
    patch: PathBuf,
    old: Spec,
    new: Spec,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = scratch();
        let root = dir.path().to_path_buf();
        let (old, new) = releases();
        let patch = root.join("update.dpatch");
        make_patch(&old, &new, &["lib/libfoo.so"], &patch);
        let tree = root.join("app");
        Fixture {
            _dir: dir,
            root,
            tree,
            patch,
            old,
            new,
        }
    }

    /// Installs the old release with the user's files in `self.tree`.
    fn install(&self) {
        if self.tree.exists() {
            fs::remove_dir_all(&self.tree).unwrap();
        }
        write_tree(&self.tree, &self.old);
        for (path, node) in user_files() {
            let at = self.tree.join(&path);
            match node {
                Node::Dir(m) => {
                    fs::create_dir(&at).unwrap();
                    fs::set_permissions(&at, fs::Permissions::from_mode(m)).unwrap();
                }
                Node::File(c, m) => {
                    fs::write(&at, c).unwrap();
                    fs::set_permissions(&at, fs::Permissions::from_mode(m)).unwrap();
                }
                Node::Link(_) => unreachable!(),
            }
        }
    }

    fn with_user(spec: &Spec) -> Spec {
        let mut all = spec.clone();
        all.extend(user_files());
        all
    }

    fn expected_old(&self) -> Spec {
        Fixture::with_user(&self.old)
    }

    /// The new release, the user's files, and `old-only/`, which keeps the user's file.
    fn expected_new(&self) -> Spec {
        let mut all = Fixture::with_user(&self.new);
        all.insert("old-only".into(), Node::Dir(0o755));
        all
    }
}

#[test]
fn in_place_round_trip_reports_what_it_did() {
    let f = Fixture::new();
    f.install();
    let out = in_place(&f.tree, &f.patch, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["ok"], true);
    assert_eq!(report["in_place"], true);
    assert_eq!(report["patched"], 1);
    assert_eq!(report["copied"], 2, "tool2 and README.md");
    assert_eq!(report["unchanged"], 12, "tool, config and share/f1..f10");
    assert_eq!(report["full"], 34);
    assert_eq!(report["written"], 37);
    assert!(report["steps"].as_u64().unwrap() >= 60, "{report}");
    assert_eq!(snapshot(&f.tree), f.expected_new());
    assert_clean(&f.tree);

    // The same command again finds the new tree and changes nothing.
    let out = in_place(&f.tree, &f.patch, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report = json(&out);
    assert_eq!(report["up_to_date"], true);
    assert_eq!(report["written"], 0);
    assert_eq!(snapshot(&f.tree), f.expected_new());
    assert_clean(&f.tree);
}

#[test]
#[cfg_attr(
    not(feature = "crash-hook"),
    ignore = "needs the crash hook: --features deltaapply-cli/crash-hook"
)]
fn out_of_place_and_full_image_round_trips() {
    let f = Fixture::new();
    write_tree(&f.root.join("old"), &f.old);
    let new_dir = f.root.join("new");
    let out = deltaapply()
        .arg("apply")
        .arg(f.root.join("old"))
        .arg(&f.patch)
        .arg("-o")
        .arg(&new_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrote"));
    assert_eq!(snapshot(&new_dir), f.new);
    assert_eq!(snapshot(&f.root.join("old")), f.old);
    assert_clean(&new_dir);

    // Interrupted after its first file, an out-of-place apply leaves no destination;
    // the next run clears the stale staging directory.
    let crashed = f.root.join("crashed");
    let out = deltaapply()
        .arg("apply")
        .arg(f.root.join("old"))
        .arg(&f.patch)
        .arg("-o")
        .arg(&crashed)
        .env("DELTAAPPLY_CRASH_AT", "1")
        .output()
        .unwrap();
    check_abort(&out);
    assert!(!crashed.exists());
    assert!(stage_of(&crashed).exists());
    let out = deltaapply()
        .arg("apply")
        .arg(f.root.join("old"))
        .arg(&f.patch)
        .arg("-o")
        .arg(&crashed)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot(&crashed), f.new);
    assert_clean(&crashed);

    // The destination exists now: refused.
    let again = deltaapply()
        .arg("apply")
        .arg(f.root.join("old"))
        .arg(&f.patch)
        .arg("-o")
        .arg(&new_dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(exit::FAILURE));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let image = f.root.join("image.dpatch");
    make_patch(&Spec::new(), &f.new, &[], &image);
    let from_image = f.root.join("from-image");
    let out = deltaapply()
        .arg("apply")
        .arg(&image)
        .arg("-o")
        .arg(&from_image)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["source"], serde_json::Value::Null);
    assert_eq!(snapshot(&from_image), f.new);
    assert_clean(&from_image);
}

#[test]
fn wrong_base_file_exits_4_and_leaves_the_tree() {
    let f = Fixture::new();
    for (path, content) in [("share/f3", "edited"), ("docs/readme", "edited too")] {
        f.install();
        fs::write(f.tree.join(path), content).unwrap();
        let before = snapshot(&f.tree);
        let out = in_place(&f.tree, &f.patch, None);
        assert_eq!(out.status.code(), Some(exit::WRONG_SOURCE), "{out:?}");
        let err = json(&out)["error"].as_str().unwrap().to_string();
        assert!(err.contains(path), "{err}");
        assert_eq!(snapshot(&f.tree), before);
        assert_clean(&f.tree);
    }
    // A base file that is missing.
    f.install();
    fs::remove_file(f.tree.join("lib/libfoo.so")).unwrap();
    let before = snapshot(&f.tree);
    let out = in_place(&f.tree, &f.patch, None);
    assert_eq!(out.status.code(), Some(exit::WRONG_SOURCE), "{out:?}");
    assert!(json(&out)["error"].as_str().unwrap().contains("missing"));
    assert_eq!(snapshot(&f.tree), before);
    assert_clean(&f.tree);
}

fn open(patch: &Path) -> TreePatch {
    TreePatch::open(patch, &Limits::default(), None, &mut |_| {}).unwrap()
}

#[test]
fn substitutes_replace_recipes_and_are_checked() {
    let f = Fixture::new();
    f.install();
    let patch = open(&f.patch);
    // The installed libfoo.so is damaged, so its patch cannot apply; the substitute
    // holds the new content.
    fs::write(f.tree.join("lib/libfoo.so"), "damaged").unwrap();
    let Node::File(new_lib, _) = &f.new["lib/libfoo.so"] else {
        unreachable!()
    };
    let sub = f.root.join("libfoo.download");
    fs::write(&sub, b"not it").unwrap();
    let mut substitutes = BTreeMap::new();
    substitutes.insert(tree_path("lib/libfoo.so"), sub.clone());
    let req = TreeApply {
        patch: &patch,
        old: Some(&f.tree),
        dest: &f.tree,
        substitutes: &substitutes,
        limits: Limits::default(),
        replace_unlisted: false,
        drop: None,
    };
    let before = snapshot(&f.tree);
    let err = apply_tree(&req, &mut |_| {}).unwrap_err();
    assert!(matches!(err, TreeApplyError::BadSubstitute { .. }), "{err}");
    assert_eq!(deltaapply_cli::exit_code(err.kind()), exit::BAD_PATCH);
    assert_eq!(snapshot(&f.tree), before);
    assert_clean(&f.tree);

    fs::write(&sub, new_lib).unwrap();
    let report = apply_tree(&req, &mut |_| {}).unwrap();
    assert_eq!(report.substituted, 1);
    assert_eq!(report.patched, 0);
    assert_eq!(snapshot(&f.tree), f.expected_new());
    assert_clean(&f.tree);
}

#[test]
#[cfg_attr(
    not(feature = "crash-hook"),
    ignore = "needs the crash hook: --features deltaapply-cli/crash-hook"
)]
fn every_crash_point_recovers() {
    let f = Fixture::new();
    f.install();
    let out = in_place(&f.tree, &f.patch, None);
    assert!(out.status.success());
    let steps = json(&out)["steps"].as_u64().unwrap();
    assert!(steps >= 60, "only {steps} steps");
    eprintln!("the in-place update takes {steps} durable steps; crashing after each");
    let old = f.expected_old();
    let new = f.expected_new();
    let check_crashed = |n: u64, out: &Output| {
        assert!(!out.status.success(), "step {n}: no crash");
        assert_eq!(out.status.code(), None, "step {n}: {out:?}");
        if !journal_of(&f.tree).exists() {
            // Without a journal the tree is the old one, unless the crash came after
            // the last step (the journal's removal): then the update is complete.
            let expected = if n == steps { &new } else { &old };
            assert_eq!(&snapshot(&f.tree), expected, "crash after step {n}");
        }
    };
    for n in 1..=steps {
        f.install();
        let out = in_place(&f.tree, &f.patch, Some(n));
        check_crashed(n, &out);
        if n == steps {
            // Killed after its last step: the update is complete, nothing to resume;
            // only the lock file stays (a killed process cannot remove it; the next
            // applier reuses it).
            assert_eq!(snapshot(&f.tree), new, "crash after the last step");
            let name = f.tree.file_name().unwrap().to_str().unwrap();
            assert_clean_except(&f.tree, &[&format!(".{name}.deltaapply-lock")]);
            continue;
        }
        let out = in_place(&f.tree, &f.patch, None);
        assert!(
            out.status.success(),
            "resume after step {n}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(snapshot(&f.tree), new, "resumed after a crash at step {n}");
        assert_clean(&f.tree);
    }
    // Crashing again while resuming.
    for (first, second) in [(30, 1), (38, 1), (39, 2), (60, 5), (steps - 1, 1), (45, 30)] {
        f.install();
        check_crashed(first, &in_place(&f.tree, &f.patch, Some(first)));
        let out = in_place(&f.tree, &f.patch, Some(second));
        check_crashed(second, &out);
        let out = in_place(&f.tree, &f.patch, None);
        assert!(out.status.success(), "{first}+{second}: {out:?}");
        assert_eq!(snapshot(&f.tree), new, "crashes at {first} then {second}");
        assert_clean(&f.tree);
    }
}

#[test]
#[cfg_attr(
    not(feature = "crash-hook"),
    ignore = "needs the crash hook: --features deltaapply-cli/crash-hook"
)]
fn a_journal_of_another_patch_is_refused() {
    let f = Fixture::new();
    f.install();
    check_abort(&in_place(&f.tree, &f.patch, Some(45)));
    let other = f.root.join("other.dpatch");
    let mut new = f.new.clone();
    new.insert("extra".into(), file("x", 0o644));
    make_patch(&f.old, &new, &[], &other);
    let out = in_place(&f.tree, &other, None);
    assert_eq!(out.status.code(), Some(exit::FAILURE));
    let err = json(&out)["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("deltaapply-journal") && err.contains("another update"),
        "{err}"
    );
    // A damaged journal is refused too, naming it.
    let journal = journal_of(&f.tree);
    let text = fs::read_to_string(&journal).unwrap();
    fs::write(&journal, text.replacen("place", "plaice", 1)).unwrap();
    let out = in_place(&f.tree, &f.patch, None);
    assert_eq!(out.status.code(), Some(exit::FAILURE));
    let err = json(&out)["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("deltaapply-journal") && err.contains("damaged"),
        "{err}"
    );
    fs::write(&journal, text).unwrap();
    assert!(in_place(&f.tree, &f.patch, None).status.success());
    assert_eq!(snapshot(&f.tree), f.expected_new());
}

fn check_abort(out: &Output) {
    assert_eq!(out.status.code(), None, "{out:?}");
}

#[test]
fn user_files_in_the_way_are_refused_before_writing() {
    let f = Fixture::new();
    // A user's file where the new release puts a directory, one where it puts a file,
    // and one inside a directory the new release turns into a file.
    for (path, node) in [
        ("empty", file("user", 0o644)),
        ("bin/tool2", file("user", 0o644)),
        ("flip/user", file("user", 0o644)),
    ] {
        f.install();
        let Node::File(c, _) = node else {
            unreachable!()
        };
        fs::write(f.tree.join(path), c).unwrap();
        let before = snapshot(&f.tree);
        let out = in_place(&f.tree, &f.patch, None);
        assert_eq!(out.status.code(), Some(exit::FAILURE), "{path}: {out:?}");
        let err = json(&out)["error"].as_str().unwrap().to_string();
        assert!(
            err.contains(path) && err.contains("not part of the old release"),
            "{err}"
        );
        assert_eq!(snapshot(&f.tree), before);
        assert_clean(&f.tree);
    }
}

#[test]
fn symlinks_on_disk_are_not_followed() {
    let f = Fixture::new();
    // A directory of the tree replaced by a link to a directory outside.
    f.install();
    let outside = f.root.join("outside");
    write_tree(&outside, &f.old);
    let outside_before = snapshot(&outside);
    fs::remove_dir_all(f.tree.join("data")).unwrap();
    std::os::unix::fs::symlink(outside.join("data"), f.tree.join("data")).unwrap();
    let before = snapshot(&f.tree);
    let out = in_place(&f.tree, &f.patch, None);
    assert_eq!(out.status.code(), Some(exit::FAILURE), "{out:?}");
    let err = json(&out)["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("symbolic link") && err.contains("data"),
        "{err}"
    );
    assert_eq!(snapshot(&f.tree), before);
    assert_eq!(snapshot(&outside), outside_before);
    assert_clean(&f.tree);

    // An unchanged file replaced by a link to a file outside with the same content.
    f.install();
    fs::remove_file(f.tree.join("share/f1")).unwrap();
    std::os::unix::fs::symlink(outside.join("share/f1"), f.tree.join("share/f1")).unwrap();
    let before = snapshot(&f.tree);
    let out = in_place(&f.tree, &f.patch, None);
    assert_eq!(out.status.code(), Some(exit::WRONG_SOURCE), "{out:?}");
    let err = json(&out)["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("share/f1") && err.contains("symbolic link"),
        "{err}"
    );
    assert_eq!(snapshot(&f.tree), before);
    assert_eq!(snapshot(&outside), outside_before);
    assert_clean(&f.tree);
}

/// Raw index bytes, encoded by hand as `format-spec/tree-v1.md` §4 says, so that
/// entries `Listing::new` refuses can be written.
struct RawIndex {
    bytes: Vec<u8>,
}

impl RawIndex {
    fn new(old: u64, new: u64, blobs: u64) -> RawIndex {
        let mut bytes = Vec::new();
        for n in [old, new, blobs] {
            bytes.extend_from_slice(&n.to_le_bytes());
        }
        RawIndex { bytes }
    }
    fn head(&mut self, kind: u8, mode: u16, path: &str) {
        self.bytes.push(kind);
        self.bytes.extend_from_slice(&mode.to_le_bytes());
        self.bytes
            .extend_from_slice(&(path.len() as u16).to_le_bytes());
        self.bytes.extend_from_slice(path.as_bytes());
    }
    /// A new-tree file made by a full blob... without a blob: the index is refused
    /// before blobs matter, so recipes use copy from old entry 0 where needed.
    fn file(&mut self, path: &str, content: &[u8], recipe_from: Option<u64>) -> &mut Self {
        self.head(1, 0o644, path);
        self.bytes
            .extend_from_slice(&(content.len() as u64).to_le_bytes());
        self.bytes.extend_from_slice(&Sha256Digest::of(content).0);
        if let Some(from) = recipe_from {
            self.bytes.push(1);
            self.bytes.extend_from_slice(&from.to_le_bytes());
        }
        self
    }
    fn dir(&mut self, path: &str) -> &mut Self {
        self.head(2, 0o755, path);
        self
    }
    fn link(&mut self, path: &str, target: &str) -> &mut Self {
        self.head(3, 0, path);
        self.bytes
            .extend_from_slice(&(target.len() as u16).to_le_bytes());
        self.bytes.extend_from_slice(target.as_bytes());
        self
    }

    /// A tree patch around this index: an old tree of one file `a` ("A"), the header
    /// sealed over the payload.
    fn patch(&self, out: &Path) {
        let mut payload = (self.bytes.len() as u64).to_le_bytes().to_vec();
        payload.extend_from_slice(&self.bytes);
        let header = TreeHeader::tree(
            Some(id_of(b"any old tree")),
            20,
            id_of(b"any new tree"),
            id_of(&payload),
            BASE_APPLY_MEMORY + 4 * self.bytes.len() as u64,
        );
        fs::write(out, [header.encode().as_slice(), &payload].concat()).unwrap();
    }
}

/// An index whose old tree is the single file `a` and whose new tree is `entries`
/// (files copy `a`, so every file entry must have content "A").
fn hostile(build: impl FnOnce(&mut RawIndex), new_count: u64) -> RawIndex {
    let mut raw = RawIndex::new(1, new_count, 0);
    raw.head(1, 0o644, "a");
    raw.bytes.extend_from_slice(&1u64.to_le_bytes());
    raw.bytes.extend_from_slice(&Sha256Digest::of(b"A").0);
    build(&mut raw);
    raw
}

#[test]
fn hostile_indexes_are_refused_before_writing() {
    let dir = scratch();
    let tree = dir.path().join("app");
    let mut old = Spec::new();
    old.insert("a".into(), file("A", 0o644));
    write_tree(&tree, &old);
    let cases: Vec<(&str, RawIndex, &str)> = vec![
        (
            "dot-dot",
            hostile(
                |r| {
                    r.file("../escape", b"A", Some(0));
                },
                1,
            ),
            "\"..\"",
        ),
        (
            "absolute",
            hostile(
                |r| {
                    r.file("/etc/passwd", b"A", Some(0));
                },
                1,
            ),
            "absolute",
        ),
        (
            "nul",
            hostile(
                |r| {
                    r.file("a\0b", b"A", Some(0));
                },
                1,
            ),
            "character",
        ),
        (
            "device",
            hostile(
                |r| {
                    r.file("aux.txt", b"A", Some(0));
                },
                1,
            ),
            "Windows reserves",
        ),
        (
            "duplicate",
            hostile(
                |r| {
                    r.file("b", b"A", Some(0)).file("b", b"A", Some(0));
                },
                2,
            ),
            "twice",
        ),
        (
            "case",
            hostile(
                |r| {
                    r.file("B", b"A", Some(0)).file("b", b"A", Some(0));
                },
                2,
            ),
            "differ only in case",
        ),
        (
            "file-as-dir",
            hostile(
                |r| {
                    r.file("b", b"A", Some(0)).file("b/c", b"A", Some(0));
                },
                2,
            ),
            "directory",
        ),
        (
            "link-escape",
            hostile(
                |r| {
                    r.link("l", "../../etc");
                },
                1,
            ),
            "out of the tree",
        ),
        (
            "link-absolute",
            hostile(
                |r| {
                    r.link("l", "/etc");
                },
                1,
            ),
            "absolute",
        ),
        (
            "link-through-link",
            hostile(
                |r| {
                    r.dir("d").link("d/l", "..").link("m", "d/l/a");
                },
                3,
            ),
            "another symbolic link",
        ),
        ("absurd-count", RawIndex::new(0, u64::MAX / 2, 0), "entries"),
        (
            "count-beyond-bytes",
            RawIndex::new(0, 900_000, 0),
            "cannot fit",
        ),
    ];
    let before = snapshot(&tree);
    for (name, raw, expect) in cases {
        let patch = dir.path().join(format!("{name}.dpatch"));
        raw.patch(&patch);
        let out = in_place(&tree, &patch, None);
        assert_eq!(out.status.code(), Some(exit::BAD_PATCH), "{name}: {out:?}");
        let err = json(&out)["error"].as_str().unwrap().to_string();
        assert!(err.contains(expect), "{name}: {err}");
        assert_eq!(snapshot(&tree), before, "{name}");
        assert_clean(&tree);
        let new_dir = dir.path().join("new");
        let out = deltaapply()
            .arg("apply")
            .arg(&tree)
            .arg(&patch)
            .arg("-o")
            .arg(&new_dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(exit::BAD_PATCH), "{name}: {out:?}");
        assert!(!new_dir.exists(), "{name}");
        assert_clean(&new_dir);
    }
}

/// Crashes the in-place update at the first durable step after which its journal
/// exists (the journal write: every file staged, no operation carried out yet).
fn crash_after_the_journal(f: &Fixture) -> u64 {
    for n in 1..200 {
        f.install();
        check_abort(&in_place(&f.tree, &f.patch, Some(n)));
        if journal_of(&f.tree).exists() {
            return n;
        }
    }
    panic!("no crash point leaves a journal");
}

fn read_journal(dir: &Path) -> Journal {
    Journal::decode(&fs::read_to_string(journal_of(dir)).unwrap()).unwrap()
}

/// Writes `journal` in place of the tree's journal, as someone who can write beside
/// the tree could (its checksum is of its own text, so it is valid).
fn forge(dir: &Path, journal: &Journal) {
    let path = journal_of(dir);
    fs::write(&path, journal.encode()).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
}

fn untrusted(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(exit::FAILURE), "{out:?}");
    let err = json(out)["error"].as_str().unwrap().to_string();
    assert!(err.contains("cannot be trusted"), "{err}");
    err
}

#[test]
#[cfg_attr(
    not(feature = "crash-hook"),
    ignore = "needs the crash hook: --features deltaapply-cli/crash-hook"
)]
fn a_journal_with_operations_the_patch_lacks_is_refused_before_any_is_carried_out() {
    let f = Fixture::new();
    crash_after_the_journal(&f);
    let genuine = read_journal(&f.tree);
    let outside = f.root.join("outside");
    // A link out of the tree, an absolute link, a file whose content is not the new
    // listing's, and a staged name that is another file's.
    let place = genuine
        .ops
        .iter()
        .position(|op| matches!(op, Op::Place { .. }))
        .unwrap();
    let Op::Place { name, file, path } = genuine.ops[place].clone() else {
        unreachable!()
    };
    let forged_ops = [
        Op::Link(tree_path("evil"), "../outside".into()),
        Op::Link(tree_path("evil"), outside.to_str().unwrap().into()),
        Op::Place {
            name: name.clone(),
            file: FileId {
                size: file.size,
                sha256: Sha256Digest([7; 32]),
            },
            path: path.clone(),
        },
        Op::Place {
            name: "f0".into(),
            file,
            path: path.clone(),
        },
        Op::Delete(path.clone()),
    ];
    for op in forged_ops {
        let before = snapshot(&f.tree);
        let mut journal = genuine.clone();
        journal.ops.insert(0, op.clone());
        forge(&f.tree, &journal);
        let err = untrusted(&in_place(&f.tree, &f.patch, None));
        assert!(err.contains("is not one an update"), "{op:?}: {err}");
        assert_eq!(snapshot(&f.tree), before, "{op:?} changed the tree");
        assert!(!f.tree.join("evil").exists() && !outside.exists());
    }
    // The genuine journal still finishes the update.
    forge(&f.tree, &genuine);
    assert!(in_place(&f.tree, &f.patch, None).status.success());
    assert_eq!(snapshot(&f.tree), f.expected_new());
    assert_clean(&f.tree);
}

#[test]
#[cfg_attr(
    not(feature = "crash-hook"),
    ignore = "needs the crash hook: --features deltaapply-cli/crash-hook"
)]
fn a_staged_file_changed_after_a_crash_is_not_put_into_the_tree() {
    let f = Fixture::new();
    crash_after_the_journal(&f);
    let journal = read_journal(&f.tree);
    let Some(Op::Place { name, file, path }) = journal
        .ops
        .iter()
        .find(|op| matches!(op, Op::Place { file, .. } if file.size > 0))
        .cloned()
    else {
        panic!("no file placed")
    };
    let staged = stage_of(&f.tree).join(&name);
    fs::write(&staged, vec![b'X'; file.size as usize]).unwrap();
    let out = in_place(&f.tree, &f.patch, None);
    assert_eq!(out.status.code(), Some(exit::FAILURE), "{out:?}");
    let err = json(&out)["error"].as_str().unwrap().to_string();
    assert!(err.contains(&name) && err.contains(path.as_str()), "{err}");
    let at = path.under(&f.tree);
    assert_ne!(
        fs::read(&at).ok(),
        Some(vec![b'X'; file.size as usize]),
        "the changed staged file went into the tree"
    );
}

#[test]
#[cfg_attr(
    not(feature = "crash-hook"),
    ignore = "needs the crash hook: --features deltaapply-cli/crash-hook"
)]
fn journal_and_staging_are_private_and_only_the_applier_s_own_are_trusted() {
    let f = Fixture::new();
    crash_after_the_journal(&f);
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&stage_of(&f.tree)), 0o700);
    assert_eq!(mode(&journal_of(&f.tree)), 0o600);
    let journal = journal_of(&f.tree);
    let text = fs::read(&journal).unwrap();

    // Writable by others.
    let before = snapshot(&f.tree);
    fs::set_permissions(&journal, fs::Permissions::from_mode(0o666)).unwrap();
    let err = untrusted(&in_place(&f.tree, &f.patch, None));
    assert!(err.contains("others may write"), "{err}");
    fs::set_permissions(&journal, fs::Permissions::from_mode(0o600)).unwrap();
    // A link to a journal elsewhere.
    let elsewhere = f.root.join("journal-elsewhere");
    fs::rename(&journal, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &journal).unwrap();
    let err = untrusted(&in_place(&f.tree, &f.patch, None));
    assert!(err.contains("not a regular file"), "{err}");
    fs::remove_file(&journal).unwrap();
    // Larger than any journal can be (sparse: nothing is really written).
    let big = fs::File::create(&journal).unwrap();
    big.set_len(deltaapply::tree::journal::MAX_JOURNAL + 1)
        .unwrap();
    drop(big);
    fs::set_permissions(&journal, fs::Permissions::from_mode(0o600)).unwrap();
    let err = untrusted(&in_place(&f.tree, &f.patch, None));
    assert!(err.contains("larger than"), "{err}");
    // A staging directory others may write to.
    fs::write(&journal, &text).unwrap();
    fs::set_permissions(stage_of(&f.tree), fs::Permissions::from_mode(0o777)).unwrap();
    let err = untrusted(&in_place(&f.tree, &f.patch, None));
    assert!(err.contains("staging directory"), "{err}");
    assert_eq!(snapshot(&f.tree), before);

    fs::set_permissions(stage_of(&f.tree), fs::Permissions::from_mode(0o700)).unwrap();
    assert!(in_place(&f.tree, &f.patch, None).status.success());
    assert_eq!(snapshot(&f.tree), f.expected_new());
    assert_clean(&f.tree);
}

/// The crash hook exists only in builds with the `crash-hook` feature (the test suite's):
/// the binary as shipped never reads the variable. `scripts/test.sh` runs this test in a
/// build without the feature.
#[test]
#[cfg_attr(
    feature = "crash-hook",
    ignore = "checks the binary as shipped: run without --features deltaapply-cli/crash-hook"
)]
fn the_binary_as_shipped_ignores_the_crash_variable() {
    let f = Fixture::new();
    f.install();
    let out = deltaapply()
        .arg("apply")
        .arg("--in-place")
        .arg(&f.tree)
        .arg(&f.patch)
        .arg("--json")
        .env("DELTAAPPLY_CRASH_AT", "1")
        // The single-file fault points (deltaapply_apply::fault), which staging uses.
        .env("DELTAAPPLY_FAULT_AT", "1")
        .env("DELTAAPPLY_FAULT", "eio")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(snapshot(&f.tree), f.expected_new());
    assert_clean(&f.tree);
}
