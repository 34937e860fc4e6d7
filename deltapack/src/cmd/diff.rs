//! `deltapack diff OLD NEW -o PATCH`: make one patch.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use deltaapply::{Method, cli};
use deltapack::keys::{self, SecretKey};
use deltapack::{DiffError, MethodChoice, Settings, make_patch};

/// Make a patch from OLD to NEW.
#[derive(clap::Args)]
pub struct Args {
    /// The file users have.
    old: PathBuf,
    /// The file they should get.
    new: PathBuf,
    /// Where to write the patch.
    #[arg(short, long, value_name = "PATCH")]
    output: PathBuf,
    /// auto (try all, keep the smallest that fits --max-apply-memory), bsdiff, zstd or full.
    #[arg(long, default_value = "auto", value_parser = parse_choice)]
    method: MethodChoice,
    /// zstd compression level, 1 to 22.
    #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(1..=22))]
    level: i32,
    /// Threads to use (default: all cores). The patch does not depend on it.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
    /// Memory the device may use to apply the patch (e.g. 32MiB, 1GiB).
    #[arg(long, value_name = "SIZE", default_value = "32MiB", value_parser = cli::parse_size)]
    max_apply_memory: u64,
    /// Sign the patch with this secret key (PKCS#8 PEM, from `deltapack keygen`).
    #[arg(long, value_name = "FILE")]
    secret_key: Option<PathBuf>,
    /// Print the result as one line of JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_choice(s: &str) -> Result<MethodChoice, String> {
    if s == "auto" {
        Ok(MethodChoice::Auto)
    } else {
        s.parse().map(MethodChoice::Only)
    }
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> i32 {
    let json = args.json;
    match diff(args) {
        Ok(()) => 0,
        Err(e) => {
            let code = match e.downcast_ref::<DiffError>() {
                Some(err) if err.is_over_budget() => deltaapply::exit::LIMIT,
                _ => deltaapply::exit::FAILURE,
            };
            cli::report_error(&e, code, json)
        }
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} file {}", path.display()))
}

fn diff(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    // The key is loaded first, so that a bad key file fails before minutes of diffing.
    let key = match &args.secret_key {
        Some(path) => {
            let key = SecretKey::load(path)?;
            if keys::readable_by_others(path) {
                eprintln!(
                    "warning: secret key {} can be read by other users: `chmod 600 {}`",
                    path.display(),
                    path.display()
                );
            }
            Some(key)
        }
        None => None,
    };
    let old = read(&args.old, "old")?;
    let new = read(&args.new, "new")?;
    let mut settings = Settings {
        level: args.level,
        max_apply_memory: args.max_apply_memory,
        ..Settings::default()
    };
    if let Some(t) = args.threads {
        settings.threads = usize::from(t);
    }
    let spinner = cli::Bar::spinner(!args.json, "diffing");
    let made = make_patch(&old, &new, args.method, &settings);
    spinner.finish();
    let context = format!(
        "cannot make a patch from {} to {}",
        args.old.display(),
        args.new.display()
    );
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
