//! The committed tree-patch vectors (`testdata/vectors/tree`, `format-spec/tree-v1.md`
//! §9): the input trees of `vectors.json` against their documented listing digests,
//! every case opened and applied through the library and through the `deltaapply`
//! binary (valid patches decode to the documented header fields and recipes and make
//! exactly the new tree; hostile ones are refused with the documented error kind and
//! exit code, writing nothing), and the worked example of the spec's §3.5 (its bytes
//! and digest are computed here and must appear in the spec verbatim).
//!
//! The `.dpatch` files are made by `testdata/vectors/tree/make.sh`, which calls the two
//! `#[ignore]`d tests at the end of this file (`write_input_trees`, `make_vectors`)
//! around the `deltapack diff` of the valid ones.
//!
//! Needs the `cli` feature (the binary, and `serde_json` to read the case list).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use deltaapply::container::{BASE_APPLY_MEMORY, HEADER_LEN, MIN_WINDOW_LOG};
use deltaapply::tree::format::MAX_ENTRIES;
use deltaapply::tree::{
    Entry, EntryKind, Listing, Prober, Recipe, TreeApply, TreeApplyError, TreeFormatError,
    TreeListError, TreePatch, TreePath, apply_tree,
};
use deltaapply::update::error_chain as chain;
use deltaapply::{Error, FileId, Header, Limits, Sha256Digest, TreeHeader};
use serde::Deserialize;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/vectors/tree")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    #[allow(dead_code)]
    format: String,
    #[allow(dead_code)]
    regenerate: String,
    #[allow(dead_code)]
    content: String,
    trees: Trees,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Trees {
    old: Vec<EntryDoc>,
    old_id: FileDoc,
    new: Vec<EntryDoc>,
    new_id: FileDoc,
}

/// One entry of an input tree.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct EntryDoc {
    path: String,
    kind: String,
    /// Octal text, e.g. `"755"`.
    mode: String,
    /// A file's content as text.
    text: Option<String>,
    /// A file's content as generated lines (see `generated`).
    lines: Option<u32>,
    /// With `lines`: the lines that differ from release 1.
    #[serde(default)]
    changed: Vec<u32>,
    target: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    size: u64,
    #[serde(with = "hex_digest")]
    sha256: Sha256Digest,
}

mod hex_digest {
    use deltaapply::Sha256Digest;
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Sha256Digest, D::Error> {
        let s = String::deserialize(d)?;
        Sha256Digest::from_hex(&s).ok_or_else(|| serde::de::Error::custom("not a sha256"))
    }
}

impl From<FileDoc> for FileId {
    fn from(d: FileDoc) -> FileId {
        FileId {
            size: d.size,
            sha256: d.sha256,
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    patch: String,
    /// Whether the applier is given the old tree of `trees`.
    #[serde(default)]
    old: bool,
    /// `ok`, `refused-on-open` (by `TreePatch::open`) or `refused-on-apply`.
    expect: String,
    error: Option<String>,
    /// Text the error (with its sources) must contain.
    message: Option<String>,
    /// Exit code of `deltaapply apply`.
    exit: i32,
    #[allow(dead_code)]
    rule: String,
    #[allow(dead_code)]
    description: String,
    /// The header's source (null: the empty tree, all-zero in the header), checked
    /// with `target`.
    #[serde(default)]
    source: Option<FileDoc>,
    target: Option<FileDoc>,
    /// Blobs in the index.
    blobs: Option<usize>,
    /// Each new file's recipe, by path.
    recipes: Option<BTreeMap<String, RecipeDoc>>,
}

#[derive(Deserialize, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct RecipeDoc {
    recipe: String,
    from: Option<String>,
    method: Option<String>,
}

fn index() -> Index {
    let text = fs::read_to_string(dir().join("vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Line `i` of a generated file: the hex SHA-256 of `app line I` (or `app line I v2`
/// for a changed line), and a newline.
fn generated(lines: u32, changed: &[u32]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..lines {
        let seed = if changed.contains(&i) {
            format!("app line {i} v2")
        } else {
            format!("app line {i}")
        };
        out.extend_from_slice(format!("{}\n", Sha256Digest::of(seed.as_bytes())).as_bytes());
    }
    out
}

fn content(doc: &EntryDoc) -> Vec<u8> {
    match (&doc.text, doc.lines) {
        (Some(text), None) => text.as_bytes().to_vec(),
        (None, Some(lines)) => generated(lines, &doc.changed),
        _ => panic!("{}: a file has text or lines", doc.path),
    }
}

fn mode(doc: &EntryDoc) -> u32 {
    u32::from_str_radix(&doc.mode, 8).unwrap()
}

fn listing(docs: &[EntryDoc]) -> Listing {
    let entries = docs
        .iter()
        .map(|d| Entry {
            path: TreePath::new(&d.path).unwrap(),
            mode: mode(d),
            kind: match d.kind.as_str() {
                "file" => {
                    let c = content(d);
                    EntryKind::File {
                        size: c.len() as u64,
                        sha256: Sha256Digest::of(&c),
                        recipe: (),
                    }
                }
                "dir" => EntryKind::Dir,
                "symlink" => EntryKind::Symlink {
                    target: d.target.clone().unwrap(),
                },
                other => panic!("unknown kind {other}"),
            },
        })
        .collect();
    Listing::new(entries).unwrap()
}

/// Writes a tree (modes exact, whatever the umask; directory modes set last).
fn write_tree(root: &Path, docs: &[EntryDoc]) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir(root).unwrap();
    for d in docs {
        let path = TreePath::new(&d.path).unwrap().under(root);
        match d.kind.as_str() {
            "file" => {
                fs::write(&path, content(d)).unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(mode(d))).unwrap();
            }
            "dir" => fs::create_dir(&path).unwrap(),
            "symlink" => std::os::unix::fs::symlink(d.target.as_ref().unwrap(), &path).unwrap(),
            other => panic!("unknown kind {other}"),
        }
    }
    for d in docs.iter().rev().filter(|d| d.kind == "dir") {
        let path = TreePath::new(&d.path).unwrap().under(root);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode(d))).unwrap();
    }
}

fn format_kind(e: &TreeFormatError) -> String {
    match e {
        TreeFormatError::Path(_) => "TreeFormat/Path".into(),
        TreeFormatError::Paths(l) => format!(
            "TreeFormat/Paths/{}",
            match l {
                TreeListError::Duplicate(_) => "Duplicate",
                TreeListError::CaseCollision(..) => "CaseCollision",
                TreeListError::FileAsDirectory(..) => "FileAsDirectory",
            }
        ),
        TreeFormatError::Unsorted { .. } => "TreeFormat/Unsorted".into(),
        TreeFormatError::NoParent { .. } => "TreeFormat/NoParent".into(),
        TreeFormatError::BadLink { .. } => "TreeFormat/BadLink".into(),
        TreeFormatError::BadMode { .. } => "TreeFormat/BadMode".into(),
        TreeFormatError::TooManyEntries { .. } => "TreeFormat/TooManyEntries".into(),
        TreeFormatError::Malformed(_) => "TreeFormat/Malformed".into(),
    }
}

fn error_kind(e: &Error) -> String {
    match e {
        Error::TreeFormat { source, .. } => format_kind(source),
        Error::Corrupt { .. } => "Corrupt".into(),
        Error::Format { source, .. } => format!("Format/{source:?}")
            .split(['{', ' ', '('])
            .next()
            .unwrap()
            .to_string(),
        Error::MemoryLimit { .. } => "MemoryLimit".into(),
        other => format!("other: {other}"),
    }
}

fn apply_kind(e: &TreeApplyError) -> String {
    match e {
        TreeApplyError::Entry { source, .. } => format!("Entry/{}", error_kind(source)),
        TreeApplyError::WrongBase { .. } => "WrongBase".into(),
        TreeApplyError::MissingOld { .. } => "MissingOld".into(),
        other => format!("other: {other}"),
    }
}

fn limits() -> Limits {
    Limits {
        max_apply_memory: 1 << 30,
    }
}

fn recipe_doc(patch: &TreePatch, recipe: Recipe) -> RecipeDoc {
    let index = patch.index();
    let from = recipe
        .from()
        .map(|i| index.old.entries()[i].path.to_string());
    let method = recipe.blob().map(|k| {
        let blob = index.blobs[k];
        let start = (HEADER_LEN as u64 + blob.offset) as usize;
        let bytes = fs::read(patch.path()).unwrap();
        let h = Header::decode(
            &bytes[start..start + HEADER_LEN.min(blob.len as usize)],
            blob.len,
        )
        .unwrap();
        h.method().to_string()
    });
    let name = match recipe {
        Recipe::Copy { .. } => "copy",
        Recipe::Patch { .. } => "patch",
        Recipe::Full { .. } => "full",
    };
    RecipeDoc {
        recipe: name.into(),
        from,
        method,
    }
}

#[test]
fn input_trees_have_the_documented_listing_digests() {
    let index = index();
    let old = listing(&index.trees.old);
    let new = listing(&index.trees.new);
    assert_eq!(
        old.id(),
        index.trees.old_id.into(),
        "old tree: {:?}",
        old.id()
    );
    assert_eq!(
        new.id(),
        index.trees.new_id.into(),
        "new tree: {:?}",
        new.id()
    );
    // And what is written to disk is what the listing says.
    let scratch = tempfile::tempdir().unwrap();
    for (name, docs, listing) in [
        ("old", &index.trees.old, &old),
        ("new", &index.trees.new, &new),
    ] {
        let root = scratch.path().join(name);
        write_tree(&root, docs);
        let diffs = Prober::new(&root).compare(listing, &mut |_| {}).unwrap();
        assert!(diffs.is_empty(), "{name}: {diffs:?}");
    }
}

#[test]
fn every_case() {
    let index = index();
    let old_listing = listing(&index.trees.old);
    let new_listing = listing(&index.trees.new);
    assert!(index.cases.len() >= 20);
    // Every file is used by a case, and the set stays small enough to commit.
    let mut total = 0;
    for entry in fs::read_dir(dir()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        total += entry.metadata().unwrap().len();
        if name.ends_with(".dpatch") {
            assert!(
                index.cases.iter().any(|c| c.patch == name),
                "{name} is not used by any case"
            );
        } else {
            assert!(
                ["README.md", "vectors.json", "make.sh"].contains(&name.as_str()),
                "{name} does not belong here"
            );
        }
    }
    assert!(total < 100 << 10, "tree vectors take {total} bytes");
    for case in &index.cases {
        let name = &case.name;
        let patch_path = dir().join(&case.patch);
        let scratch = tempfile::tempdir().unwrap();
        let old_root = scratch.path().join("old");
        if case.old {
            write_tree(&old_root, &index.trees.old);
        }
        let dest = scratch.path().join("new");

        // The library.
        let opened = TreePatch::open(&patch_path, &limits(), None, &mut |_| {});
        let patch = match (case.expect.as_str(), opened) {
            ("refused-on-open", Err(e)) => {
                assert_eq!(Some(error_kind(&e)), case.error, "{name}: {}", chain(&e));
                None
            }
            ("refused-on-open", Ok(_)) => panic!("{name}: opened"),
            (_, Err(e)) => panic!("{name}: {}", chain(&e)),
            (_, Ok(patch)) => Some(patch),
        };
        if let (Some(message), None) = (&case.message, &patch) {
            let e = TreePatch::open(&patch_path, &limits(), None, &mut |_| {}).unwrap_err();
            assert!(
                chain(&e).contains(message.as_str()),
                "{name}: {}",
                chain(&e)
            );
        }
        if let Some(patch) = &patch {
            let header = patch.header();
            assert_eq!(fs::read(&patch_path).unwrap()[12], 4, "{name}: method byte");
            // Cases that document the header's trees (a null source: the empty tree).
            if let Some(target) = case.target {
                assert_eq!(header.target, target.into(), "{name}");
                assert_eq!(header.source(), case.source.map(FileId::from), "{name}");
            }
            if let Some(blobs) = case.blobs {
                assert_eq!(patch.index().blobs.len(), blobs, "{name}");
            }
            if let Some(recipes) = &case.recipes {
                let found: BTreeMap<String, RecipeDoc> = patch
                    .index()
                    .new
                    .entries()
                    .iter()
                    .filter_map(|e| match e.kind {
                        EntryKind::File { recipe, .. } => {
                            Some((e.path.to_string(), recipe_doc(patch, recipe)))
                        }
                        _ => None,
                    })
                    .collect();
                assert_eq!(&found, recipes, "{name}");
            }
            if case.expect == "ok" {
                assert_eq!(patch.index().new.plain(), new_listing, "{name}");
                if case.old {
                    assert_eq!(patch.index().old, old_listing, "{name}");
                }
            }
            let no_subs = BTreeMap::new();
            let applied = apply_tree(
                &TreeApply {
                    patch,
                    old: case.old.then_some(old_root.as_path()),
                    dest: &dest,
                    substitutes: &no_subs,
                    limits: limits(),
                    replace_unlisted: false,
                    drop: None,
                },
                &mut |_| {},
            );
            match (case.expect.as_str(), applied) {
                ("ok", Ok(report)) => {
                    assert_eq!(report.target, new_listing.id(), "{name}");
                    let diffs = Prober::new(&dest)
                        .compare(&new_listing, &mut |_| {})
                        .unwrap();
                    assert!(diffs.is_empty(), "{name}: {diffs:?}");
                    fs::remove_dir_all(&dest).unwrap();
                }
                ("refused-on-apply", Err(e)) => {
                    assert_eq!(Some(apply_kind(&e)), case.error, "{name}: {}", chain(&e));
                    if let Some(message) = &case.message {
                        assert!(
                            chain(&e).contains(message.as_str()),
                            "{name}: {}",
                            chain(&e)
                        );
                    }
                }
                (expect, result) => panic!("{name}: expected {expect}, got {result:?}"),
            }
        }
        assert_untouched(scratch.path(), name);

        // The binary.
        let mut cmd = Command::cargo_bin("deltaapply").unwrap();
        cmd.arg("apply");
        if case.old {
            cmd.arg(&old_root);
        }
        let out = cmd.arg(&patch_path).arg("-o").arg(&dest).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(case.exit),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if case.exit == 0 {
            let diffs = Prober::new(&dest)
                .compare(&new_listing, &mut |_| {})
                .unwrap();
            assert!(diffs.is_empty(), "{name} (binary): {diffs:?}");
        } else {
            assert_untouched(scratch.path(), name);
        }
    }
}

/// Nothing but the old tree (if any) is left in the scratch directory: no destination,
/// no staging directory.
fn assert_untouched(scratch: &Path, name: &str) {
    let left: Vec<String> = fs::read_dir(scratch)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "old")
        .collect();
    assert!(left.is_empty(), "{name}: left {left:?}");
}

/// Every truncation of `valid.dpatch` at 200 lengths (all header lengths included),
/// one bit flipped at 300 positions spread over the file (the whole header included),
/// and garbage of several lengths: each is refused, applied in place over the old
/// tree, and the tree is left exactly as it was, with no staging directory or journal.
#[test]
fn truncated_flipped_and_garbage_tree_patches_change_nothing() {
    let index = index();
    let old_listing = listing(&index.trees.old);
    let valid = fs::read(dir().join("valid.dpatch")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("old");
    write_tree(&root, &index.trees.old);
    let bad = scratch.path().join("bad.dpatch");
    let no_subs = BTreeMap::new();
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    let len = valid.len();
    let mut cuts: Vec<usize> = (0..=HEADER_LEN + 8).collect();
    cuts.extend((0..200).map(|i| i * len / 200));
    for cut in cuts.into_iter().filter(|&c| c < len) {
        cases.push((format!("truncated to {cut}"), valid[..cut].to_vec()));
    }
    let mut positions: Vec<usize> = (0..HEADER_LEN).collect();
    positions.extend((0..300).map(|i| i * len / 300));
    for at in positions {
        let mut bytes = valid.clone();
        bytes[at] ^= 1 << (at % 8);
        cases.push((format!("bit {} of byte {at} flipped", at % 8), bytes));
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for n in [1, 16, HEADER_LEN, len] {
        let garbage: Vec<u8> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        cases.push((format!("{n} bytes of garbage"), garbage));
    }
    let mut longer = valid.clone();
    longer.push(0);
    cases.push(("one trailing byte".into(), longer));
    for (what, bytes) in &cases {
        fs::write(&bad, bytes).unwrap();
        let applied = TreePatch::open(&bad, &limits(), None, &mut |_| {}).and_then(|patch| {
            apply_tree(
                &TreeApply {
                    patch: &patch,
                    old: Some(&root),
                    dest: &root,
                    substitutes: &no_subs,
                    limits: limits(),
                    replace_unlisted: false,
                    drop: None,
                },
                &mut |_| {},
            )
            .map_err(|e| Error::Corrupt {
                path: bad.clone(),
                problem: e.to_string(),
            })
        });
        let err = applied.err().unwrap_or_else(|| panic!("{what}: accepted"));
        assert!(!err.to_string().is_empty(), "{what}");
        let left = Prober::new(&root)
            .compare(&old_listing, &mut |_| {})
            .unwrap();
        assert!(left.is_empty(), "{what}: the tree changed: {left:?}");
        let mut names: Vec<String> = fs::read_dir(scratch.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["bad.dpatch", "old"], "{what}");
    }
    assert!(cases.len() > 700, "{} cases", cases.len());
}

/// The worked example of `format-spec/tree-v1.md` §3.5.
fn spec_example() -> Listing {
    let p = |s: &str| TreePath::new(s).unwrap();
    Listing::new(vec![
        Entry {
            path: p("bin"),
            mode: 0o755,
            kind: EntryKind::Dir,
        },
        Entry {
            path: p("bin/hello"),
            mode: 0o755,
            kind: EntryKind::File {
                size: 6,
                sha256: Sha256Digest::of(b"hello\n"),
                recipe: (),
            },
        },
        Entry {
            path: p("hello"),
            mode: 0,
            kind: EntryKind::Symlink {
                target: "bin/hello".into(),
            },
        },
    ])
    .unwrap()
}

/// Hex lines of 16 bytes, as the spec prints them.
fn hex_lines(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|c| {
            c.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_spec_example_listing_digest() {
    let listing = spec_example();
    // The hashed bytes, built by hand as §3.5 says.
    let mut encoded = b"deltapack tree listing v1\0".to_vec();
    encoded.extend_from_slice(&3u64.to_le_bytes());
    encoded.extend_from_slice(&[2, 0xed, 0x01, 3, 0]);
    encoded.extend_from_slice(b"bin");
    encoded.extend_from_slice(&[1, 0xed, 0x01, 9, 0]);
    encoded.extend_from_slice(b"bin/hello");
    encoded.extend_from_slice(&6u64.to_le_bytes());
    encoded.extend_from_slice(&Sha256Digest::of(b"hello\n").0);
    encoded.extend_from_slice(&[3, 0, 0, 5, 0]);
    encoded.extend_from_slice(b"hello");
    encoded.extend_from_slice(&[9, 0]);
    encoded.extend_from_slice(b"bin/hello");
    let digest = Sha256Digest::of(&encoded);
    assert_eq!(
        listing.id(),
        FileId {
            size: 6,
            sha256: digest
        }
    );
    let spec =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../format-spec/tree-v1.md"))
            .unwrap();
    let dump = hex_lines(&encoded);
    assert!(
        spec.contains(&dump),
        "the spec's §3.5 should show the hashed bytes:\n{dump}"
    );
    assert!(
        spec.contains(&format!("listing digest {digest}")),
        "the spec's §3.5 should give the digest {digest}"
    );
    // The empty tree, which a full tree image applies to.
    let mut empty = b"deltapack tree listing v1\0".to_vec();
    empty.extend_from_slice(&0u64.to_le_bytes());
    let empty_digest = Sha256Digest::of(&empty);
    assert_eq!(Listing::default().id().sha256, empty_digest);
    assert!(
        spec.contains(&format!("empty tree's listing digest is {empty_digest}")),
        "the spec should give the empty tree's digest {empty_digest}"
    );
}

// ---- Generating the vectors (testdata/vectors/tree/make.sh) ----

/// Writes the input trees of `vectors.json` to `$TREE_VECTORS_WORK/{old,new}`.
#[test]
#[ignore = "run by testdata/vectors/tree/make.sh"]
fn write_input_trees() {
    let work = PathBuf::from(std::env::var_os("TREE_VECTORS_WORK").expect("TREE_VECTORS_WORK"));
    let index = index();
    write_tree(&work.join("old"), &index.trees.old);
    write_tree(&work.join("new"), &index.trees.new);
}

/// Index bytes encoded by hand (§4), so that what a valid index cannot hold can be
/// written.
struct Raw(Vec<u8>);

impl Raw {
    fn new(old: u64, new: u64, blobs: u64) -> Raw {
        let mut raw = Raw(Vec::new());
        for n in [old, new, blobs] {
            raw.u64(n);
        }
        raw
    }
    fn u64(&mut self, n: u64) -> &mut Self {
        self.0.extend_from_slice(&n.to_le_bytes());
        self
    }
    fn head(&mut self, kind: u8, mode: u16, path: &str) -> &mut Self {
        self.0.push(kind);
        self.0.extend_from_slice(&mode.to_le_bytes());
        self.0.extend_from_slice(&(path.len() as u16).to_le_bytes());
        self.0.extend_from_slice(path.as_bytes());
        self
    }
    /// A file with `content`, and `recipe` (code and old index) if it is a new entry.
    fn file(&mut self, path: &str, content: &[u8], recipe: Option<(u8, u64)>) -> &mut Self {
        self.head(1, 0o644, path);
        self.u64(content.len() as u64);
        self.0.extend_from_slice(&Sha256Digest::of(content).0);
        if let Some((code, from)) = recipe {
            self.0.push(code);
            self.u64(from);
        }
        self
    }
    fn dir(&mut self, path: &str) -> &mut Self {
        self.head(2, 0o755, path)
    }
    fn link(&mut self, path: &str, target: &str) -> &mut Self {
        self.head(3, 0, path);
        self.0
            .extend_from_slice(&(target.len() as u16).to_le_bytes());
        self.0.extend_from_slice(target.as_bytes());
        self
    }
    /// The tree patch around this index: unsigned, from the empty tree to a tree that
    /// is not the index's (the index is refused before that matters), `apply_memory`
    /// the floor plus four bytes per index byte.
    fn patch(&self) -> Vec<u8> {
        let mut payload = (self.0.len() as u64).to_le_bytes().to_vec();
        payload.extend_from_slice(&self.0);
        let header = TreeHeader::tree(
            None,
            MIN_WINDOW_LOG,
            FileId {
                size: 0,
                sha256: Sha256Digest::of(b"not the index's new tree"),
            },
            FileId {
                size: payload.len() as u64,
                sha256: Sha256Digest::of(&payload),
            },
            BASE_APPLY_MEMORY + 4 * self.0.len() as u64,
        );
        [header.encode().as_slice(), &payload].concat()
    }
}

/// Rewrites the header of a whole patch file after `edit`, recomputing its payload
/// hash and checksum.
fn reseal(bytes: &mut [u8], edit: impl FnOnce(&mut TreeHeader)) {
    let mut header = TreeHeader::decode_tree(&bytes[..HEADER_LEN], bytes.len() as u64).unwrap();
    header.payload.sha256 = Sha256Digest::of(&bytes[HEADER_LEN..]);
    edit(&mut header);
    bytes[..HEADER_LEN].copy_from_slice(&header.encode());
}

/// Writes every hostile vector: indexes made by hand, and edits of `valid.dpatch`
/// (which `make.sh` makes first with `deltapack diff`).
#[test]
#[ignore = "run by testdata/vectors/tree/make.sh"]
fn make_vectors() {
    let out = dir();
    let write = |name: &str, bytes: &[u8]| fs::write(out.join(name), bytes).unwrap();
    // Hostile listings and indexes, each from the empty tree.
    let cases: Vec<(&str, Raw)> = vec![
        ("dot-dot-path.dpatch", {
            let mut r = Raw::new(0, 1, 0);
            r.dir("../escape");
            r
        }),
        ("device-name.dpatch", {
            let mut r = Raw::new(0, 1, 0);
            r.dir("aux.txt");
            r
        }),
        ("case-collision.dpatch", {
            let mut r = Raw::new(0, 2, 0);
            r.dir("Docs").dir("docs");
            r
        }),
        ("duplicate.dpatch", {
            let mut r = Raw::new(0, 2, 0);
            r.dir("docs").dir("docs");
            r
        }),
        ("unsorted.dpatch", {
            let mut r = Raw::new(0, 2, 0);
            r.dir("b").dir("a");
            r
        }),
        ("no-parent.dpatch", {
            let mut r = Raw::new(0, 1, 0);
            r.dir("a/b");
            r
        }),
        ("file-as-directory.dpatch", {
            let mut r = Raw::new(0, 2, 0);
            r.link("x", "y").dir("x/sub");
            r
        }),
        ("link-escape.dpatch", {
            let mut r = Raw::new(0, 2, 0);
            r.dir("lib").link("lib/up", "../../etc/passwd");
            r
        }),
        ("link-absolute.dpatch", {
            let mut r = Raw::new(0, 1, 0);
            r.link("passwd", "/etc/passwd");
            r
        }),
        ("link-through-link.dpatch", {
            let mut r = Raw::new(0, 3, 0);
            r.link("a", "d").link("b", "a/x").dir("d");
            r
        }),
        ("setuid-mode.dpatch", {
            let mut r = Raw::new(0, 1, 0);
            r.head(2, 0o4755, "d");
            r
        }),
        ("link-with-mode.dpatch", {
            let mut r = Raw::new(0, 1, 0);
            r.head(3, 0o777, "l");
            r.0.extend_from_slice(&1u16.to_le_bytes());
            r.0.push(b'x');
            r
        }),
        ("absurd-count.dpatch", Raw::new(u64::MAX, 0, 0)),
        ("count-beyond-index.dpatch", Raw::new(0, MAX_ENTRIES, 0)),
        ("unknown-kind.dpatch", {
            let mut r = Raw::new(0, 1, 0);
            r.head(4, 0o644, "fifo");
            r
        }),
        ("unknown-recipe.dpatch", {
            let mut r = Raw::new(0, 1, 0);
            r.file("a", b"A", Some((9, 0)));
            r
        }),
        ("copy-other-content.dpatch", {
            let mut r = Raw::new(1, 1, 0);
            r.file("a", b"A", None).file("b", b"B", Some((1, 0)));
            r
        }),
        ("recipe-from-directory.dpatch", {
            let mut r = Raw::new(1, 1, 0);
            r.dir("d").file("b", b"B", Some((1, 0)));
            r
        }),
        ("blob-count-mismatch.dpatch", {
            let mut r = Raw::new(0, 1, 1);
            r.dir("d");
            r.u64(0);
            r.0.extend_from_slice(&[0; 32]);
            r
        }),
        ("index-trailing-bytes.dpatch", {
            let mut r = Raw::new(0, 1, 0);
            r.dir("d");
            r.0.push(0);
            r
        }),
    ];
    for (name, raw) in &cases {
        write(name, &raw.patch());
    }

    // Edits of the valid tree patch.
    let valid = fs::read(out.join("valid.dpatch")).expect("make.sh makes valid.dpatch first");
    let index_len_at = HEADER_LEN;
    let index_len = u64::from_le_bytes(valid[index_len_at..index_len_at + 8].try_into().unwrap());
    let index_end = HEADER_LEN + 8 + index_len as usize;
    let blobs = TreePatch::open(&out.join("valid.dpatch"), &limits(), None, &mut |_| {})
        .unwrap()
        .index()
        .blobs
        .len();
    // Blob 0's SHA-256 in the blob table, one bit flipped; payload hash resealed.
    let mut bytes = valid.clone();
    bytes[index_end - 40 * blobs + 8] ^= 1;
    reseal(&mut bytes, |_| {});
    write("blob-hash-wrong.dpatch", &bytes);
    // The header names another new tree than the index lists.
    let mut bytes = valid.clone();
    reseal(&mut bytes, |h| h.target.sha256.0[0] ^= 1);
    write("header-other-tree.dpatch", &bytes);
    // One bit of the index flipped, the header left alone.
    let mut bytes = valid.clone();
    bytes[HEADER_LEN + 8 + 30] ^= 1;
    write("index-bitflip.dpatch", &bytes);
    // index_len larger than the payload.
    let mut bytes = valid.clone();
    let huge = (bytes.len() - HEADER_LEN) as u64;
    bytes[index_len_at..index_len_at + 8].copy_from_slice(&huge.to_le_bytes());
    reseal(&mut bytes, |_| {});
    write("index-len-overrun.dpatch", &bytes);
    // apply_memory below the floor a tree header must declare.
    let mut bytes = valid.clone();
    reseal(&mut bytes, |h| h.apply_memory = BASE_APPLY_MEMORY - 1);
    write("memory-below-floor.dpatch", &bytes);
}
