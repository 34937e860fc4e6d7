//! `deltaapply check` and `deltaapply update`: bring an installed file to the newest
//! release of a publish directory (see `deltaapply::update`).

use std::path::PathBuf;
use std::time::Instant;

use crate as cli;
use anyhow::{Context, bail};
use deltaapply::update::{
    Check, Event, FullImage, Installed, Outcome, Policy, Route, Step, Updater, error_chain,
};
use deltaapply::{Phase, Source};
use serde_json::json;

/// The arguments `check` and `update` share.
#[derive(clap::Args)]
pub struct Args {
    /// The publish directory: an https:// or http:// URL, a file:// URL or a local
    /// directory (e.g. a USB stick). Repeat for mirrors, tried in order.
    #[arg(long = "from", value_name = "SOURCE", required = true)]
    sources: Vec<String>,
    /// The installed file to bring to the newest release (it may not exist yet).
    #[arg(long, value_name = "PATH")]
    target: PathBuf,
    /// If another deltaapply is updating the same target, wait up to this many seconds
    /// for it to finish instead of failing at once (exit 10).
    #[arg(long, value_name = "SECONDS")]
    wait: Option<u64>,
    /// Trust manifests signed by this publisher key: an `ed25519:...` line or a public
    /// key file (repeat for several). Overrides DELTAAPPLY_KEY and the built-in keys.
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<String>,
    /// Follow the publisher's signed key chain from this keys document (a
    /// `keys/N.toml` the installer ships): newer versions are accepted from the
    /// publish directory's `keys/` one by one, and manifests are verified with the
    /// newest version's keys and threshold. Instead of --key.
    #[arg(long, value_name = "FILE", conflicts_with = "keys")]
    keys_root: Option<PathBuf>,
    /// Where the newest accepted keys document is kept, with --keys-root
    /// [default: the state file's path with .keys appended].
    #[arg(long, value_name = "FILE", requires = "keys_root")]
    keys_file: Option<PathBuf>,
    /// Which artifact of the release the target is, when a release has several.
    #[arg(long, value_name = "NAME")]
    artifact: Option<String>,
    /// Refuse manifests for any other product.
    #[arg(long, value_name = "NAME")]
    product: Option<String>,
    /// Refuse manifests for any other channel; names a switch of channel [default: the
    /// channels the state file has accepted for the product].
    #[arg(long, value_name = "NAME")]
    channel: Option<String>,
    /// Where the highest accepted manifest sequence is kept
    /// [default: .NAME.deltaapply-state beside the target].
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Where downloads go while updating, kept to resume after an interruption
    /// [default: .NAME.deltaapply-cache beside the target].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Download at most this much in all, fallback included (e.g. 20MiB).
    #[arg(long, value_name = "SIZE", value_parser = cli::parse_size)]
    max_download: Option<u64>,
    /// Never download the full image: fail instead (for metered links).
    #[arg(long, conflicts_with = "prefer_full")]
    no_full: bool,
    /// Download the full image even when a patch is smaller.
    #[arg(long)]
    prefer_full: bool,
    /// Longest chain of patches to consider.
    #[arg(long, value_name = "N", default_value_t = deltaapply::update::plan::DEFAULT_MAX_CHAIN as u8,
          value_parser = clap::value_parser!(u8).range(1..=64))]
    max_chain: u8,
    /// Skip patches and images that need more memory than this to apply.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = cli::parse_size)]
    max_memory: u64,
    /// Accept an expired manifest. Only for devices without a trustworthy clock: it
    /// gives up the protection against a frozen (withheld) feed.
    #[arg(long)]
    allow_expired: bool,
    /// Refuse manifests with a sequence below N, whatever the state file says (the
    /// sequence of the release the device was shipped with: a lost state file cannot
    /// roll it back further).
    #[arg(long, value_name = "N", default_value_t = 0)]
    min_sequence: u64,
    #[command(flatten)]
    network: super::network::NetworkArgs,
    /// Print the result as one line of JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Show what is installed, what is newest, and what an update would download.
///
/// The manifest's signature is checked against the trusted keys before it is read,
/// and it is refused if it is older than one accepted before or expired. Nothing is
/// written.
#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    args: Args,
}

/// Bring the target to the newest release, downloading as little as possible.
///
/// Like `check`, then downloads the planned patch, chain of patches or full image
/// (resumably; each file checked against the signed manifest) and applies it: the new
/// file is verified before it is renamed over the target, so the target is always the
/// old release or the new one. If a patch cannot be used, the full image is used
/// instead (unless --no-full) and the reason is printed.
#[derive(clap::Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    args: Args,
}

/// Runs `check`; returns the exit code.
pub fn run_check(args: CheckArgs) -> i32 {
    run(args.args, false)
}

/// Runs `update`; returns the exit code.
pub fn run_update(args: UpdateArgs) -> i32 {
    run(args.args, true)
}

fn run(args: Args, update: bool) -> i32 {
    let json = args.json;
    let updater = match updater(&args) {
        Ok(u) => u,
        Err(e) => return cli::report_error(&e, crate::exit::USAGE, json),
    };
    let started = Instant::now();
    let mut display = Display::new(!json);
    let busy = |e: &deltaapply::UpdateError| e.kind() == deltaapply::ErrorKind::Busy;
    let result = cli::until_not_busy(args.wait, busy, || {
        if update {
            updater
                .update(&mut |e| display.event(e))
                .map(|outcome| (outcome.check.clone(), Some(outcome)))
        } else {
            updater.check(&mut |e| display.event(e)).map(|c| (c, None))
        }
    });
    display.bar.finish();
    let (check, outcome) = match result {
        Ok(r) => r,
        Err(e) => {
            let code = crate::exit_code(e.kind());
            let err = match cli::hint_of(&e) {
                Some(hint) => anyhow::anyhow!("{}; {hint}", error_chain(&e)),
                None => anyhow::anyhow!("{}", error_chain(&e)),
            };
            return cli::report_error(&err, code, json);
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let printed = if json {
        cli::print_json(&result_json(&check, outcome.as_ref(), seconds))
    } else {
        cli::write_stdout(&result_text(&check, outcome.as_ref(), seconds))
    };
    match printed {
        Ok(()) => 0,
        Err(e) => cli::report_error(&e, crate::exit::FAILURE, json),
    }
}

fn updater(args: &Args) -> anyhow::Result<Updater> {
    let source = Source::parse_all(args.sources.iter().map(String::as_str))?;
    let pinned = match &args.keys_root {
        Some(path) => Some(keys_root(path)?),
        None => None,
    };
    let trusted = match &pinned {
        Some(doc) => Some(doc.trusted()),
        None => cli::trusted_keys(&args.keys)?.map(|(trusted, _)| trusted),
    };
    let Some(trusted) = trusted else {
        bail!(
            "no trusted key: pass the publisher's public key with --key, set {}, or build \
             deltaapply with DELTAAPPLY_BUILTIN_KEY",
            deltaapply::key::KEY_ENV
        );
    };
    let policy = Policy {
        max_download: args.max_download,
        full_image: if args.no_full {
            FullImage::Never
        } else if args.prefer_full {
            FullImage::Prefer
        } else {
            FullImage::Allow
        },
        max_chain: usize::from(args.max_chain),
        max_apply_memory: args.max_memory,
        allow_expired: args.allow_expired,
        min_sequence: args.min_sequence,
    };
    let mut updater = Updater::new(source, trusted, &args.target)
        .policy(policy)
        .fetch_options(args.network.options().context("--ca-cert")?);
    if let Some(pinned) = pinned {
        updater = updater.key_chain(pinned);
    }
    if let Some(k) = &args.keys_file {
        updater = updater.keys_file(k);
    }
    if let Some(a) = &args.artifact {
        updater = updater.artifact(a);
    }
    if let Some(c) = &args.channel {
        updater = updater.channel(c);
    }
    if let Some(p) = &args.product {
        updater = updater.product(p);
    }
    if let Some(s) = &args.state {
        updater = updater.state_file(s);
    }
    if let Some(c) = &args.cache {
        updater = updater.cache_dir(c);
    }
    Ok(updater)
}

/// Reads the pinned keys document of `--keys-root`.
fn keys_root(path: &std::path::Path) -> anyhow::Result<deltaapply::rotation::KeysDocument> {
    use deltaapply::rotation::{KeysDocument, MAX_KEYS_DOCUMENT};
    let bytes = deltaapply::source::read_capped(path, MAX_KEYS_DOCUMENT)
        .with_context(|| format!("--keys-root: cannot read {}", path.display()))?
        .with_context(|| {
            format!(
                "--keys-root: {} is larger than {MAX_KEYS_DOCUMENT} bytes",
                path.display()
            )
        })?;
    KeysDocument::parse(&bytes).with_context(|| format!("--keys-root: {}", path.display()))
}

/// Progress: a bar on a terminal, a line per step otherwise (nothing with --json).
struct Display {
    bar: cli::Bar,
    lines: bool,
    /// The last (download or apply, step) announced with a line.
    announced: Option<(bool, usize)>,
}

impl Display {
    fn new(enabled: bool) -> Display {
        let bar = cli::Bar::bytes(enabled);
        let lines = enabled && !bar.is_visible();
        Display {
            bar,
            lines,
            announced: None,
        }
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Manifest { .. } => {}
            Event::Hashing { done, total } => self.bar.set("hashing installed", done, total),
            Event::Download {
                step,
                steps,
                file,
                done,
                total,
            } => {
                if self.announce(false, step) {
                    self.line(&format!(
                        "fetching {} ({} bytes){}",
                        file.path,
                        file.file.size,
                        step_of(step, steps)
                    ));
                }
                self.bar.set("downloading", done, total);
            }
            Event::Apply {
                step,
                steps,
                phase,
                done,
                total,
            } => {
                if self.announce(true, step) {
                    self.line(&format!("applying{}", step_of(step, steps)));
                }
                let msg = match phase {
                    Phase::CheckSource => "checking old file",
                    Phase::CheckPayload => "checking patch",
                    Phase::Write => "writing",
                };
                self.bar.set(msg, done, total);
            }
            Event::Fallback { reason } => {
                self.announced = None;
                self.bar.println(
                    &format!(
                        "the patch could not be used, falling back to the full image: {reason}"
                    ),
                    false,
                );
            }
        }
    }

    /// Whether this download or apply step is new (its line not yet printed).
    fn announce(&mut self, apply: bool, step: usize) -> bool {
        let new = self.announced != Some((apply, step));
        self.announced = Some((apply, step));
        new
    }

    fn line(&self, text: &str) {
        if self.lines {
            cli::output::info(text);
        }
    }
}

fn step_of(step: usize, steps: usize) -> String {
    if steps > 1 {
        format!(", step {} of {steps}", step + 1)
    } else {
        String::new()
    }
}

/// The JSON result; its fields are documented in README.md and kept stable.
fn result_json(check: &Check, outcome: Option<&Outcome>, seconds: f64) -> serde_json::Value {
    let mut value = json!({
        "ok": true,
        "command": if outcome.is_some() { "update" } else { "check" },
        "source": check.manifest_from,
        "product": check.product,
        "channel": check.channel,
        "sequence": check.sequence,
        "expires": check.expires.to_string(),
        "expired": check.expired,
        "signed_by": check.signed_by,
        "keys_version": check.keys_version,
        "artifact": check.artifact,
        "target": check.target,
        "installed": check.installed,
        "newest": { "version": check.newest_version, "size": check.newest.size, "sha256": check.newest.sha256 },
        "update_available": check.plan.route != Route::UpToDate,
        "plan": {
            "route": check.plan.route.kind(),
            "steps": check.plan.route.steps(),
            "files": check.plan.route.files(),
            "download_size": check.plan.download_size,
            "full_size": check.plan.full_size,
            "cheapest_patch_route": check.plan.cheapest_patch_route,
            "reason": check.plan.reason,
        },
        "seconds": seconds,
    });
    if let Some(o) = outcome {
        value["result"] = json!({
            "outcome": if o.route == Route::UpToDate { "up-to-date" } else { "updated" },
            "route": o.route.kind(),
            "steps": o.route.steps(),
            "files": o.route.files(),
            "fallback": o.fallback,
            "downloaded": o.downloaded,
            "state_updated": o.state_updated,
        });
    }
    value
}

fn result_text(check: &Check, outcome: Option<&Outcome>, seconds: f64) -> String {
    let mut out = String::new();
    let mut row = |k: &str, v: String| out.push_str(&format!("{k:<12}{v}\n"));
    row(
        "manifest",
        format!(
            "{} {} sequence {} from {}, signed by {}, expires {}{}",
            check.product,
            check.channel,
            check.sequence,
            check.manifest_from,
            check
                .signed_by
                .iter()
                .map(|k| format!("key {k}"))
                .collect::<Vec<_>>()
                .join(", "),
            check.expires,
            if check.expired {
                " (EXPIRED, accepted with --allow-expired)"
            } else {
                ""
            }
        ),
    );
    row(
        "target",
        format!("{} (artifact {})", check.target.display(), check.artifact),
    );
    row("installed", check.installed.describe());
    row(
        "newest",
        format!(
            "{} ({} bytes, sha256 {})",
            check.newest_version, check.newest.size, check.newest.sha256
        ),
    );
    let plan = &check.plan;
    if plan.route == Route::UpToDate {
        row("plan", "nothing to do".into());
    } else {
        let size = match &plan.route {
            Route::Full(_) => bytes(plan.download_size),
            _ => format!(
                "{}, {} of the full image's {}",
                bytes(plan.download_size),
                cli::percent(plan.download_size, plan.full_size),
                bytes(plan.full_size)
            ),
        };
        row("plan", format!("{} ({size})", route_words(&plan.route)));
        for step in plan.route.steps() {
            row("", step_text(step));
        }
        for file in plan.route.files() {
            row(
                "",
                format!(
                    "{} fetched whole ({}): {}",
                    file.path,
                    bytes(file.file.size),
                    file.why
                ),
            );
        }
    }
    if let Installed::Tree { differences, .. } = &check.installed {
        for d in differences.iter().take(MAX_LISTED) {
            row("differs", format!("{}: {}", d.path, d.mismatch));
        }
        if differences.len() > MAX_LISTED {
            row(
                "",
                format!(
                    "... and {} more (--json lists them all)",
                    differences.len() - MAX_LISTED
                ),
            );
        }
    }
    row("why", plan.reason.clone());
    match outcome {
        None => {}
        Some(o) if o.route == Route::UpToDate => row("result", "already up to date".into()),
        Some(o) => {
            if let Some(reason) = &o.fallback {
                row("fallback", format!("used the full image: {reason}"));
            }
            row(
                "result",
                format!(
                    "updated {} to {} by {} in {seconds:.2} s; {} used, {} of them over the network",
                    check.target.display(),
                    check.newest_version,
                    route_words(&o.route),
                    bytes(o.route.download_size()),
                    o.downloaded
                ),
            );
        }
    }
    out
}

fn route_words(route: &Route) -> String {
    match route {
        Route::UpToDate => "nothing".into(),
        Route::Patches(steps) if steps.len() == 1 => "a patch".into(),
        Route::Patches(steps) => format!("a chain of {} patches", steps.len()),
        Route::Full(_) => "the full image".into(),
        Route::TreePatch { files, .. } if files.is_empty() => "a tree patch".into(),
        Route::TreePatch { files, .. } => format!(
            "a tree patch, with {} file{} fetched whole",
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        ),
        Route::Repair { files, mended, .. } => format!(
            "a repair: {} file{} fetched whole, {mended} entr{} mended",
            files.len(),
            if files.len() == 1 { "" } else { "s" },
            if *mended == 1 { "y" } else { "ies" }
        ),
    }
}

/// Differing tree entries listed in text output before "... and N more".
const MAX_LISTED: usize = 20;

fn step_text(step: &Step) -> String {
    let from = step.from_version.as_deref().unwrap_or("anything");
    format!(
        "{from} -> {}: {} ({}, {} method, {} to apply)",
        step.to_version,
        step.path,
        bytes(step.file.size),
        step.method,
        cli::human_bytes(step.apply_memory)
    )
}

fn bytes(n: u64) -> String {
    format!("{n} bytes")
}
