//! Choosing how each file of a new release tree is made from an old one, and writing
//! the tree patch. Unchanged files, renames and copies cost no blob; a changed file is
//! a per-file patch against the old file at its path (or the one old file with its
//! name elsewhere) when that is smaller than the file in full, else the full file.
//! Directories, links and modes travel in the listing alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use deltaapply::tree::{Entry, EntryKind, Listing, Recipe, TreeIndex};
use deltaapply::{Method, Sha256Digest, TreeHeader};

use crate::keys::SecretKey;
use crate::tree::scan::{ScannedTree, TreeScanError, scan_tree};
use crate::{DiffError, MethodChoice, Settings, make_one, make_patch};

/// A finished tree patch and what went into it.
#[derive(Debug, Clone)]
pub struct TreeDiff {
    /// The whole patch file: the header (296 bytes), then the payload.
    pub bytes: Vec<u8>,
    /// Its header (signed when a key was given).
    pub header: TreeHeader,
    /// What each file of the new tree cost.
    pub stats: TreeStats,
}

/// A number of files and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FileStats {
    /// How many files.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
}

/// Files shipped as blobs: how many, their size, and the size of their blobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShippedStats {
    /// How many files.
    pub files: u64,
    /// Their total size in the new tree.
    pub bytes: u64,
    /// The total size of their blobs in the patch.
    pub blob_bytes: u64,
}

/// How the files of the new tree are made, with counts and bytes per recipe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TreeStats {
    /// Files copied from the same path with the same content.
    pub unchanged: FileStats,
    /// Files copied from another path of the old tree (renamed or copied).
    pub renamed_or_copied: FileStats,
    /// Files patched with the bsdiff method.
    pub bsdiff: ShippedStats,
    /// Files patched with the zstd method.
    pub zstd: ShippedStats,
    /// Files shipped in full.
    pub full: ShippedStats,
    /// Old files whose path holds no file in the new tree (their old sizes).
    pub deleted: FileStats,
    /// Directories in the new tree.
    pub new_dirs: u64,
    /// Symbolic links in the new tree.
    pub new_symlinks: u64,
    /// Regular files and their bytes in the new tree.
    pub new_tree: FileStats,
    /// Regular files and their bytes in the old tree.
    pub old_tree: FileStats,
}

/// Why no tree patch could be made.
#[derive(Debug, thiserror::Error)]
pub enum TreeDiffError {
    /// One of the trees could not be read or is not a valid release tree.
    #[error(transparent)]
    Scan(#[from] TreeScanError),
    /// A file could not be read for diffing.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file changed between scanning and diffing.
    #[error("{} changed while the tree was being diffed: diff a tree nothing is writing to", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// No per-file patch or full image could be made for a file.
    #[error("cannot make a patch for {}", path.display())]
    Diff {
        /// The new file.
        path: PathBuf,
        /// Why.
        #[source]
        source: DiffError,
    },
}

impl TreeDiffError {
    /// True when a file failed only for the memory budget (exit code 5 at the command
    /// line).
    pub fn is_over_budget(&self) -> bool {
        matches!(self, TreeDiffError::Diff { source, .. } if source.is_over_budget())
    }
}

/// Makes the tree patch from the directory `old` (`None`: the empty tree, which gives
/// the full tree image) to the directory `new`, signed with `key` if given. Per-file
/// patches use the `auto` method within `settings`' memory budget; files are diffed
/// on up to `settings.threads` threads, and the bytes do not depend on it.
pub fn diff_trees(
    old: Option<&Path>,
    new: &Path,
    settings: &Settings,
    key: Option<&SecretKey>,
) -> Result<TreeDiff, TreeDiffError> {
    let old = old.map(scan_tree).transpose()?;
    let new = scan_tree(new)?;
    let empty = Listing::default();
    let old_listing = old.as_ref().map_or(&empty, ScannedTree::listing);
    let plan = plan(old_listing, new.listing());

    let jobs: Vec<Job> = plan
        .iter()
        .enumerate()
        .filter_map(|(new_index, p)| match p {
            Planned::Make { base } => Some(Job {
                new_index,
                base: *base,
                size: new.listing().entries()[new_index]
                    .kind
                    .file()
                    .map_or(0, |f| f.size),
            }),
            _ => None,
        })
        .collect();
    // Files are diffed side by side, each with its share of the threads; a patch does
    // not depend on its thread count, so neither does the tree patch.
    let workers = settings.threads.clamp(1, jobs.len().max(1));
    let per_file = Settings {
        threads: (settings.threads / workers).max(1),
        ..settings.clone()
    };
    let made = run_jobs(&jobs, workers, |job| {
        make_file(old.as_ref(), &new, job.new_index, job.base, &per_file)
    })?;

    let mut stats = TreeStats {
        old_tree: FileStats {
            files: old_listing.file_count() as u64,
            bytes: old_listing.total_size(),
        },
        new_tree: FileStats {
            files: new.listing().file_count() as u64,
            bytes: new.listing().total_size(),
        },
        ..TreeStats::default()
    };
    let mut made = made.into_iter();
    let mut blobs = Vec::new();
    // One recipe per file, in the listing's order.
    let mut recipes = Vec::with_capacity(plan.len());
    for (entry, planned) in new.listing().entries().iter().zip(plan) {
        let size = entry.kind.file().map_or(0, |f| f.size);
        let add = |s: &mut FileStats| {
            s.files += 1;
            s.bytes += size;
        };
        let recipe = match planned {
            Planned::NotAFile => {
                match entry.kind {
                    EntryKind::Dir => stats.new_dirs += 1,
                    _ => stats.new_symlinks += 1,
                }
                continue;
            }
            Planned::Unchanged { from } => {
                add(&mut stats.unchanged);
                Recipe::Copy { from }
            }
            Planned::Moved { from } => {
                add(&mut stats.renamed_or_copied);
                Recipe::Copy { from }
            }
            Planned::Make { base } => {
                let (method, bytes) = made.next().expect("one result per job");
                let shipped = match method {
                    Method::Bsdiff => &mut stats.bsdiff,
                    Method::ZstdRef => &mut stats.zstd,
                    _ => &mut stats.full,
                };
                shipped.files += 1;
                shipped.bytes += size;
                shipped.blob_bytes += bytes.len() as u64;
                let blob = blobs.len();
                blobs.push(bytes);
                match (method, base) {
                    (Method::Full, _) | (_, None) => Recipe::Full { blob },
                    (_, Some(from)) => Recipe::Patch { from, blob },
                }
            }
        };
        recipes.push(recipe);
    }
    let mut recipes = recipes.into_iter();
    for entry in old_listing.entries() {
        if let Some(f) = entry.kind.file()
            && new
                .listing()
                .get(&entry.path)
                .is_none_or(|e| e.kind.file().is_none())
        {
            stats.deleted.files += 1;
            stats.deleted.bytes += f.size;
        }
    }

    let index = TreeIndex {
        old: old_listing.clone(),
        new: new
            .listing()
            .with_recipes(|_, _| recipes.next().expect("the plan has a recipe per file")),
        blobs: Vec::new(),
    };
    let (mut header, payload) = index.assemble(&blobs);
    if let Some(key) = key {
        key.sign_header(&mut header);
    }
    let mut bytes = Vec::with_capacity(deltaapply::container::HEADER_LEN + payload.len());
    bytes.extend_from_slice(&header.encode());
    bytes.extend_from_slice(&payload);
    Ok(TreeDiff {
        bytes,
        header,
        stats,
    })
}

/// What the plan says about one entry of the new tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planned {
    /// A directory or a link: the listing carries it.
    NotAFile,
    /// The old entry at the same path has the same content.
    Unchanged { from: usize },
    /// Another old entry has the same content.
    Moved { from: usize },
    /// A blob: a patch against `base` if it is smaller than the full file.
    Make { base: Option<usize> },
}

/// Chooses, from the listings alone, how each new entry is made.
fn plan(old: &Listing, new: &Listing) -> Vec<Planned> {
    let mut by_content: BTreeMap<(u64, Sha256Digest), Vec<usize>> = BTreeMap::new();
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, entry) in old.entries().iter().enumerate() {
        if let Some(f) = entry.kind.file() {
            // Entries are in path order, so each list is too: its first is the lowest.
            by_content.entry((f.size, f.sha256)).or_default().push(i);
            by_name.entry(file_name(entry)).or_default().push(i);
        }
    }
    new.entries()
        .iter()
        .map(|entry| {
            let Some(f) = entry.kind.file() else {
                return Planned::NotAFile;
            };
            let at_path = old
                .position(&entry.path)
                .filter(|&i| old.entries()[i].kind.file().is_some());
            if let Some(i) = at_path
                && old.entries()[i].kind.file() == Some(f)
            {
                return Planned::Unchanged { from: i };
            }
            if let Some(same) = by_content.get(&(f.size, f.sha256)) {
                let name = file_name(entry);
                let from = same
                    .iter()
                    .copied()
                    .find(|&i| file_name(&old.entries()[i]) == name)
                    .unwrap_or(same[0]);
                return Planned::Moved { from };
            }
            let base = at_path.or_else(|| match by_name.get(file_name(entry)) {
                Some(only) if only.len() == 1 => Some(only[0]),
                _ => None,
            });
            // An empty old file gives a delta nothing to refer to.
            let base = base.filter(|&i| old.entries()[i].kind.file().is_some_and(|f| f.size > 0));
            Planned::Make { base }
        })
        .collect()
}

fn file_name(entry: &Entry) -> &str {
    entry.path.components().last().unwrap_or_default()
}

/// One file to make a blob for.
#[derive(Debug, Clone, Copy)]
struct Job {
    /// Index of the file in the new listing.
    new_index: usize,
    /// Index of the old file to patch against, if any.
    base: Option<usize>,
    /// The new file's size, to start the biggest first.
    size: u64,
}

/// Runs `make` for every job on `workers` threads, biggest files first (so one large
/// file does not start last), and returns the results in job order. After a failure no
/// new job starts, and the error of the earliest failed job in job order is returned.
fn run_jobs<T: Send>(
    jobs: &[Job],
    workers: usize,
    make: impl Fn(Job) -> Result<T, TreeDiffError> + Sync,
) -> Result<Vec<T>, TreeDiffError> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(jobs[k].size));
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<Result<T, TreeDiffError>>> = Vec::new();
    slots.resize_with(jobs.len(), || None);
    let slots = Mutex::new(slots);
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, jobs.len().max(1)) {
            s.spawn(|| {
                while let Some(&k) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let result = make(jobs[k]);
                    let failed = result.is_err();
                    slots.lock().expect("no worker panics holding the lock")[k] = Some(result);
                    if failed {
                        // Stop handing out work; running jobs finish.
                        next.store(jobs.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let slots = slots.into_inner().expect("no worker panicked");
    // After a failure some slots stay empty; the failure itself is among the rest.
    let out = slots.into_iter().flatten().collect::<Result<Vec<T>, _>>()?;
    assert_eq!(out.len(), jobs.len(), "every job ran when none failed");
    Ok(out)
}

/// Makes the blob for new entry `new_index`: the per-file patch against old entry
/// `base` when it is smaller than the full container, else the full container.
/// Returns its method and bytes.
fn make_file(
    old: Option<&ScannedTree>,
    new: &ScannedTree,
    new_index: usize,
    base: Option<usize>,
    settings: &Settings,
) -> Result<(Method, Vec<u8>), TreeDiffError> {
    let entry = &new.listing().entries()[new_index];
    let path = new.disk_path(entry);
    let new_bytes = read_checked(new, entry)?;
    let failed = |source| TreeDiffError::Diff {
        path: path.clone(),
        source,
    };
    let full = || make_one(Method::Full, &[], &new_bytes, settings).map_err(failed);
    let Some((old, base)) = old.zip(base) else {
        return Ok((Method::Full, full()?));
    };
    let old_bytes = read_checked(old, &old.listing().entries()[base])?;
    let made = make_patch(&old_bytes, &new_bytes, MethodChoice::Auto, settings).map_err(failed)?;
    if made.method == Method::Full {
        return Ok((Method::Full, made.bytes));
    }
    // `auto` keeps the earlier method on a tie; a tree ships a delta only when it is
    // strictly smaller than the file in full.
    let full_size = made
        .candidates
        .iter()
        .find(|c| c.method == Method::Full)
        .and_then(|c| c.size);
    if full_size.is_some_and(|f| f <= made.bytes.len() as u64) {
        return Ok((Method::Full, full()?));
    }
    Ok((made.method, made.bytes))
}

/// Reads the file of `entry`, checking it still has the size and hash scanned.
fn read_checked(tree: &ScannedTree, entry: &Entry) -> Result<Vec<u8>, TreeDiffError> {
    let path = tree.disk_path(entry);
    let bytes = std::fs::read(&path).map_err(|source| TreeDiffError::Read {
        path: path.clone(),
        source,
    })?;
    let expected = entry.kind.file().expect("only files are read");
    if bytes.len() as u64 != expected.size || Sha256Digest::of(&bytes) != expected.sha256 {
        return Err(TreeDiffError::Changed { path });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltaapply::tree::TreePatch;
    use std::fs;

    /// Bytes that compress badly, so a delta clearly beats the full file.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn write(root: &Path, rel: &str, bytes: &[u8]) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn settings(threads: usize) -> Settings {
        Settings {
            level: 3,
            threads,
            ..Settings::default()
        }
    }

    /// Opens the patch as the applier would and returns each new path with its recipe
    /// and, for a blob, the blob's method.
    fn recipes(made: &TreeDiff) -> Vec<(String, Option<Recipe>, Option<Method>)> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tree.dpatch");
        fs::write(&file, &made.bytes).unwrap();
        let patch = TreePatch::open(&file, &Default::default(), None, &mut |_| {}).unwrap();
        assert_eq!(patch.header(), &made.header);
        let index = patch.index();
        index
            .new
            .entries()
            .iter()
            .map(|e| {
                let r = match e.kind {
                    EntryKind::File { recipe, .. } => Some(recipe),
                    _ => None,
                };
                let method = r.and_then(Recipe::blob).map(|k| {
                    let source = r
                        .and_then(Recipe::from)
                        .map(|i| index.old.entries()[i].kind.file().unwrap());
                    patch
                        .blob(k, source, e.kind.file().unwrap())
                        .unwrap()
                        .header()
                        .method()
                });
                (e.path.to_string(), r, method)
            })
            .collect()
    }

    fn old_index(made: &TreeDiff, path: &str) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tree.dpatch");
        fs::write(&file, &made.bytes).unwrap();
        let patch = TreePatch::open(&file, &Default::default(), None, &mut |_| {}).unwrap();
        let path = deltaapply::tree::TreePath::new(path).unwrap();
        patch.index().old.position(&path).unwrap()
    }

    /// An old and a new release with one of everything.
    fn release_pair() -> (tempfile::TempDir, tempfile::TempDir) {
        let (old, new) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (o, n) = (old.path(), new.path());
        let app = noise(40_000, 1);
        let mut app2 = app.clone();
        app2[1000..1010].copy_from_slice(b"version 2!");
        write(o, "bin/app", &app);
        write(n, "bin/app", &app2);
        write(o, "same.txt", b"unchanged");
        write(n, "same.txt", b"unchanged");
        write(o, "old-name.dat", &noise(5000, 2));
        write(n, "new-name.dat", &noise(5000, 2));
        write(o, "lib/shared.so", &noise(3000, 3));
        write(n, "lib/shared.so", &noise(3000, 3));
        write(n, "lib64/shared.so", &noise(3000, 3));
        let plugin = noise(20_000, 4);
        let mut plugin2 = plugin.clone();
        plugin2.extend_from_slice(b"more");
        write(o, "plugins/a/plugin.so", &plugin);
        write(n, "plugins/b/plugin.so", &plugin2);
        write(o, "mode.sh", b"#!/bin/sh\n");
        write(n, "mode.sh", b"#!/bin/sh\n");
        write(o, "gone.txt", b"deleted");
        write(n, "fresh.txt", &noise(100, 5));
        fs::create_dir(n.join("empty")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(n.join("mode.sh"), fs::Permissions::from_mode(0o755)).unwrap();
            std::os::unix::fs::symlink("bin/app", n.join("app")).unwrap();
        }
        (old, new)
    }

    #[test]
    fn each_file_gets_the_cheapest_recipe() {
        let (old, new) = release_pair();
        let made = diff_trees(Some(old.path()), new.path(), &settings(2), None).unwrap();
        let got = recipes(&made);
        let find = |p: &str| got.iter().find(|(path, ..)| path == p).unwrap().clone();
        let from = |p: &str| old_index(&made, p);

        assert_eq!(
            find("same.txt").1,
            Some(Recipe::Copy {
                from: from("same.txt")
            })
        );
        assert_eq!(
            find("new-name.dat").1,
            Some(Recipe::Copy {
                from: from("old-name.dat")
            })
        );
        // A copy prefers the old file with the same name.
        assert_eq!(
            find("lib/shared.so").1,
            Some(Recipe::Copy {
                from: from("lib/shared.so")
            })
        );
        assert_eq!(
            find("lib64/shared.so").1,
            Some(Recipe::Copy {
                from: from("lib/shared.so")
            })
        );
        // A mode change alone ships no blob.
        assert_eq!(
            find("mode.sh").1,
            Some(Recipe::Copy {
                from: from("mode.sh")
            })
        );
        let (_, app, method) = find("bin/app");
        assert!(
            matches!(app, Some(Recipe::Patch { from, .. }) if from == old_index(&made, "bin/app"))
        );
        assert!(
            matches!(method, Some(Method::Bsdiff | Method::ZstdRef)),
            "{method:?}"
        );
        // Moved and changed: patched against the one old file with its name.
        let (_, plugin, _) = find("plugins/b/plugin.so");
        assert!(
            matches!(plugin, Some(Recipe::Patch { from, .. }) if from == old_index(&made, "plugins/a/plugin.so")),
            "{plugin:?}"
        );
        assert!(matches!(find("fresh.txt").1, Some(Recipe::Full { .. })));
        assert_eq!(find("empty").1, None);
        assert_eq!(find("plugins/b").1, None);

        let s = made.stats;
        assert_eq!(
            s.unchanged,
            FileStats {
                files: 3,
                bytes: 9 + 3000 + 10
            }
        );
        assert_eq!(
            s.renamed_or_copied,
            FileStats {
                files: 2,
                bytes: 5000 + 3000
            }
        );
        assert_eq!(s.bsdiff.files + s.zstd.files, 2);
        assert_eq!(s.full.files, 1);
        assert_eq!(s.full.bytes, 100);
        // old-name.dat, plugins/a/plugin.so and gone.txt have no file at their path.
        assert_eq!(
            s.deleted,
            FileStats {
                files: 3,
                bytes: 5000 + 20_000 + 7
            }
        );
        assert_eq!(s.new_tree.files, 8);
        assert!(made.bytes.len() < 10_000, "{} bytes", made.bytes.len());
        #[cfg(unix)]
        {
            assert_eq!(s.new_symlinks, 1);
            let link = made_listing_entry(&made, "app");
            assert_eq!(
                link.kind,
                EntryKind::Symlink {
                    target: "bin/app".into()
                }
            );
            assert_eq!(made_listing_entry(&made, "mode.sh").mode, 0o755);
        }
        // bin, empty, lib, lib64, plugins, plugins/b.
        assert_eq!(s.new_dirs, 6);
        assert_eq!(
            made.header.source(),
            Some(scan_tree(old.path()).unwrap().listing().id())
        );
        assert_eq!(
            made.header.target,
            scan_tree(new.path()).unwrap().listing().id()
        );
    }

    fn made_listing_entry(made: &TreeDiff, path: &str) -> Entry<Recipe> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tree.dpatch");
        fs::write(&file, &made.bytes).unwrap();
        let patch = TreePatch::open(&file, &Default::default(), None, &mut |_| {}).unwrap();
        let path = deltaapply::tree::TreePath::new(path).unwrap();
        patch.index().new.get(&path).unwrap().clone()
    }

    #[test]
    fn copies_prefer_the_same_name_then_the_lowest_path() {
        let (old, new) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (o, n) = (old.path(), new.path());
        let shared = noise(2000, 9);
        write(o, "a/x.bin", &shared);
        write(o, "b/y.bin", &shared);
        write(o, "c/y.bin", &shared);
        write(n, "d/y.bin", &shared);
        write(n, "d/z.bin", &shared);
        // Two old files named plugin.so: neither is a base for a moved, changed one.
        write(o, "p1/plugin.so", &noise(4000, 10));
        write(o, "p2/plugin.so", &noise(4000, 11));
        let mut changed = noise(4000, 10);
        changed[10] ^= 1;
        write(n, "p3/plugin.so", &changed);
        let made = diff_trees(Some(o), n, &settings(1), None).unwrap();
        let got = recipes(&made);
        let find = |p: &str| got.iter().find(|(path, ..)| path == p).unwrap().1;
        assert_eq!(
            find("d/y.bin"),
            Some(Recipe::Copy {
                from: old_index(&made, "b/y.bin")
            })
        );
        assert_eq!(
            find("d/z.bin"),
            Some(Recipe::Copy {
                from: old_index(&made, "a/x.bin")
            })
        );
        assert!(matches!(find("p3/plugin.so"), Some(Recipe::Full { .. })));
    }

    #[test]
    fn nothing_unchanged_is_shipped() {
        let (old, _) = release_pair();
        let made = diff_trees(Some(old.path()), old.path(), &settings(2), None).unwrap();
        assert!(
            recipes(&made)
                .iter()
                .all(|(_, r, _)| !matches!(r, Some(Recipe::Patch { .. } | Recipe::Full { .. })))
        );
        assert_eq!(
            made.stats.full.files + made.stats.bsdiff.files + made.stats.zstd.files,
            0
        );
        assert_eq!(
            made.header.source().map(|s| s.sha256),
            Some(made.header.target.sha256)
        );
    }

    #[test]
    fn the_same_bytes_whatever_the_threads() {
        let (old, new) = release_pair();
        let one = diff_trees(Some(old.path()), new.path(), &settings(1), None).unwrap();
        for threads in [2, 3, 8] {
            let many = diff_trees(Some(old.path()), new.path(), &settings(threads), None).unwrap();
            assert!(
                one.bytes == many.bytes,
                "{threads} threads gave other bytes"
            );
        }
    }

    #[test]
    fn no_old_tree_makes_the_full_image() {
        let (_, new) = release_pair();
        let made = diff_trees(None, new.path(), &settings(2), None).unwrap();
        assert_eq!(made.header.source(), None);
        assert_eq!(made.bytes[12], 4, "the method byte of a tree patch");
        let got = recipes(&made);
        let files: Vec<_> = got.iter().filter(|(_, r, _)| r.is_some()).collect();
        assert_eq!(files.len(), 8);
        assert!(files.iter().all(|(_, r, m)| matches!(r, Some(Recipe::Full { .. })) && *m == Some(Method::Full)));
        assert_eq!(made.stats.full.files, 8);
        assert_eq!(made.stats.deleted, FileStats::default());
    }

    #[test]
    fn a_signed_tree_patch_verifies_with_its_key() {
        let (old, new) = release_pair();
        let key = SecretKey::from_seed(&[7; 32]);
        let made = diff_trees(Some(old.path()), new.path(), &settings(2), Some(&key)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tree.dpatch");
        fs::write(&file, &made.bytes).unwrap();
        let trusted = deltaapply::TrustedKeys::new(vec![key.public_key()], 1).unwrap();
        let patch =
            TreePatch::open(&file, &Default::default(), Some(&trusted), &mut |_| {}).unwrap();
        assert!(matches!(patch.origin(), deltaapply::Origin::Trusted { .. }));
        // The blobs are unsigned: the signed header covers them through the payload hash.
        let other =
            deltaapply::TrustedKeys::new(vec![SecretKey::from_seed(&[8; 32]).public_key()], 1)
                .unwrap();
        assert!(TreePatch::open(&file, &Default::default(), Some(&other), &mut |_| {}).is_err());
    }

    #[test]
    fn a_file_that_changes_after_the_scan_is_caught() {
        let (old, new) = release_pair();
        let scanned = scan_tree(new.path()).unwrap();
        let entry = scanned
            .listing()
            .entries()
            .iter()
            .find(|e| e.path.as_str() == "fresh.txt")
            .unwrap();
        fs::write(new.path().join("fresh.txt"), b"rewritten").unwrap();
        let err = read_checked(&scanned, entry).unwrap_err();
        assert!(matches!(err, TreeDiffError::Changed { .. }), "{err}");
        assert!(err.to_string().contains("fresh.txt"), "{err}");
        drop(old);
    }
}
