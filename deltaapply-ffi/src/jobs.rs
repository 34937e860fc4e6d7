//! The jobs behind the entry points, in Rust terms: paths and settings in, a JSON
//! result or a [`Failure`] out. No pointers here; `abi.rs` does the C side.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use deltaapply::cancel::Token;
use deltaapply::container::HeaderBody;
use deltaapply::foreign::{Check as ForeignCheck, ForeignApply, Format, apply_foreign, describe};
use deltaapply::tree::{TreeApply, TreePatch, TreePhase, apply_tree};
use deltaapply::update::{Event, Policy, Route};
use deltaapply::{AnyPatch, Limits, Patch, Phase, Sha256Digest, Source, TrustedKeys, Updater};
use serde_json::{Value, json};

use crate::failure::{E_BAD_PATCH, E_USAGE, Failure};
use crate::handle::Settings;

/// A signed manifest was accepted (`done` = `total` = 1).
pub const PHASE_MANIFEST: i32 = 1;
/// Hashing the installed file (bytes).
pub const PHASE_HASH_INSTALLED: i32 = 2;
/// Downloading a file of the route, or checking it on a local mirror (bytes).
pub const PHASE_DOWNLOAD: i32 = 3;
/// Hashing the old file (bytes).
pub const PHASE_CHECK_SOURCE: i32 = 4;
/// Hashing the patch's payload (bytes).
pub const PHASE_CHECK_PATCH: i32 = 5;
/// Decoding and writing the new file (bytes).
pub const PHASE_WRITE: i32 = 6;
/// A tree: checking unchanged files and making new ones (files).
pub const PHASE_TREE_STAGE: i32 = 7;
/// A tree: committing to the installed tree (operations). Cannot be cancelled.
pub const PHASE_TREE_COMMIT: i32 = 8;

/// Calls the caller's progress callback; a non-zero answer cancels the job.
pub struct Reporter<'a> {
    settings: &'a Settings,
    token: &'a Token,
}

impl<'a> Reporter<'a> {
    /// A reporter for a job with these settings and this token.
    pub fn new(settings: &'a Settings, token: &'a Token) -> Self {
        Reporter { settings, token }
    }

    /// Reports `done` of `total` in `phase`.
    pub fn report(&self, phase: i32, done: u64, total: u64) {
        if let Some(p) = self.settings.progress
            && !self.token.is_cancelled()
            && (p.callback)(p.user, phase, done, total) != 0
        {
            self.token.cancel();
        }
    }

    fn apply_phase(&self, phase: Phase, done: u64, total: u64) {
        let code = match phase {
            Phase::CheckSource => PHASE_CHECK_SOURCE,
            Phase::CheckPayload => PHASE_CHECK_PATCH,
            Phase::Write => PHASE_WRITE,
        };
        self.report(code, done, total);
    }

    fn event(&self, event: Event<'_>) {
        match event {
            Event::Manifest { .. } => self.report(PHASE_MANIFEST, 1, 1),
            Event::Hashing { done, total } => self.report(PHASE_HASH_INSTALLED, done, total),
            Event::Download { done, total, .. } => self.report(PHASE_DOWNLOAD, done, total),
            Event::Apply {
                phase, done, total, ..
            } => self.apply_phase(phase, done, total),
            Event::Fallback { .. } => {}
        }
    }
}

fn limits(settings: &Settings) -> Limits {
    match settings.max_memory {
        Some(max_apply_memory) => Limits { max_apply_memory },
        None => Limits::default(),
    }
}

fn trusted(settings: &Settings) -> Result<Option<TrustedKeys>, Failure> {
    if settings.keys.is_empty() {
        return Ok(None);
    }
    TrustedKeys::new(settings.keys.clone(), 1)
        .map(Some)
        .map_err(|e| Failure::invalid(deltaapply::update::error_chain(&e)))
}

/// The format of the patch at `path` by its first bytes (`None` if it cannot be read:
/// the apply then reports why).
fn detect(path: &Path) -> Option<Format> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(deltaapply::foreign::DETECT_LEN as u64)
                .read_to_end(&mut head)
        })
        .ok()?;
    Format::detect(&head)
}

/// Applies one patch: a deltapack file or tree patch, or a foreign one (which needs
/// `old` and `expect`).
pub fn apply(
    settings: &Settings,
    progress: &Reporter<'_>,
    old: Option<&Path>,
    patch: &Path,
    dest: &Path,
    expect: Option<Sha256Digest>,
) -> Result<Value, Failure> {
    let limits = limits(settings);
    match detect(patch) {
        Some(Format::Deltapack) | None => {}
        Some(format) => {
            let (Some(old), Some(sha256)) = (old, expect) else {
                return Err(Failure::new(
                    E_USAGE,
                    format!(
                        "{} is a {format} patch: it needs the old file and the SHA-256 of the \
                         file it makes (expected_sha256)",
                        patch.display()
                    ),
                ));
            };
            let report = apply_foreign(
                &ForeignApply {
                    old,
                    patch,
                    dest,
                    check: ForeignCheck::Sha256(sha256),
                    expected_size: None,
                    max_memory: limits.max_apply_memory,
                },
                &mut |p| progress.apply_phase(p.phase, p.done, p.total),
            )
            .map_err(|e| Failure::of(e.kind(), &e))?;
            return Ok(json!({ "kind": "foreign", "report": report }));
        }
    }
    let trusted = trusted(settings)?;
    let opened = AnyPatch::open(patch).map_err(|e| Failure::of(e.kind(), &e))?;
    let (target, is_tree) = match &opened {
        AnyPatch::File(file) => (file.header().target, false),
        AnyPatch::Tree(tree) => (tree.header().target, true),
    };
    if expect.is_some_and(|sha256| sha256 != target.sha256) {
        return Err(Failure::new(
            E_BAD_PATCH,
            format!(
                "{} makes a file of {} bytes with sha256 {}, not the expected one; nothing was \
                 written",
                patch.display(),
                target.size,
                target.sha256
            ),
        ));
    }
    drop(opened);
    if is_tree {
        return apply_tree_patch(progress, old, patch, dest, limits, trusted.as_ref());
    }
    let report = deltaapply::apply_file(old, patch, dest, &limits, trusted.as_ref(), &mut |p| {
        progress.apply_phase(p.phase, p.done, p.total)
    })
    .map_err(|e| Failure::of(e.kind(), &e))?;
    Ok(json!({
        "kind": "file",
        "method": report.method,
        "source": report.source,
        "target": report.target,
        "output": report.dest,
        "origin": report.origin,
    }))
}

fn apply_tree_patch(
    progress: &Reporter<'_>,
    old: Option<&Path>,
    patch: &Path,
    dest: &Path,
    limits: Limits,
    trusted: Option<&TrustedKeys>,
) -> Result<Value, Failure> {
    let patch = TreePatch::open(patch, &limits, trusted, &mut |p| {
        progress.apply_phase(p.phase, p.done, p.total)
    })
    .map_err(|e| Failure::of(e.kind(), &e))?;
    let substitutes = BTreeMap::new();
    let req = TreeApply {
        patch: &patch,
        old,
        dest,
        substitutes: &substitutes,
        limits,
        replace_unlisted: false,
        drop: None,
    };
    let report = apply_tree(&req, &mut |p| {
        let phase = match p.phase {
            TreePhase::Stage => PHASE_TREE_STAGE,
            TreePhase::Commit => PHASE_TREE_COMMIT,
        };
        progress.report(phase, p.done, p.total);
    })
    .map_err(|e| Failure::of(e.kind(), &e))?;
    Ok(json!({ "kind": "tree", "report": report }))
}

/// A patch's header as JSON, with its origin under the handle's keys.
pub fn inspect(settings: &Settings, patch: &Path) -> Result<Value, Failure> {
    match detect(patch) {
        Some(Format::Deltapack) | None => {}
        Some(_) => {
            let described = describe(patch).map_err(|e| Failure::of(e.kind(), &e))?;
            return Ok(serde_json::to_value(described).unwrap_or(Value::Null));
        }
    }
    let trusted = trusted(settings)?;
    match AnyPatch::open(patch).map_err(|e| Failure::of(e.kind(), &e))? {
        AnyPatch::File(opened) => header_json(&opened, trusted.as_ref()),
        AnyPatch::Tree(opened) => header_json(&opened, trusted.as_ref()),
    }
}

/// An opened container's header as JSON, with its origin under `trusted`.
fn header_json<B: HeaderBody>(
    opened: &Patch<B>,
    trusted: Option<&TrustedKeys>,
) -> Result<Value, Failure> {
    let h = opened.header();
    let origin = opened
        .check_origin(trusted)
        .map_err(|e| Failure::of(e.kind(), &e))?;
    Ok(json!({
        "format": Format::Deltapack,
        "format_version": deltaapply::container::VERSION,
        "method": h.kind(),
        "window_log": h.window_log,
        "source": h.source(),
        "target": h.target,
        "payload": h.payload,
        "apply_memory": h.apply_memory,
        "origin": origin,
    }))
}

/// The updater for `target` from `sources` (mirrors, one a line) with the settings.
fn updater(settings: &Settings, sources: &str, target: &Path) -> Result<Updater, Failure> {
    let mirrors: Vec<&str> = sources
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if mirrors.is_empty() {
        return Err(Failure::invalid("no source given (one mirror a line)"));
    }
    let source = Source::parse_all(mirrors)
        .map_err(|e| Failure::invalid(deltaapply::update::error_chain(&e)))?;
    let Some(trusted) = trusted(settings)? else {
        return Err(Failure::invalid(
            "no trusted keys set: an update needs the publisher's key \
             (deltaapply_set_trusted_keys)",
        ));
    };
    let defaults = Policy::default();
    let policy = Policy {
        max_download: settings.max_download,
        max_chain: settings.max_chain.unwrap_or(defaults.max_chain),
        max_apply_memory: limits(settings).max_apply_memory,
        ..defaults
    };
    Ok(Updater::new(source, trusted, target).policy(policy))
}

fn check_json(check: &deltaapply::update::Check) -> Value {
    json!({
        "source": check.manifest_from,
        "product": check.product,
        "channel": check.channel,
        "sequence": check.sequence,
        "expired": check.expired,
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
            "reason": check.plan.reason,
        },
    })
}

/// What an update would do, without changing anything.
pub fn check(
    settings: &Settings,
    progress: &Reporter<'_>,
    sources: &str,
    target: &Path,
) -> Result<Value, Failure> {
    let updater = updater(settings, sources, target)?;
    let check = updater
        .check(&mut |e| progress.event(e))
        .map_err(|e| Failure::of(e.kind(), &e))?;
    Ok(check_json(&check))
}

/// Brings `target` (a file or a tree) to the newest release.
pub fn update(
    settings: &Settings,
    progress: &Reporter<'_>,
    sources: &str,
    target: &Path,
) -> Result<Value, Failure> {
    let updater = updater(settings, sources, target)?;
    let outcome = updater
        .update(&mut |e| progress.event(e))
        .map_err(|e| Failure::of(e.kind(), &e))?;
    let mut value = check_json(&outcome.check);
    value["result"] = json!({
        "outcome": if outcome.route == Route::UpToDate { "up-to-date" } else { "updated" },
        "route": outcome.route.kind(),
        "fallback": outcome.fallback,
        "downloaded": outcome.downloaded,
        "state_updated": outcome.state_updated,
    });
    Ok(value)
}
