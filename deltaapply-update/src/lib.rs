//! Bringing an installed file to the newest release of a publish directory: the
//! [`Updater`] behind `deltaapply check` and `deltaapply update`, for installers.
//!
//! An update fetches `manifest.toml` and its signature from the first mirror that
//! gives a usable one, checks the signature against the trusted keys before parsing,
//! refuses a manifest older than one accepted before (the state file) or expired,
//! identifies the installed file by its SHA-256, plans the route with the fewest bytes
//! (a patch, a chain of patches, or the full image; see [`plan`]), downloads each file
//! (resumably, checked against the manifest's size and hash) and applies it with every
//! check of [`deltaapply_apply::apply_patch`]. The installed file is replaced only by a rename of
//! a verified file: at every moment it is the old release or the new one. When a patch
//! cannot be used (the installed file changed, the patch is damaged or cannot be
//! downloaded), the update falls back to the full image on its own, unless the policy
//! forbids it, and the outcome says why.
//!
//! ```no_run
//! use deltaapply_fetch::Source;
//! use deltaapply_format::{PublicKey, TrustedKeys};
//! use deltaapply_update::{Policy, Updater};
//!
//! let key = PublicKey::parse(
//!     "ed25519:3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
//! )?;
//! let source = Source::parse_all(["https://updates.example.com/app/stable", "/media/usb/app"])?;
//! let updater = Updater::new(source, TrustedKeys::single(key), "/opt/app/app.bin")
//!     .policy(Policy { max_download: Some(50 << 20), ..Policy::default() });
//! let outcome = updater.update(&mut |event| eprintln!("{event:?}"))?;
//! println!("{} is at {} ({} bytes downloaded)", outcome.check.target.display(),
//!     outcome.check.newest_version, outcome.downloaded);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use deltaapply_apply::error_chain;
use deltaapply_apply::key::{KeyId, TrustedKeys};
use deltaapply_apply::lock::TargetLock;
use deltaapply_apply::{PatchKind, Phase};
use deltaapply_fetch::fetch::{Fetcher, Options};
use deltaapply_fetch::source::Source;
use deltaapply_format::container::FileId;
use deltaapply_format::manifest::{ArtifactKind, Manifest, Timestamp};

mod accept;
mod error;
pub mod keys;
pub mod plan;
mod run;
pub mod state;
mod tree;

pub use accept::CLOCK_SKEW;
pub use error::{MirrorProblem, UpdateError};
pub use plan::{FullImage, Installed, Plan, PlanError, Policy, Route, Step};
use run::Run;
pub use state::{State, StateError};

/// Something an update is doing, for progress displays.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A verified manifest was accepted.
    Manifest {
        /// Where it came from.
        from: &'a str,
        /// The newest release's version.
        version: &'a str,
        /// Its sequence number.
        sequence: u64,
    },
    /// Hashing the installed file: `done` of `total` bytes.
    Hashing {
        /// Bytes hashed.
        done: u64,
        /// The file's size.
        total: u64,
    },
    /// Downloading (or checking, on a local mirror) step `step` (from 0) of `steps`.
    Download {
        /// Which step.
        step: usize,
        /// How many steps the route has.
        steps: usize,
        /// The step.
        file: &'a Step,
        /// Bytes so far.
        done: u64,
        /// The file's size.
        total: u64,
    },
    /// Applying step `step` of `steps`.
    Apply {
        /// Which step.
        step: usize,
        /// How many steps the route has.
        steps: usize,
        /// What applying is doing.
        phase: Phase,
        /// Bytes so far in this phase.
        done: u64,
        /// Bytes this phase processes.
        total: u64,
    },
    /// The planned patch route failed; the full image is used instead.
    Fallback {
        /// Why the patch route failed.
        reason: &'a str,
    },
}

/// What `check` found: the manifest accepted, what is installed, and the plan.
#[derive(Debug, Clone)]
pub struct Check {
    /// The mirror the manifest came from.
    pub manifest_from: String,
    /// The trusted keys whose signatures were counted.
    pub signed_by: Vec<KeyId>,
    /// The version of the key chain whose keys verified the manifest, when the
    /// updater follows one ([`Updater::key_chain`]).
    pub keys_version: Option<u64>,
    /// The SHA-256 of the manifest accepted.
    pub manifest_sha256: deltaapply_format::Sha256Digest,
    /// The manifest's product.
    pub product: String,
    /// The manifest's channel.
    pub channel: String,
    /// The newest release's version.
    pub newest_version: String,
    /// The manifest's sequence number.
    pub sequence: u64,
    /// When the manifest expires.
    pub expires: Timestamp,
    /// Whether it has expired (and was accepted only because the policy allows it).
    pub expired: bool,
    /// The artifact updated.
    pub artifact: String,
    /// The newest release's artifact: its size and SHA-256.
    pub newest: FileId,
    /// The installed file's path.
    pub target: PathBuf,
    /// What is installed there.
    pub installed: Installed,
    /// The newest full image, as a step (the fallback).
    pub full_image: Step,
    /// The route chosen.
    pub plan: Plan,
}

/// What `update` did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What `check` found before the update (its plan is the route planned).
    pub check: Check,
    /// The route carried out: the plan's, or the full image after a fallback.
    pub route: Route,
    /// Why the planned patch route was abandoned for the full image, if it was.
    pub fallback: Option<String>,
    /// Bytes received over the network (0 from a local mirror; less than the files'
    /// sizes when a download resumed).
    pub downloaded: u64,
    /// Whether the state file's accepted sequence number was raised.
    pub state_updated: bool,
}

/// Brings one installed file to the newest release. Build it with [`Updater::new`],
/// adjust it with the setters, then call [`Updater::check`] or [`Updater::update`].
#[derive(Debug)]
pub struct Updater {
    source: Source,
    trusted: TrustedKeys,
    target: PathBuf,
    artifact: Option<String>,
    product: Option<String>,
    channel: Option<String>,
    state_file: PathBuf,
    cache_dir: PathBuf,
    policy: Policy,
    fetcher: Fetcher,
    chain: Option<keys::KeyChain>,
    keys_file: Option<PathBuf>,
}

impl Updater {
    /// An updater for the file at `target`, from `source` (its mirrors tried in turn),
    /// trusting manifests signed by `trusted`.
    pub fn new(source: Source, trusted: TrustedKeys, target: impl Into<PathBuf>) -> Updater {
        let target = target.into();
        Updater {
            source,
            trusted,
            state_file: default_state_file(&target),
            cache_dir: default_cache_dir(&target),
            target,
            artifact: None,
            product: None,
            channel: None,
            policy: Policy::default(),
            fetcher: Fetcher::new(Options::default()),
            chain: None,
            keys_file: None,
        }
    }

    /// Which artifact of the release the target is. Needed when a release has several
    /// and none is named like the target.
    pub fn artifact(mut self, name: impl Into<String>) -> Updater {
        self.artifact = Some(name.into());
        self
    }

    /// Refuse manifests for any product but this one.
    pub fn product(mut self, name: impl Into<String>) -> Updater {
        self.product = Some(name.into());
        self
    }

    /// Refuse manifests for any channel but this one. Without it, a target follows the
    /// channels the state file has accepted for the product (the first one accepted
    /// pins it): naming another channel here is how a device switches channels.
    pub fn channel(mut self, name: impl Into<String>) -> Updater {
        self.channel = Some(name.into());
        self
    }

    /// Where the accepted sequence numbers are kept (default: [`default_state_file`]).
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Updater {
        self.state_file = path.into();
        self
    }

    /// Where downloads go while an update runs (default: [`default_cache_dir`]). It
    /// should be on the target's filesystem. Interrupted downloads stay there and are
    /// resumed by the next update; it is emptied after a successful one.
    pub fn cache_dir(mut self, path: impl Into<PathBuf>) -> Updater {
        self.cache_dir = path.into();
        self
    }

    /// Follow the publisher's signed key chain (`format-spec/rotation.md`) from
    /// `pinned`, the keys document the installer ships: before a mirror's manifest is
    /// verified, `keys/<N+1>.toml` is accepted from version N while the mirror has it,
    /// and the manifest must then be signed by a threshold of the newest version's
    /// keys, for that version's product. The newest version accepted is kept in the
    /// keys file ([`Updater::keys_file`]) by `update`. The keys given to
    /// [`Updater::new`] are then not used.
    pub fn key_chain(mut self, pinned: deltaapply_format::rotation::KeysDocument) -> Updater {
        self.chain = Some(keys::KeyChain { pinned });
        self
    }

    /// Where the newest accepted keys document is kept (default:
    /// [`keys::default_keys_file`] of the state file).
    pub fn keys_file(mut self, path: impl Into<PathBuf>) -> Updater {
        self.keys_file = Some(path.into());
        self
    }

    /// The keys file used.
    pub fn keys_path(&self) -> PathBuf {
        self.keys_file
            .clone()
            .unwrap_or_else(|| keys::default_keys_file(&self.state_file))
    }

    /// What routes are allowed.
    pub fn policy(mut self, policy: Policy) -> Updater {
        self.policy = policy;
        self
    }

    /// How downloads behave (timeouts, retries, extra CA certificates).
    pub fn fetch_options(mut self, options: Options) -> Updater {
        self.fetcher = Fetcher::new(options);
        self
    }

    /// The state file used.
    pub fn state_path(&self) -> &Path {
        &self.state_file
    }

    /// The download directory used.
    pub fn cache_path(&self) -> &Path {
        &self.cache_dir
    }

    /// Fetches and verifies the manifest, identifies the installed file and plans the
    /// route. Writes nothing.
    pub fn check(&self, events: &mut dyn FnMut(Event<'_>)) -> Result<Check, UpdateError> {
        let state = State::load(self.state_path())?;
        self.check_with(&state, events).map(|(check, _)| check)
    }

    /// Finishes a tree update that was interrupted while switching trees, from its
    /// journal, so that the half-switched tree is not taken for a modified one. The
    /// journal is checked against the listings of the accepted (verified) manifest.
    fn finish_pending(&self, manifest: &Manifest) -> Result<(), UpdateError> {
        if !fs::symlink_metadata(&self.target).is_ok_and(|m| m.is_dir()) {
            return Ok(());
        }
        // An artifact that cannot be chosen is reported by the check that follows.
        let Ok(artifact) = self.choose_artifact(manifest) else {
            return Ok(());
        };
        if artifact.kind != ArtifactKind::Tree {
            return Ok(());
        }
        let listings = tree::listings(manifest, &artifact.name)?;
        deltaapply_apply::tree::apply::finish_pending_unlocked(
            &self.target,
            &listings,
            &mut |_| {},
        )?;
        Ok(())
    }

    /// The check, and the manifest it accepted.
    fn check_with(
        &self,
        state: &State,
        events: &mut dyn FnMut(Event<'_>),
    ) -> Result<(Check, Manifest), UpdateError> {
        let accepted = self.accept_manifest(state)?;
        self.check_accepted(accepted, events)
    }

    /// Checks, records the manifest's sequence number in the state file, and carries
    /// the plan out, falling back to the full image if the patch route fails and the
    /// policy allows it. On success the target is the newest release; on failure it is
    /// unchanged (and interrupted downloads are kept to resume).
    pub fn update(&self, events: &mut dyn FnMut(Event<'_>)) -> Result<Outcome, UpdateError> {
        // Held to the end: one updater per target, and what a killed one left beside
        // the target (and beside its default state file) is removed first.
        let _lock = TargetLock::acquire(&self.target)?;
        let state_path = self.state_path();
        if state_path == default_state_file(&self.target) {
            deltaapply_apply::lock::remove_temporaries_of(state_path, &self.target)?;
        }
        let keys_path = self.keys_path();
        if self.chain.is_some() {
            deltaapply_apply::lock::remove_temporaries_of(&keys_path, &self.target)?;
        }
        let mut state = State::load(state_path)?;
        let accepted = self.accept_manifest(&state)?;
        let walked = accepted.keys.clone();
        self.finish_pending(&accepted.manifest)?;
        let (check, manifest) = self.check_accepted(accepted, events)?;
        // A rotation that revoked a key voids the floors recorded under the old keys
        // (a compromised key may have signed an absurd sequence number).
        let revoked =
            walked.as_ref().is_some_and(|w| w.revoked) && state.forget_product(&check.product);
        // Recorded before anything is downloaded: once a manifest is accepted, no older
        // one is, even if this update fails.
        let state_updated = state.accept(
            &check.product,
            &check.channel,
            check.sequence,
            check.manifest_sha256,
        ) || revoked;
        if state_updated {
            state.save(state_path)?;
        }
        // After the state: a run cut off between the two walks the chain again.
        if let Some(bytes) = walked.as_ref().and_then(|w| w.newer.as_deref()) {
            keys::save(&keys_path, bytes)?;
        }
        let planned = check.plan.route.clone();
        if planned == Route::UpToDate {
            // What an interrupted update left to resume is of no use any more.
            clean_cache(self.cache_path());
            return Ok(Outcome {
                check,
                route: planned,
                fallback: None,
                downloaded: 0,
                state_updated,
            });
        }
        let cache = self.cache_path();
        fs::create_dir_all(cache).map_err(|source| UpdateError::Cache {
            path: cache.to_path_buf(),
            source,
        })?;
        let mut run = Run {
            updater: self,
            trusted: walked
                .as_ref()
                .map_or_else(|| self.trusted.clone(), |w| w.document.trusted()),
            cache,
            downloaded: 0,
            events,
        };
        let manifest_artifact = manifest
            .artifact(&check.artifact)
            .expect("the check chose an artifact of this manifest");
        let result = match &planned {
            Route::Patches(steps) => run.patches(steps, &check.target),
            Route::Full(step) if step.method == PatchKind::Tree => {
                run.full_tree(step, &check.target, &check.installed, &manifest)
            }
            Route::Full(step) => run.full(step, &check.target),
            Route::TreePatch {
                patch, differences, ..
            } => run.tree_patch(patch, differences, &check, manifest_artifact),
            Route::Repair { files, .. } => run.repair(files, &check, manifest_artifact),
            Route::UpToDate => unreachable!("returned above"),
        };
        let (route, fallback) = match result {
            Ok(()) => (planned, None),
            Err(e)
                if !matches!(planned, Route::Full(_))
                    && self.policy.full_image != FullImage::Never
                    && e.patch_specific() =>
            {
                let reason = error_chain(&e);
                let manifest_full = check.full_image.clone();
                let needed = check
                    .plan
                    .download_size
                    .saturating_add(manifest_full.file.size);
                if let Some(limit) = self.policy.max_download.filter(|&l| needed > l) {
                    return Err(UpdateError::FallbackTooLarge {
                        reason,
                        needed,
                        limit,
                    });
                }
                (run.events)(Event::Fallback { reason: &reason });
                let full = if manifest_full.method == PatchKind::Tree {
                    run.full_tree(&manifest_full, &check.target, &check.installed, &manifest)
                } else {
                    run.full(&manifest_full, &check.target)
                };
                match full {
                    Ok(()) => (Route::Full(manifest_full), Some(reason)),
                    Err(full) => {
                        return Err(UpdateError::FallbackFailed {
                            reason,
                            full: Box::new(full),
                        });
                    }
                }
            }
            Err(e) => return Err(e),
        };
        let downloaded = run.downloaded;
        clean_cache(cache);
        Ok(Outcome {
            check,
            route,
            fallback,
            downloaded,
            state_updated,
        })
    }

    fn choose_artifact<'m>(
        &self,
        manifest: &'m Manifest,
    ) -> Result<&'m deltaapply_format::manifest::Artifact, UpdateError> {
        let names = || {
            manifest
                .artifacts
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(name) = &self.artifact {
            return manifest.artifact(name).ok_or_else(|| {
                UpdateError::Artifact(format!(
                    "release {} has no artifact {name:?}; it has: {}",
                    manifest.version,
                    names()
                ))
            });
        }
        if let [only] = manifest.artifacts.as_slice() {
            return Ok(only);
        }
        let file_name = self.target.file_name().and_then(|n| n.to_str());
        file_name.and_then(|n| manifest.artifact(n)).ok_or_else(|| {
            UpdateError::Artifact(format!(
                "release {} has several artifacts ({}); name the one the target is",
                manifest.version,
                names()
            ))
        })
    }

    /// The target with symlinks resolved (the file they point to is replaced, not the
    /// link); a target that does not exist yet is kept as given.
    fn resolved_target(&self) -> Result<PathBuf, UpdateError> {
        let target_error = |problem: &str, source| UpdateError::Target {
            path: self.target.clone(),
            problem: problem.to_string(),
            source,
        };
        match fs::canonicalize(&self.target) {
            Ok(path) => {
                let meta = fs::metadata(&path)
                    .map_err(|e| target_error("cannot read its metadata", Some(e)))?;
                if !meta.is_file() {
                    return Err(target_error("not a regular file", None));
                }
                Ok(path)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if fs::symlink_metadata(&self.target).is_ok() {
                    return Err(target_error("a symbolic link to nothing", None));
                }
                let parent = match self.target.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                if !parent.is_dir() {
                    return Err(target_error(
                        "does not exist, and neither does its directory",
                        None,
                    ));
                }
                Ok(self.target.clone())
            }
            Err(e) => Err(target_error("cannot open it", Some(e))),
        }
    }
}

/// `.<name>.deltaapply-state` beside the target.
pub fn default_state_file(target: &Path) -> PathBuf {
    beside(target, "deltaapply-state")
}

/// `.<name>.deltaapply-cache` beside the target.
pub fn default_cache_dir(target: &Path) -> PathBuf {
    beside(target, "deltaapply-cache")
}

fn beside(target: &Path, suffix: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.{suffix}"))
}

/// The installed file's size and SHA-256, or `None` if there is none.
fn hash_installed(
    target: &Path,
    events: &mut dyn FnMut(Event<'_>),
) -> Result<Option<FileId>, UpdateError> {
    let file = match fs::File::open(target) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(UpdateError::Target {
                path: target.to_path_buf(),
                problem: "cannot open it".into(),
                source: Some(e),
            });
        }
    };
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut done = 0;
    let reader = deltaapply_apply::cancel::Reader(file);
    let (size, sha256) = deltaapply_format::hash_reader(reader, &mut |chunk| {
        done += chunk.len() as u64;
        events(Event::Hashing { done, total });
    })
    .map_err(|e| {
        if deltaapply_apply::cancel::is_cancelled(&e) {
            UpdateError::Apply(deltaapply_apply::Error::Cancelled)
        } else {
            UpdateError::Target {
                path: target.to_path_buf(),
                problem: "cannot read it".into(),
                source: Some(e),
            }
        }
    })?;
    Ok(Some(FileId { size, sha256 }))
}

/// Removes what an update left in its download directory, and the directory if it is
/// then empty. Only files an update writes are touched: named by a SHA-256 in hex
/// (downloads, partial downloads, intermediate files of a chain), or the temporary
/// files staged for them; anything else a user keeps there stays.
fn clean_cache(cache: &Path) {
    if let Ok(entries) = fs::read_dir(cache) {
        for entry in entries.flatten() {
            if is_update_file(&entry.file_name().to_string_lossy()) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    let _ = fs::remove_dir(cache);
}

/// `<sha256>.dpatch`, `<sha256>.part`, `<sha256>.part.meta`, `<sha256>.step`,
/// `<sha256>.file` (a tree file fetched whole, decoded), and
/// `.<sha256>.<suffix>.<random>.deltaapply-tmp`.
fn is_update_file(name: &str) -> bool {
    let (name, staged) = match name.strip_prefix('.') {
        Some(rest) if name.ends_with(".deltaapply-tmp") => (rest, true),
        _ => (name, false),
    };
    let Some((hash, suffix)) = name.split_once('.') else {
        return false;
    };
    let hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    hex && (staged || ["dpatch", "part", "part.meta", "step", "file"].contains(&suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_only_its_own_files() {
        let hash = "ab".repeat(32);
        for ours in [
            format!("{hash}.dpatch"),
            format!("{hash}.part"),
            format!("{hash}.part.meta"),
            format!("{hash}.step"),
            format!(".{hash}.step.x1Y2z3.deltaapply-tmp"),
        ] {
            assert!(is_update_file(&ours), "{ours}");
        }
        for theirs in [
            "notes.txt".to_string(),
            "manifest.toml".to_string(),
            format!("{}.dpatch", &hash[..63]),
            format!("{hash}.bin"),
            format!("x{hash}.dpatch"),
            ".hidden.deltaapply-tmp".to_string(),
        ] {
            assert!(!is_update_file(&theirs), "{theirs}");
        }
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        fs::create_dir(&cache).unwrap();
        fs::write(cache.join(format!("{hash}.part")), b"x").unwrap();
        fs::write(cache.join("keep.txt"), b"x").unwrap();
        clean_cache(&cache);
        let left: Vec<_> = fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["keep.txt"]);
    }
}
