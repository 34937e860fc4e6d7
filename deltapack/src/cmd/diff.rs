//! `deltapack diff OLD NEW -o PATCH`: make one patch, between two files or (a tree
//! patch) between two directories.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use deltaapply::{Method, PatchKind};
use deltaapply_cli as cli;
use deltapack::formats::PatchFormat;
use deltapack::keys::SecretKey;
use deltapack::tree::TreeDiffError;
use deltapack::{DiffError, MethodChoice, Settings, make_patch};

/// Make a patch from OLD to NEW: two files, or two directories (a tree patch).
///
/// With two directories, every file of NEW is made from OLD the cheapest way: copied
/// when its content is in OLD (unchanged, renamed or copied), else patched against the
/// OLD file at its path (or the one OLD file with its name) with the auto method when
/// that is smaller than the file in full, else shipped in full. Directories, links
/// and permission bits travel in the patch's listing. Links are not followed.
#[derive(clap::Args)]
pub struct Args {
    /// The file (or release directory) users have.
    old: PathBuf,
    /// The file (or release directory) they should get.
    new: PathBuf,
    /// Where to write the patch.
    #[arg(short, long, value_name = "PATCH")]
    output: PathBuf,
    /// auto (try all, keep the smallest that fits --max-apply-memory), bsdiff, zstd or full.
    /// Tree patches choose per file and accept only auto.
    #[arg(long, default_value = "auto", value_parser = parse_choice)]
    method: Choice,
    /// The bsdiff method's executable transform (branch and call targets of x86 code
    /// made absolute, format-spec/patch-v1.md §5.2.6): auto (used when OLD or NEW is
    /// an x86 ELF, PE or Mach-O file and the patch comes out smaller), none, x86
    /// (call targets, used whenever such a file is recognised) or x86-branches (calls,
    /// jumps and conditional jumps).
    #[arg(
        long,
        default_value = "auto",
        value_name = "auto|none|x86|x86-branches"
    )]
    transform: deltapack::exe::TransformChoice,
    /// zstd compression level, 1 to 22.
    #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(1..=22))]
    level: i32,
    /// Threads to use (default: all cores). The patch does not depend on it.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
    /// Memory the device may use to apply the patch (e.g. 32MiB, 1GiB).
    #[arg(long, value_name = "SIZE", default_value = "32MiB", value_parser = cli::parse_size)]
    max_apply_memory: u64,
    /// Sign the patch: --secret-key FILE (PKCS#8 PEM, from `deltapack keygen`),
    /// --key-env VAR or --key-fd N.
    #[command(flatten)]
    key: super::keysrc::OneKey,
    /// The patch's format: deltapack (our container), bsdiff40 (bsdiff 4.x, for
    /// devices with only `bspatch`) or vcdiff (RFC 3284, for `xdelta3 -d`); the last
    /// two have no signature and no digests, and --method does not apply.
    #[arg(long, default_value = "deltapack")]
    format: PatchFormat,
    /// With --format vcdiff: compress the sections with LZMA as xdelta3 does (lzma,
    /// applied by `xdelta3 -d` and `deltaapply`), or not (none, for VCDIFF decoders
    /// without LZMA, such as open-vcdiff).
    #[arg(long, value_name = "none|lzma", default_value = "lzma")]
    vcdiff_secondary: deltapack::formats::vcdiff::Secondary,
    /// Print the result as one line of JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// What `--method` asks for: a file method (or auto), or `tree`, which only names what
/// diffing two directories makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    File(MethodChoice),
    Tree,
}

fn parse_choice(s: &str) -> Result<Choice, String> {
    if s == "auto" {
        return Ok(Choice::File(MethodChoice::Auto));
    }
    Ok(match s.parse()? {
        PatchKind::File(method) => Choice::File(MethodChoice::Only(method)),
        PatchKind::Tree => Choice::Tree,
    })
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> i32 {
    let json = args.json;
    let is_dir = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_dir());
    let result = match (is_dir(&args.old), is_dir(&args.new)) {
        (true, true) => {
            if args.format != PatchFormat::Deltapack {
                let e = anyhow::anyhow!(
                    "--format {} makes file patches: diff two files, not two directories",
                    args.format.name()
                );
                return cli::report_error(&e, deltaapply_cli::exit::USAGE, json);
            }
            if args.method != Choice::File(MethodChoice::Auto) {
                let e = anyhow::anyhow!(
                    "--method applies to file patches: a tree patch chooses the method per \
                     file (auto); leave --method out to diff {} and {}",
                    args.old.display(),
                    args.new.display()
                );
                return cli::report_error(&e, deltaapply_cli::exit::USAGE, json);
            }
            tree::diff(args)
        }
        (false, false) if args.format != PatchFormat::Deltapack => foreign::diff(args),
        (false, false) => diff(args),
        (old_is_dir, _) => {
            let (dir, file) = if old_is_dir {
                (&args.old, &args.new)
            } else {
                (&args.new, &args.old)
            };
            let e = anyhow::anyhow!(
                "{} is a directory but {} is not: give two files or two directories",
                dir.display(),
                file.display()
            );
            return cli::report_error(&e, deltaapply_cli::exit::USAGE, json);
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let over_budget = e
                .downcast_ref::<DiffError>()
                .is_some_and(DiffError::is_over_budget)
                || e.downcast_ref::<TreeDiffError>()
                    .is_some_and(TreeDiffError::is_over_budget);
            let code = if over_budget {
                deltaapply_cli::exit::LIMIT
            } else {
                deltaapply_cli::exit::FAILURE
            };
            cli::report_error(&e, code, json)
        }
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} file {}", path.display()))
}

/// Loads the signing key, if one was given, warning when others can read it. Done
/// first, so that a bad key file fails before minutes of diffing.
fn load_key(args: &Args) -> anyhow::Result<Option<SecretKey>> {
    let Some(source) = args.key.source() else {
        return Ok(None);
    };
    Ok(Some(super::keysrc::load(&source, false)?))
}

fn settings(args: &Args) -> Settings {
    let mut settings = Settings {
        level: args.level,
        max_apply_memory: args.max_apply_memory,
        transform: args.transform,
        ..Settings::default()
    };
    if let Some(t) = args.threads {
        settings.threads = usize::from(t);
    }
    settings
}

fn diff(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let key = load_key(&args)?;
    let old = read(&args.old, "old")?;
    let new = read(&args.new, "new")?;
    let settings = settings(&args);
    let context = format!(
        "cannot make a patch from {} to {}",
        args.old.display(),
        args.new.display()
    );
    let Choice::File(method) = args.method else {
        let e = anyhow::anyhow!("the tree method diffs directories: give OLD_DIR and NEW_DIR");
        return Err(e.context(context));
    };
    let spinner = cli::Bar::spinner(!args.json, "diffing");
    let made = make_patch(&old, &new, method, &settings);
    spinner.finish();
    let mut made = match made {
        Ok(made) => made,
        Err(e) if e.is_over_budget() => {
            let hint = "over the apply-memory budget (raise --max-apply-memory if the devices have that much memory)";
            return Err(anyhow::Error::new(e).context(context).context(hint));
        }
        Err(e) => return Err(anyhow::Error::new(e).context(context)),
    };
    if let Some(key) = &key {
        key.sign_patch(&mut made.bytes)
            .context("the encoder wrote a patch its own decoder refuses")?;
    }
    let signed_by = key.as_ref().map(SecretKey::key_id);
    write_atomically(&args.output, &made.bytes)?;
    let seconds = started.elapsed().as_secs_f64();

    let full_size = made
        .candidates
        .iter()
        .find(|c| c.method == Method::Full)
        .and_then(|c| c.size);
    let size = made.bytes.len() as u64;
    if args.json {
        return cli::print_json(&serde_json::json!({
            "ok": true,
            "patch": args.output,
            "method": made.method,
            "patch_size": size,
            "old_size": old.len(),
            "new_size": new.len(),
            "full_size": full_size,
            "apply_memory": made.apply_memory,
            "candidates": made.candidates,
            "signed_by": signed_by,
            "seconds": seconds,
        }));
    }
    if cli::output::is_quiet() {
        return Ok(());
    }
    {
        let mut out = String::new();
        let vs_full = full_size
            .map(|f| format!(", {} of the full image", cli::percent(size, f)))
            .unwrap_or_default();
        let signed = signed_by
            .map(|id| format!(", signed by key {id}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{}: {} patch, {} bytes ({} of the new file{vs_full}), applies in {}, made in {seconds:.2} s{signed}",
            args.output.display(),
            made.method,
            size,
            cli::percent(size, new.len() as u64),
            cli::human_bytes(made.apply_memory),
        );
        if made.candidates.len() > 1 {
            for c in &made.candidates {
                let what = match (c.size, &c.skipped) {
                    (Some(s), _) => format!(
                        "{s} bytes, applies in {}",
                        cli::human_bytes(c.apply_memory.unwrap_or(0))
                    ),
                    (None, Some(why)) => format!("skipped: {why}"),
                    (None, None) => "skipped".into(),
                };
                let mark = if c.method == made.method { "*" } else { " " };
                let _ = writeln!(out, "  {mark} {:<7} {what}", c.method.name());
            }
        }
        cli::write_stdout(&out)
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never
/// sees half a patch.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let staged = deltaapply::stage::Staged::beside(
        path,
        deltaapply::stage::inherit_permissions(path, None),
    )?;
    staged
        .file()
        .write_all(bytes)
        .with_context(|| format!("cannot write {}", staged.path().display()))?;
    staged.commit()?;
    Ok(())
}

/// `deltapack diff OLD_DIR NEW_DIR`: the tree patch.
mod tree {
    use super::*;
    use deltapack::tree::{FileStats, ShippedStats, diff_trees};

    pub(super) fn diff(args: Args) -> anyhow::Result<()> {
        let started = Instant::now();
        let key = load_key(&args)?;
        let settings = settings(&args);
        let spinner = cli::Bar::spinner(!args.json, "diffing trees");
        let made = diff_trees(Some(&args.old), &args.new, &settings, key.as_ref());
        spinner.finish();
        let context = format!(
            "cannot make a tree patch from {} to {}",
            args.old.display(),
            args.new.display()
        );
        let made = match made {
            Ok(made) => made,
            Err(e) if e.is_over_budget() => {
                let hint = "over the apply-memory budget (raise --max-apply-memory if the devices have that much memory)";
                return Err(anyhow::Error::new(e).context(context).context(hint));
            }
            Err(e) => return Err(anyhow::Error::new(e).context(context)),
        };
        write_atomically(&args.output, &made.bytes)?;
        let seconds = started.elapsed().as_secs_f64();
        let signed_by = key.as_ref().map(SecretKey::key_id);
        let size = made.bytes.len() as u64;
        let s = &made.stats;
        if args.json {
            return cli::print_json(&serde_json::json!({
                "ok": true,
                "patch": args.output,
                "method": PatchKind::Tree,
                "patch_size": size,
                "old_size": s.old_tree.bytes,
                "new_size": s.new_tree.bytes,
                "share_of_new": share(size, s.new_tree.bytes),
                "apply_memory": made.header.apply_memory,
                "stats": s,
                "signed_by": signed_by,
                "seconds": seconds,
            }));
        }
        let mut out = String::new();
        let signed = signed_by
            .map(|id| format!(", signed by key {id}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{}: tree patch, {size} bytes ({} of the new tree's {}), applies in {}, made in {seconds:.2} s{signed}",
            args.output.display(),
            cli::percent(size, s.new_tree.bytes),
            cli::human_bytes(s.new_tree.bytes),
            cli::human_bytes(made.header.apply_memory),
        );
        let copied = |name: &str, f: FileStats, out: &mut String| {
            let _ = writeln!(
                out,
                "  {name:<15} {:>6} {}  {:>10}  (no blob)",
                f.files,
                files(f.files),
                cli::human_bytes(f.bytes)
            );
        };
        let shipped = |name: &str, f: ShippedStats, out: &mut String| {
            let _ = writeln!(
                out,
                "  {name:<15} {:>6} {}  {:>10}  -> {} bytes",
                f.files,
                files(f.files),
                cli::human_bytes(f.bytes),
                f.blob_bytes
            );
        };
        copied("unchanged", s.unchanged, &mut out);
        copied("renamed/copied", s.renamed_or_copied, &mut out);
        shipped("bsdiff", s.bsdiff, &mut out);
        shipped("zstd", s.zstd, &mut out);
        shipped("full", s.full, &mut out);
        let _ = writeln!(
            out,
            "  {:<15} {:>6} {}  {:>10}  (old files with no file at their path)",
            "deleted",
            s.deleted.files,
            files(s.deleted.files),
            cli::human_bytes(s.deleted.bytes)
        );
        let _ = writeln!(
            out,
            "  {:<15} {:>6} {}  {:>10}  ({} directories, {} symbolic links)",
            "new tree",
            s.new_tree.files,
            files(s.new_tree.files),
            cli::human_bytes(s.new_tree.bytes),
            s.new_dirs,
            s.new_symlinks
        );
        cli::write_stdout(&out)
    }

    fn files(n: u64) -> &'static str {
        if n == 1 { "file " } else { "files" }
    }

    /// `a / b`, or `None` when `b` is 0.
    fn share(a: u64, b: u64) -> Option<f64> {
        (b != 0).then(|| a as f64 / b as f64)
    }
}

/// `deltapack diff --format bsdiff40|vcdiff`: a patch in another tool's format.
mod foreign {
    use super::*;
    use deltaapply::foreign::{Described, describe};

    pub(super) fn diff(args: Args) -> anyhow::Result<()> {
        let format = args.format;
        if args.method != Choice::File(MethodChoice::Auto) || args.key.source().is_some() {
            anyhow::bail!(
                "--format {} has no methods and no signatures: leave out --method and --secret-key",
                format.name()
            );
        }
        let started = Instant::now();
        let old = read(&args.old, "old")?;
        let new = read(&args.new, "new")?;
        let spinner = cli::Bar::spinner(!args.json, "diffing");
        let made = match format {
            PatchFormat::Vcdiff => {
                let options = deltapack::formats::vcdiff::Options {
                    secondary: args.vcdiff_secondary,
                    ..Default::default()
                };
                deltapack::formats::vcdiff::encode(&old, &new, &settings(&args), &options)
            }
            _ => deltapack::formats::bsdiff40::encode(&old, &new, &settings(&args)),
        };
        spinner.finish();
        let bytes = made.with_context(|| {
            format!(
                "cannot make a {} patch from {} to {}",
                format.name(),
                args.old.display(),
                args.new.display()
            )
        })?;
        write_atomically(&args.output, &bytes)?;
        // Read back as the applier reads it: the header and the memory it needs.
        let apply_memory = match describe(&args.output)
            .context("the encoder wrote a patch its own decoder refuses")?
        {
            Described::Bsdiff40 { apply_memory, .. } | Described::Vcdiff { apply_memory, .. } => {
                apply_memory
            }
            Described::ZstdFrame { .. } => anyhow::bail!("the encoder wrote a zstd frame"),
        };
        let seconds = started.elapsed().as_secs_f64();
        let size = bytes.len() as u64;
        if args.json {
            return cli::print_json(&serde_json::json!({
                "ok": true,
                "patch": args.output,
                "format": format.name(),
                "patch_size": size,
                "old_size": old.len(),
                "new_size": new.len(),
                "apply_memory": apply_memory,
                "sha256": deltaapply::Sha256Digest::of(&new),
                "seconds": seconds,
            }));
        }
        cli::write_stdout(&format!(
            "{}: {} patch, {size} bytes ({} of the new file), applies in {}, made in {seconds:.2} s\n\
             it carries no digest: apply with --expect-sha256 {}\n",
            args.output.display(),
            format.name(),
            cli::percent(size, new.len() as u64),
            cli::human_bytes(apply_memory),
            deltaapply::Sha256Digest::of(&new),
        ))
    }
}
