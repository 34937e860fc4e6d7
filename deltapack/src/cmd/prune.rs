//! `deltapack prune LOCATION --key PUB`: remove what no manifest a client may still hold
//! references.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use deltaapply::manifest::Timestamp;
use deltaapply::{KeyFile as _, PublicKey, TrustedKeys};
use deltaapply_cli as cli;
use deltapack::prune::{PruneError, PruneSpec, prune};
use deltapack::store::{Location, Store};

/// Remove the patches and full images that neither the current manifest, the one
/// before it, nor any manifest replaced less than --grace-days ago names. Never
/// removes anything the current or previous manifest names.
#[derive(clap::Args)]
pub struct Args {
    /// The publish location: a directory, or s3://bucket/prefix.
    #[arg(value_name = "DIR|s3://BUCKET/PREFIX")]
    dir: PathBuf,
    /// A trusted public key the current manifest must be signed by (repeatable).
    #[arg(long = "key", value_name = "KEY", required = true)]
    keys: Vec<String>,
    /// Distinct trusted keys that must have signed the manifest.
    #[arg(long, default_value_t = 1)]
    threshold: usize,
    /// Days a replaced manifest may still be held by clients [default: 7].
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    grace_days: u64,
    /// Prune as at this time instead of now, e.g. 2026-11-21T10:00:00Z.
    #[arg(long, value_name = "TIME", value_parser = super::build::parse_time)]
    at: Option<Timestamp>,
    /// List what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as one line of JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> i32 {
    let json = args.json;
    match run_prune(&args) {
        Ok(()) => deltaapply_cli::exit::OK,
        Err(e) => {
            let code = match e.downcast_ref::<PruneError>() {
                Some(PruneError::Untrusted { .. }) => deltaapply_cli::exit::UNTRUSTED,
                _ => deltaapply_cli::exit::FAILURE,
            };
            cli::report_error(&e, code, json)
        }
    }
}

fn run_prune(args: &Args) -> anyhow::Result<()> {
    let keys = args
        .keys
        .iter()
        .map(|k| PublicKey::from_arg(k))
        .collect::<Result<Vec<_>, _>>()?;
    let trusted = TrustedKeys::new(keys, args.threshold).context("invalid --threshold")?;
    let location = Location::parse(args.dir.as_os_str()).map_err(anyhow::Error::msg)?;
    let store = Store::open(&location)?;
    let spec = PruneSpec {
        grace: args
            .grace_days
            .checked_mul(86_400)
            .context("--grace-days is too large")?,
        now: args.at.unwrap_or_else(Timestamp::now),
        dry_run: args.dry_run,
    };
    let report =
        prune(&store, &trusted, &spec).with_context(|| format!("cannot prune {location}"))?;
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["ok"] = true.into();
        value["dir"] = location.to_string().into();
        return cli::print_json(&value);
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{location}: kept the files of manifest(s) {} ({} files)",
        report
            .kept_manifests
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        report.kept_files
    );
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let _ = writeln!(s, "{verb} {} file(s)", report.removed.len());
    for f in &report.removed {
        let _ = writeln!(s, "  {f}");
    }
    cli::write_stdout(&s)
}
