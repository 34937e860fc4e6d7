//! `deltaapply download URL... -o FILE --sha256 HEX --size N`: fetch one file whose
//! size and hash are known, the way `update` fetches patches (resumable, retried,
//! verified). Hidden from the help: a tool for field engineers checking a device's
//! path to the update server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use deltaapply::fetch::{Fetcher, Options};
use deltaapply::manifest::RelPath;
use deltaapply::stage::Staged;
use deltaapply::{FileId, Mirror, Sha256Digest, Source, cli};

/// Download a file and check its size and SHA-256.
///
/// Each URL is tried in turn (`https://`, `http://`, `file://` or a path), all naming
/// the same file. The download goes to `<sha256>.part` beside FILE and is resumed when
/// run again after an interruption; FILE appears only once the hash matches.
#[derive(clap::Args)]
pub struct Args {
    /// Where the file is: one or more URLs or paths, tried in order.
    #[arg(value_name = "URL", required = true)]
    urls: Vec<String>,
    /// Where to write it.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Its SHA-256 (64 hex digits).
    #[arg(long, value_name = "HEX", value_parser = parse_sha256)]
    sha256: Sha256Digest,
    /// Its size in bytes.
    #[arg(long, value_name = "BYTES")]
    size: u64,
    #[command(flatten)]
    network: super::network::NetworkArgs,
    /// Print the result as one line of JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_sha256(s: &str) -> Result<Sha256Digest, String> {
    Sha256Digest::from_hex(s).ok_or_else(|| format!("{s:?} is not 64 hex digits"))
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> i32 {
    let json = args.json;
    let setup = source(&args.urls).and_then(|src| Ok((src, args.network.options()?)));
    let (source, options) = match setup {
        Ok(s) => s,
        Err(e) => return cli::report_error(&e, deltaapply::exit::USAGE, json),
    };
    match download(&args, &source, options) {
        Ok(()) => 0,
        Err(e) => {
            let code = super::exit_code(&e);
            cli::report_error(&e, code, json)
        }
    }
}

/// The mirrors (each URL without its last component) and the file name they share.
fn source(urls: &[String]) -> anyhow::Result<(Source, RelPath)> {
    let mut mirrors = Vec::new();
    let mut name: Option<String> = None;
    for url in urls {
        let (mirror, file) = if url.contains("://") {
            let (base, file) = url
                .rsplit_once('/')
                .with_context(|| format!("{url:?} does not name a file"))?;
            (Mirror::parse(&format!("{base}/"))?, file.to_string())
        } else {
            let path = Path::new(url);
            let file = path
                .file_name()
                .and_then(|f| f.to_str())
                .with_context(|| format!("{url:?} does not name a file"))?;
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
            (
                Mirror::Dir(dir.unwrap_or(Path::new(".")).to_path_buf()),
                file.to_string(),
            )
        };
        match &name {
            Some(n) if *n != file => bail!("every URL must name the same file ({n} and {file})"),
            _ => name = Some(file),
        }
        mirrors.push(mirror);
    }
    let name = name.context("give at least one URL")?;
    let rel = RelPath::new(&name).map_err(|e| anyhow::anyhow!("file name {e}"))?;
    Ok((Source::new(mirrors)?, rel))
}

fn download(
    args: &Args,
    (source, rel): &(Source, RelPath),
    options: Options,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let expected = FileId {
        size: args.size,
        sha256: args.sha256,
    };
    let dest_dir = match args.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let bar = cli::Bar::bytes(!args.json);
    let fetched = Fetcher::new(options).fetch_file(source, rel, expected, &dest_dir, &mut |p| {
        bar.set("downloading", p.done, p.total)
    });
    bar.finish();
    let fetched = fetched?;
    if fetched.path.parent() == Some(dest_dir.as_path())
        && fetched.path.file_name() == Some(format!("{}.dpatch", expected.sha256).as_ref())
    {
        std::fs::rename(&fetched.path, &args.output).with_context(|| {
            format!(
                "cannot rename {} to {}",
                fetched.path.display(),
                args.output.display()
            )
        })?;
    } else {
        copy_verified(&fetched.path, &args.output, expected)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        cli::print_json(&serde_json::json!({
            "ok": true,
            "output": args.output,
            "from": fetched.from,
            "size": expected.size,
            "sha256": expected.sha256,
            "transferred": fetched.transferred,
            "seconds": seconds,
        }))?;
    } else {
        eprintln!(
            "wrote {} ({} bytes, sha256 {}) from {}, {} bytes transferred in {seconds:.2} s",
            args.output.display(),
            expected.size,
            expected.sha256,
            fetched.from,
            fetched.transferred,
        );
    }
    Ok(())
}

/// Copies a verified local file to `dest` atomically, checking the hash again on the
/// way (the source may have changed since it was checked).
fn copy_verified(from: &Path, dest: &Path, expected: FileId) -> anyhow::Result<()> {
    let staged = Staged::beside(dest, deltaapply::stage::inherit_permissions(dest, None))?;
    let input =
        std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut write_error = None;
    let (size, sha256) = deltaapply::hash_reader(input, &mut |chunk| {
        if write_error.is_none() {
            write_error = staged.file().write_all(chunk).err();
        }
    })
    .with_context(|| format!("cannot read {}", from.display()))?;
    if let Some(e) = write_error {
        return Err(e).with_context(|| format!("cannot write {}", staged.path().display()));
    }
    if size != expected.size || sha256 != expected.sha256 {
        bail!(
            "{} changed while it was copied: now {size} bytes with sha256 {sha256}",
            from.display()
        );
    }
    staged.commit()?;
    Ok(())
}
