//! `deltapack inspect PATCH`: show a patch's header and check its signature; for a
//! tree patch, also what its index holds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use deltaapply::tree::{EntryKind, Recipe, TreePatch};
use deltaapply::{Limits, Method, Origin, TrustedKeys};
use deltaapply_cli as cli;

/// Show a patch's header (validated; the payload is not read) and check its signature
/// (against --key if given, else against the key the patch carries). For a tree
/// patch, the payload's hash and index are checked too, and a summary of the index is
/// shown: entries of both trees, recipes, blobs and their methods.
#[derive(clap::Args)]
pub struct Args {
    /// The patch file.
    patch: PathBuf,
    /// Check that the patch is signed by this key: an `ed25519:...` line or a public key
    /// file (repeat for several keys).
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> i32 {
    match cli::flag_keys(&args.keys) {
        Ok(trusted) if is_tree_patch(&args.patch) => {
            inspect_tree(&args.patch, trusted.as_ref(), args.json)
        }
        Ok(trusted) => cli::inspect(&args.patch, trusted.as_ref(), args.json),
        Err(e) => cli::report_error(&e, deltaapply_cli::exit::USAGE, args.json),
    }
}

/// True when `path` opens as a tree patch (anything else, including a file
/// that is not a patch, goes the file patch's way and its errors).
fn is_tree_patch(path: &Path) -> bool {
    matches!(
        deltaapply::AnyPatch::open(path),
        Ok(deltaapply::AnyPatch::Tree(_))
    )
}

/// What a tree patch's index holds.
#[derive(Debug, Default, serde::Serialize)]
struct Summary {
    old: TreeCounts,
    new: TreeCounts,
    recipes: RecipeCounts,
    blobs: BlobCounts,
}

#[derive(Debug, Default, serde::Serialize)]
struct TreeCounts {
    entries: usize,
    files: usize,
    dirs: usize,
    symlinks: usize,
    bytes: u64,
}

#[derive(Debug, Default, serde::Serialize)]
struct RecipeCounts {
    unchanged: usize,
    renamed_or_copied: usize,
    patch: usize,
    full: usize,
}

#[derive(Debug, Default, serde::Serialize)]
struct BlobCounts {
    count: usize,
    bytes: u64,
    bsdiff: usize,
    zstd: usize,
    full: usize,
}

fn counts<R>(listing: &deltaapply::tree::Listing<R>) -> TreeCounts {
    let mut c = TreeCounts {
        entries: listing.entries().len(),
        bytes: listing.total_size(),
        ..TreeCounts::default()
    };
    for e in listing.entries() {
        match e.kind {
            EntryKind::File { .. } => c.files += 1,
            EntryKind::Dir => c.dirs += 1,
            EntryKind::Symlink { .. } => c.symlinks += 1,
        }
    }
    c
}

/// Summarises the index, opening every blob (which checks its hash and header).
fn summarise(patch: &TreePatch) -> Result<Summary, deltaapply::Error> {
    let index = patch.index();
    let mut s = Summary {
        old: counts(&index.old),
        new: counts(&index.new),
        ..Summary::default()
    };
    for entry in index.new.entries() {
        let EntryKind::File { recipe, .. } = entry.kind else {
            continue;
        };
        let source = recipe
            .from()
            .map(|i| &index.old.entries()[i])
            .and_then(|old| old.kind.file().map(|f| (old, f)));
        match recipe {
            Recipe::Copy { .. } if source.is_some_and(|(old, _)| old.path == entry.path) => {
                s.recipes.unchanged += 1
            }
            Recipe::Copy { .. } => s.recipes.renamed_or_copied += 1,
            Recipe::Patch { .. } => s.recipes.patch += 1,
            Recipe::Full { .. } => s.recipes.full += 1,
        }
        if let (Some(k), Some(target)) = (recipe.blob(), entry.kind.file()) {
            let blob = patch.blob(k, source.map(|(_, f)| f), target)?;
            s.blobs.count += 1;
            s.blobs.bytes += index.blobs[k].len;
            match blob.header().method() {
                Method::Bsdiff => s.blobs.bsdiff += 1,
                Method::ZstdRef => s.blobs.zstd += 1,
                Method::Full => s.blobs.full += 1,
            }
        }
    }
    Ok(s)
}

fn inspect_tree(path: &Path, trusted: Option<&TrustedKeys>, json: bool) -> i32 {
    // Inspecting only reads the index: no memory limit is a device's to enforce here.
    let limits = Limits {
        max_apply_memory: u64::MAX,
    };
    let opened = TreePatch::open(path, &limits, trusted, &mut |_| {})
        .and_then(|patch| summarise(&patch).map(|summary| (patch, summary)));
    let (patch, summary) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            let code = deltaapply_cli::exit_code(e.kind());
            return cli::report_error(&e.into(), code, json);
        }
    };
    let printed = if json {
        let mut value = cli::header_json(&cli::HeaderView::of(patch.header()));
        value["origin"] = serde_json::json!(patch.origin());
        value["tree"] = serde_json::json!(summary);
        cli::print_json(&value)
    } else {
        let mut text = cli::header_text(&cli::HeaderView::of(patch.header()));
        let origin = match patch.origin() {
            Origin::Trusted { key_id } => format!("trusted: signed by key {key_id}"),
            Origin::Unverified { .. } => "not verified (no trusted key configured)".into(),
        };
        let mut line = |k: &str, v: String| {
            let _ = writeln!(text, "{k:<14} {v}");
        };
        line("origin", origin);
        let tree = |t: &TreeCounts| {
            format!(
                "{} entries: {} files ({}), {} directories, {} links",
                t.entries,
                t.files,
                cli::human_bytes(t.bytes),
                t.dirs,
                t.symlinks
            )
        };
        line("old tree", tree(&summary.old));
        line("new tree", tree(&summary.new));
        let r = &summary.recipes;
        line(
            "recipes",
            format!(
                "{} unchanged, {} renamed or copied, {} patched, {} full",
                r.unchanged, r.renamed_or_copied, r.patch, r.full
            ),
        );
        let b = &summary.blobs;
        line(
            "blobs",
            format!(
                "{} ({} bytes): {} bsdiff, {} zstd, {} full",
                b.count, b.bytes, b.bsdiff, b.zstd, b.full
            ),
        );
        cli::write_stdout(&text)
    };
    match printed {
        Ok(()) => deltaapply_cli::exit::OK,
        Err(e) => cli::report_error(&e, deltaapply_cli::exit::FAILURE, false),
    }
}
