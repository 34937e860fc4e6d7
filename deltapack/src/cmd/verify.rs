//! `deltapack verify DIR --key PUB`: check a publish directory as an applier would.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use deltaapply::manifest::Timestamp;
use deltaapply::{KeyFile as _, PublicKey, TrustedKeys};
use deltaapply_cli as cli;
use deltapack::store::Location;
use deltapack::verify::{VerifyReport, verify_location};

/// Check a publish directory: signature, manifest, every file's size and hash, every
/// full image, every patch applied to its base. Reports every problem; exits 1 if any.
#[derive(clap::Args)]
pub struct Args {
    /// The publish location: a directory, or s3://bucket/prefix (read with the AWS_*
    /// variables and ~/.aws files, as `build` does).
    #[arg(value_name = "DIR|s3://BUCKET/PREFIX")]
    dir: PathBuf,
    /// A trusted public key: the one-line form or a public key file (repeatable).
    #[arg(long = "key", value_name = "KEY", required = true)]
    keys: Vec<String>,
    /// Distinct trusted keys that must have signed the manifest.
    #[arg(long, default_value_t = 1)]
    threshold: usize,
    /// Check expiry at this time instead of now, e.g. 2026-11-21T10:00:00Z.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Print the report as one line of JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> i32 {
    let json = args.json;
    match run_verify(args) {
        Ok(code) => code,
        Err(e) => cli::report_error(&e, deltaapply_cli::exit::USAGE, json),
    }
}

fn run_verify(args: Args) -> anyhow::Result<i32> {
    let keys = args
        .keys
        .iter()
        .map(|k| PublicKey::from_arg(k))
        .collect::<Result<Vec<_>, _>>()?;
    let trusted = TrustedKeys::new(keys, args.threshold).context("invalid --threshold")?;
    let now = match &args.at {
        Some(s) => Timestamp::parse(s).with_context(|| {
            format!("--at {s:?}: expected a UTC time like 2026-11-21T10:00:00Z")
        })?,
        None => Timestamp::now(),
    };
    let location = Location::parse(args.dir.as_os_str()).map_err(anyhow::Error::msg)?;
    let bar = cli::Bar::spinner(!args.json, "verifying");
    let report = verify_location(&location, &trusted, now);
    bar.finish();
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            let e = anyhow::Error::new(e).context(format!("cannot verify {location}"));
            return Ok(cli::report_error(
                &e,
                deltaapply_cli::exit::FAILURE,
                args.json,
            ));
        }
    };
    let code = if report.problems.is_empty() {
        deltaapply_cli::exit::OK
    } else {
        deltaapply_cli::exit::FAILURE
    };
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["ok"] = report.problems.is_empty().into();
        value["dir"] = location.to_string().into();
        cli::print_json(&value)?;
    } else {
        cli::write_stdout(&text(&report, &location))?;
    }
    Ok(code)
}

fn text(r: &VerifyReport, dir: &Location) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: version {} (sequence {}), expires {}, signed by {}",
        dir,
        r.version.as_deref().unwrap_or("?"),
        r.sequence.map_or("?".into(), |n| n.to_string()),
        r.expires.as_deref().unwrap_or("?"),
        if r.signed_by.is_empty() {
            "no trusted key".to_string()
        } else {
            r.signed_by.join(", ")
        }
    );
    let _ = writeln!(
        s,
        "  {} files hashed, {} full images decoded, {} patches applied to their base, {} without their base at hand",
        r.files_checked, r.full_images_checked, r.patches_applied, r.patches_without_base
    );
    if r.file_containers_checked > 0 {
        let _ = writeln!(
            s,
            "  {} per-file full containers of tree artifacts decoded",
            r.file_containers_checked
        );
    }
    if !r.unreferenced.is_empty() {
        let _ = writeln!(
            s,
            "  {} file(s) not referenced by this manifest (left for clients of older manifests)",
            r.unreferenced.len()
        );
    }
    if r.problems.is_empty() {
        let _ = writeln!(s, "OK: no problems found");
    } else {
        let _ = writeln!(s, "{} problem(s):", r.problems.len());
        for p in &r.problems {
            let _ = writeln!(s, "  {}: {}", p.file, p.problem);
        }
    }
    s
}
