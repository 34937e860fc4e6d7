//! `deltaapply apply`: apply a patch to a file, writing the result atomically, or a
//! tree patch to a directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use crate as cli;
use anyhow::{Context, bail};
use deltaapply::foreign::Format;
use deltaapply::tree::{TreeApply, TreePatch, TreePhase, apply_tree};
use deltaapply::{AnyPatch, Limits, Origin, PatchKind, Phase, TrustedKeys};

/// Apply a patch: `apply OLD PATCH -o NEW`, or `apply --in-place FILE PATCH`.
///
/// The patch's signature is checked against the trusted keys (--key, else the
/// DELTAAPPLY_KEY environment variable, else keys built into this binary) before
/// anything else is read; the old file's size and SHA-256 are checked before anything
/// is written; the new file is written beside its destination, checked against the
/// patch's SHA-256, synced and renamed into place. On any failure the destination is
/// untouched.
///
/// A tree patch (a whole release directory) applies the same way to directories:
/// `apply OLD_DIR PATCH -o NEW_DIR`, `apply --in-place DIR PATCH`, or `apply PATCH -o
/// NEW_DIR` for a full tree image. In place, an interrupted update is finished by
/// running the same command again.
///
/// Patches in other formats are recognised by their first bytes and applied the same
/// atomic way: BSDIFF40 (bsdiff 4.x, qbsdiff) and zstd frames from `zstd
/// --patch-from=OLD`. They carry no digest of the file they make, so they need
/// --expect-sha256 HEX (or --unverified).
#[derive(clap::Args, Clone)]
pub struct Args {
    /// OLD PATCH (or just PATCH with --in-place, or for a full-image patch).
    #[arg(value_name = "FILE", num_args = 1..=2, required = true)]
    files: Vec<PathBuf>,
    /// Where to write the new file.
    #[arg(short, long, value_name = "NEW", conflicts_with = "in_place")]
    output: Option<PathBuf>,
    /// Update this file in place (atomically: the old file stays until the new one is verified).
    #[arg(long, value_name = "FILE")]
    in_place: Option<PathBuf>,
    /// Refuse patches that need more memory than this to apply (e.g. 32MiB).
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = cli::parse_size)]
    max_memory: u64,
    /// Trust this publisher key: an `ed25519:...` line or a public key file (repeat for
    /// several keys). Overrides DELTAAPPLY_KEY and the built-in keys.
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<String>,
    /// The SHA-256 the new file must have. Required for a patch in a foreign format
    /// (BSDIFF40, zstd frame), which carries none; checked against a deltapack patch's
    /// header before anything is written.
    #[arg(long, value_name = "HEX", value_parser = super::foreign::parse_sha256)]
    expect_sha256: Option<deltaapply::Sha256Digest>,
    /// The size the new file must have (bounds a zstd frame that declares none).
    #[arg(long, value_name = "BYTES", value_parser = cli::parse_size)]
    expect_size: Option<u64>,
    /// Install what a foreign patch produces without --expect-sha256 (prints a warning).
    #[arg(long, conflicts_with = "expect_sha256")]
    unverified: bool,
    /// If another deltaapply is updating the same target, wait up to this many seconds
    /// for it to finish instead of failing at once (exit 10).
    #[arg(long, value_name = "SECONDS")]
    wait: Option<u64>,
    /// Print the result as one line of JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> i32 {
    let json = args.json;
    let paths = match resolve_paths(&args) {
        Ok(p) => p,
        Err(e) => return cli::report_error(&e, crate::exit::USAGE, json),
    };
    let trusted = match cli::trusted_keys(&args.keys) {
        Ok(t) => t.map(|(keys, _)| keys),
        Err(e) => return cli::report_error(&e, crate::exit::USAGE, json),
    };
    let busy = |e: &anyhow::Error| super::exit_code(e) == crate::exit::BUSY;
    match cli::until_not_busy(args.wait, busy, || {
        apply(args.clone(), paths.clone(), trusted.as_ref())
    }) {
        Ok(()) => 0,
        Err(e) => {
            let code = super::exit_code(&e);
            cli::report_error(&e, code, json)
        }
    }
}

/// (old file, patch, destination) from the arguments.
type Paths = (Option<PathBuf>, PathBuf, PathBuf);

fn resolve_paths(args: &Args) -> anyhow::Result<Paths> {
    Ok(
        match (&args.in_place, &args.output, args.files.as_slice()) {
            (Some(file), None, [patch]) => (Some(file.clone()), patch.clone(), file.clone()),
            (Some(_), None, _) => bail!("with --in-place FILE, give only the PATCH"),
            (None, Some(out), [old, patch]) => (Some(old.clone()), patch.clone(), out.clone()),
            (None, Some(out), [patch]) => (None, patch.clone(), out.clone()),
            (None, None, _) => bail!("say where to write the result: -o NEW, or --in-place FILE"),
            _ => bail!("expected OLD PATCH -o NEW, or --in-place FILE PATCH"),
        },
    )
}

fn apply(args: Args, paths: Paths, trusted: Option<&TrustedKeys>) -> anyhow::Result<()> {
    match super::foreign::detect(&paths.1) {
        Some(Format::Deltapack) | None => {}
        Some(format) => return apply_foreign(&args, paths, format),
    }
    if let Some(expected) = args.expect_sha256 {
        check_expected(&paths.1, expected, args.expect_size)?;
    }
    // A patch that does not even open is reported by the file apply, as before.
    let is_tree = matches!(AnyPatch::open(&paths.1), Ok(AnyPatch::Tree(_)));
    if is_tree {
        apply_tree_patch(&args, paths, trusted)
    } else {
        apply_file(args, paths, trusted)
    }
}

fn apply_tree_patch(
    args: &Args,
    (old, patch_path, dest): Paths,
    trusted: Option<&TrustedKeys>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let limits = Limits {
        max_apply_memory: args.max_memory,
    };
    let bar = cli::Bar::bytes(!args.json);
    let patch = TreePatch::open(&patch_path, &limits, trusted, &mut |p| {
        bar.set("checking patch", p.done, p.total);
    });
    bar.finish();
    let patch = patch?;
    if let Origin::Unverified { signed_by } = patch.origin() {
        eprintln!("{}", cli::unverified_warning(&patch_path, signed_by));
    }
    let substitutes = BTreeMap::new();
    let req = TreeApply {
        patch: &patch,
        old: old.as_deref(),
        dest: &dest,
        substitutes: &substitutes,
        limits,
        replace_unlisted: false,
        drop: None,
    };
    let bar = cli::Bar::count(!args.json, "files");
    let result = apply_tree(&req, &mut |p| {
        bar.set(
            match p.phase {
                TreePhase::Stage => "making files",
                TreePhase::Commit => "committing",
            },
            p.done,
            p.total,
        );
    });
    bar.finish();
    let report = result?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["ok"] = true.into();
        value["method"] = serde_json::to_value(PatchKind::Tree)?;
        value["seconds"] = seconds.into();
        cli::print_json(&value)?;
    } else {
        let origin = match report.origin {
            Origin::Trusted { key_id } => format!(", signed by trusted key {key_id}"),
            Origin::Unverified { .. } => String::new(),
        };
        let how = if report.up_to_date {
            "nothing to do:"
        } else if report.resumed {
            "finished the interrupted update of"
        } else if report.in_place {
            "updated"
        } else {
            "wrote"
        };
        cli::output::info(format_args!(
            "{how} {} (tree sha256 {}): {} files written ({} patched, {} unpacked, {} copied, {} substituted, {} bytes), {} unchanged, {} removed, in {seconds:.2} s{origin}",
            report.dest.display(),
            report.target.sha256,
            report.written,
            report.patched,
            report.full,
            report.copied,
            report.substituted,
            report.bytes,
            report.unchanged,
            report.deleted,
        ));
    }
    Ok(())
}

fn apply_file(
    args: Args,
    (old, patch, dest): Paths,
    trusted: Option<&TrustedKeys>,
) -> anyhow::Result<()> {
    let (old, dest) = if args.in_place.is_some() {
        // Follow a symlink so the file it points to is replaced, not the link.
        let file = std::fs::canonicalize(&dest)
            .with_context(|| format!("cannot open {}", dest.display()))?;
        (Some(file.clone()), file)
    } else {
        (old, dest)
    };
    let started = Instant::now();
    let bar = cli::Bar::bytes(!args.json);
    let limits = Limits {
        max_apply_memory: args.max_memory,
    };
    let mut phase = None;
    let result =
        deltaapply::apply_file(old.as_deref(), &patch, &dest, &limits, trusted, &mut |p| {
            let msg = match p.phase {
                Phase::CheckSource => "checking old file",
                Phase::CheckPayload => "checking patch",
                Phase::Write => "writing",
            };
            if phase != Some(p.phase) {
                phase = Some(p.phase);
                cli::output::step(format_args!("{msg} ({} bytes)", p.total));
            }
            bar.set(msg, p.done, p.total);
        });
    bar.finish();
    let report = result?;
    let seconds = started.elapsed().as_secs_f64();
    if let Origin::Unverified { signed_by } = report.origin {
        eprintln!("{}", cli::unverified_warning(&patch, signed_by));
    }
    if args.json {
        cli::print_json(&serde_json::json!({
            "ok": true,
            "format": Format::Deltapack,
            "method": report.method,
            "source": report.source,
            "target": report.target,
            "output": report.dest,
            "origin": report.origin,
            "seconds": seconds,
        }))?;
    } else {
        let origin = match report.origin {
            Origin::Trusted { key_id } => format!(", signed by trusted key {key_id}"),
            Origin::Unverified { .. } => String::new(),
        };
        cli::output::info(format_args!(
            "wrote {} ({} bytes, sha256 {}) from a deltapack patch with the {} method in {seconds:.2} s{origin}",
            report.dest.display(),
            report.target.size,
            report.target.sha256,
            report.method,
        ));
    }
    Ok(())
}

/// A foreign patch: `--in-place` and `-o` as for ours, the rest in `foreign.rs`.
fn apply_foreign(args: &Args, (old, patch, dest): Paths, format: Format) -> anyhow::Result<()> {
    let (old, dest) = if args.in_place.is_some() {
        let file = std::fs::canonicalize(&dest)
            .with_context(|| format!("cannot open {}", dest.display()))?;
        (Some(file.clone()), file)
    } else {
        (old, dest)
    };
    let req = super::foreign::Request {
        old,
        patch,
        dest,
        expect_sha256: args.expect_sha256,
        expect_size: args.expect_size,
        unverified: args.unverified,
        max_memory: args.max_memory,
        json: args.json,
    };
    super::foreign::apply(req, format)
}

/// `--expect-sha256` (and `--expect-size`) with a deltapack patch: its header says what
/// it makes, which must be that, before anything is read or written.
fn check_expected(
    patch: &std::path::Path,
    sha256: deltaapply::Sha256Digest,
    size: Option<u64>,
) -> anyhow::Result<()> {
    // A patch that does not open is reported by the apply itself.
    let Ok(p) = deltaapply::Patch::open(patch) else {
        return Ok(());
    };
    let target = p.header().target;
    if target.sha256 != sha256 || size.is_some_and(|s| s != target.size) {
        return Err(super::foreign::Refused::NotExpected(format!(
            "{} makes a file of {} bytes with sha256 {}, not the one --expect-sha256 and \
             --expect-size name; nothing was written",
            patch.display(),
            target.size,
            target.sha256
        ))
        .into());
    }
    Ok(())
}
