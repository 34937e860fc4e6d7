//! `deltapack build`: add a signed release to a publish directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use deltaapply::manifest::Timestamp;
use deltaapply_cli as cli;
use deltapack::Settings;
use deltapack::build::{BuildError, BuildEvent, BuildReport, BuildSpec, build};
use deltapack::config::{BuildConfig, CONFIG_FILE};
use deltapack::keys::{KeySource, SecretKey};
use deltapack::store::Location;

/// Add a release to a publish directory: patches from the last N releases, full
/// images, a signed manifest. Settings come from the flags, then deltapack.toml.
#[derive(clap::Args)]
pub struct Args {
    /// The publish location (holds the previous releases; the new one is added): a
    /// directory, or s3://bucket/prefix (endpoint, region and credentials from the
    /// AWS_* variables and ~/.aws files, as the AWS CLI reads them).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    out: Option<PathBuf>,
    /// Keep base full images downloaded from a bucket here, by SHA-256, for later
    /// builds [default: download them again each time].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// The signing key: --secret-key FILE, --key-env VAR or --key-fd N.
    #[command(flatten)]
    key: super::keysrc::OneKey,
    /// The new release's version.
    #[arg(long, value_name = "VERSION")]
    version: Option<String>,
    /// An artifact of the release (repeatable): NAME=PATH.
    #[arg(long = "artifact", value_name = "NAME=PATH", value_parser = parse_artifact)]
    artifacts: Vec<(String, PathBuf)>,
    /// Product name (needed for the first release).
    #[arg(long)]
    product: Option<String>,
    /// Channel name (default: stable).
    #[arg(long)]
    channel: Option<String>,
    /// How many older releases to make patches from [default: 5].
    #[arg(long, value_name = "N")]
    keep: Option<usize>,
    /// Do not publish a patch larger than this share of the full image [default: 0.75].
    #[arg(long, value_name = "SHARE")]
    max_patch_share: Option<f64>,
    /// Days until the manifest expires [default: 90].
    #[arg(long, value_name = "DAYS")]
    valid_days: Option<u64>,
    /// The manifest's creation time, e.g. 2026-11-21T10:00:00Z [default: $SOURCE_DATE_EPOCH, else now].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    created: Option<Timestamp>,
    /// zstd compression level, 1 to 22 [default: 19].
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=22))]
    level: Option<i32>,
    /// Memory a device may use to apply a patch [default: 32MiB].
    #[arg(long, value_name = "SIZE")]
    max_apply_memory: Option<String>,
    /// Patches made at the same time [default: number of cores]. Each holds its two
    /// files and a suffix array (about 7× the old file) in memory.
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Fan-out over CI jobs: with neither --shard nor --merge, write the build's work
    /// list here and stop (needs no secret key: --trust the publisher's public key);
    /// with --shard or --merge, the plan to carry out.
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
    /// Make only shard K of N of --plan's patches (jobs K-1, K-1+N, ...), unsigned, and
    /// write them to the publish location; needs no secret key.
    #[arg(long, value_name = "K/N", requires = "plan", value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Publish --plan's release from every shard's patches: check them, sign them,
    /// apply each to its base, write the manifest. The only job that needs the key.
    #[arg(long, requires = "plan", conflicts_with = "shard")]
    merge: bool,
    /// A publisher public key to trust for the location's manifest with --plan and
    /// --shard, which take no secret key (repeatable).
    #[arg(long = "trust", value_name = "KEY")]
    trust: Vec<String>,
    /// The settings file [default: ./deltapack.toml if it exists].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the summary as one line of JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_artifact(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=PATH"))?;
    if name.is_empty() || path.is_empty() {
        return Err(format!("{s:?}: expected NAME=PATH"));
    }
    Ok((name.to_string(), PathBuf::from(path)))
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{s:?}: expected K/N with 1 <= K <= N, e.g. 2/4");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if k == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

pub(crate) fn parse_time(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse(s)
        .ok_or_else(|| format!("{s:?}: expected a UTC time like 2026-11-21T10:00:00Z"))
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> i32 {
    let json = args.json;
    match run_build(args) {
        Ok(()) => 0,
        Err(e) => {
            let code = match e.downcast_ref::<BuildError>() {
                Some(BuildError::Settings(_)) => deltaapply_cli::exit::USAGE,
                Some(BuildError::UntrustedState { .. } | BuildError::KeyChain { .. }) => {
                    deltaapply_cli::exit::UNTRUSTED
                }
                Some(BuildError::KeyNotInChain { .. }) => deltaapply_cli::exit::USAGE,
                _ if e.downcast_ref::<Usage>().is_some() => deltaapply_cli::exit::USAGE,
                _ => deltaapply_cli::exit::FAILURE,
            };
            cli::report_error(&e, code, json)
        }
    }
}

/// A usage error found while merging flags and the config file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

fn usage(msg: impl Into<String>) -> anyhow::Error {
    Usage(msg.into()).into()
}

fn run_build(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = match &args.config {
        Some(path) => BuildConfig::load(path)?,
        None if Path::new(CONFIG_FILE).exists() => BuildConfig::load(Path::new(CONFIG_FILE))?,
        None => BuildConfig::default(),
    };
    let out = args.out.or(config.out).ok_or_else(|| {
        usage("say where to publish: --out DIR or s3://BUCKET/PREFIX (or `out` in deltapack.toml)")
    })?;
    let location = Location::parse(out.as_os_str()).map_err(usage)?;
    let mode = super::fanout::Mode::of(args.plan.as_deref(), args.shard, args.merge)?;
    let plan = mode.plan();
    let key_source = args.key.source().or(config.secret_key.map(KeySource::File));
    let version = args
        .version
        .or(config.version)
        .or(plan.map(|p| p.version.clone()))
        .ok_or_else(|| usage("give the new release's version: --version VERSION"))?;
    let artifacts = if args.artifacts.is_empty() {
        config.artifacts.into_iter().collect()
    } else {
        args.artifacts
    };
    let max_apply_memory = match args.max_apply_memory.or(config.max_apply_memory) {
        Some(s) => cli::parse_size(&s).map_err(usage)?,
        None => 32 << 20,
    };
    let created = match args.created {
        Some(t) => t,
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(s) => Timestamp(s.trim().parse().map_err(|_| {
                usage(format!(
                    "SOURCE_DATE_EPOCH={s:?} is not a number of seconds"
                ))
            })?),
            Err(_) => Timestamp::now(),
        },
    };
    let valid_days = args.valid_days.or(config.valid_days).unwrap_or(90);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args.jobs.or(config.jobs).unwrap_or(cores).max(1);
    let spec = BuildSpec {
        out: location.clone(),
        cache: args.cache,
        product: args
            .product
            .or(config.product)
            .or(plan.map(|p| p.product.clone())),
        channel: args
            .channel
            .or(config.channel)
            .or(plan.map(|p| p.channel.clone())),
        version,
        artifacts,
        keep: args.keep.or(config.keep).unwrap_or(5),
        max_patch_share: args
            .max_patch_share
            .or(config.max_patch_share)
            .unwrap_or(0.75),
        created,
        valid_for: valid_days
            .checked_mul(86_400)
            .ok_or_else(|| usage("--valid-days is too large"))?,
        settings: Settings {
            level: args.level.or(config.level).unwrap_or(19),
            threads: (cores / jobs).max(1),
            max_apply_memory,
            ..Settings::default()
        },
        jobs,
    };
    if let (Some(KeySource::File(key_path)), Location::Dir(dir)) = (&key_source, &location) {
        check_key_location(key_path, dir)?;
    }
    if mode.needs_no_key() {
        return super::fanout::run_unsigned(
            &mode,
            &spec,
            key_source.as_ref(),
            &args.trust,
            args.json,
        );
    }
    let key_source = key_source.ok_or_else(|| {
        usage(
            "a build is always signed: give --secret-key FILE, --key-env VAR or --key-fd N \
             (or `secret_key` in deltapack.toml)",
        )
    })?;
    let key = super::keysrc::load(&key_source, args.json)?;

    let bar = cli::Bar::count(!args.json, "patches");
    let quiet = args.json || cli::output::is_quiet();
    let mut on_event = |event| match event {
        BuildEvent::Planned { patches } => {
            bar.set_length(patches as u64);
            if !quiet && !bar.is_visible() {
                eprintln!("making {patches} patch(es) to {}", spec.version);
            }
        }
        BuildEvent::PatchDone(p) => {
            let line = format!(
                "{} {} -> {}: {} {} bytes ({} of the full image){}",
                p.artifact,
                p.base_version,
                spec.version,
                p.method,
                p.size,
                cli::percent(p.size, p.full_size),
                p.omitted
                    .as_ref()
                    .map(|w| format!(", omitted: {w}"))
                    .unwrap_or_default()
            );
            bar.println(&line, quiet);
            bar.inc();
        }
    };
    let report = match plan {
        Some(plan) => deltapack::build::fanout::merge(&spec, &key, plan, &mut on_event),
        None => build(&spec, &key, &mut on_event),
    }
    .with_context(|| format!("cannot build release {} into {}", spec.version, location))?;
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["ok"] = true.into();
        value["out"] = location.to_string().into();
        value["key_id"] = key.key_id().to_string().into();
        value["seconds"] = seconds.into();
        return cli::print_json(&value);
    }
    cli::write_stdout(&summary(&report, &location, &key, seconds))
}

/// Refuses a secret key inside the publish directory, which is published as is.
fn check_key_location(key: &Path, out: &Path) -> anyhow::Result<()> {
    let key = std::fs::canonicalize(key)
        .with_context(|| format!("cannot open secret key file {}", key.display()))?;
    if let Ok(out) = std::fs::canonicalize(out)
        && key.starts_with(&out)
    {
        bail!(
            "the secret key {} is inside the publish directory {}, which is published: move it out",
            key.display(),
            out.display()
        );
    }
    Ok(())
}

fn summary(report: &BuildReport, out: &Location, key: &SecretKey, seconds: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} {} {} (sequence {}) published in {}, signed by key {}, expires {}, in {seconds:.1} s",
        report.product,
        report.channel,
        report.version,
        report.sequence,
        out,
        key.key_id(),
        report.expires
    );
    for a in &report.artifacts {
        let _ = writeln!(
            s,
            "  {}: {} bytes, full image {} bytes ({} of the file)",
            a.name,
            a.size,
            a.full_size,
            cli::percent(a.full_size, a.size)
        );
        let patches: Vec<_> = report
            .patches
            .iter()
            .filter(|p| p.artifact == a.name)
            .collect();
        if patches.is_empty() {
            let _ = writeln!(s, "    no patches (no older release to patch from)");
        }
        for p in patches {
            match &p.omitted {
                None => {
                    let _ = writeln!(
                        s,
                        "    from {:<12} {:<6} {:>12} bytes  {:>7} of full  applies in {}",
                        p.base_version,
                        p.method.name(),
                        p.size,
                        cli::percent(p.size, p.full_size),
                        cli::human_bytes(p.apply_memory)
                    );
                }
                Some(why) => {
                    let _ = writeln!(s, "    from {:<12} omitted: {why}", p.base_version);
                }
            }
        }
    }
    let _ = writeln!(
        s,
        "  older releases supported: {}",
        if report.previous.is_empty() {
            "none".to_string()
        } else {
            report.previous.join(", ")
        }
    );
    let _ = writeln!(
        s,
        "  publish directory: {} referenced ({} bytes); full images only would be {} ({} bytes)",
        cli::human_bytes(report.publish_bytes),
        report.publish_bytes,
        cli::human_bytes(report.full_only_bytes),
        report.full_only_bytes
    );
    if let Location::S3(_) = out {
        let _ = writeln!(
            s,
            "  bucket traffic: {} downloaded ({} bytes), {} uploaded ({} bytes)",
            cli::human_bytes(report.downloaded_bytes),
            report.downloaded_bytes,
            cli::human_bytes(report.uploaded_bytes),
            report.uploaded_bytes
        );
    }
    s
}
