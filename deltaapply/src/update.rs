//! Bringing an installed file to the newest release of a publish directory: the
//! [`Updater`] behind `deltaapply check` and `deltaapply update`, for installers.
//!
//! An update fetches `manifest.toml` and its signature from the first mirror that
//! gives a usable one, checks the signature against the trusted keys before parsing,
//! refuses a manifest older than one accepted before (the state file) or expired,
//! identifies the installed file by its SHA-256, plans the route with the fewest bytes
//! (a patch, a chain of patches, or the full image; see [`plan`]), downloads each file
//! (resumably, checked against the manifest's size and hash) and applies it with every
//! check of [`crate::apply_patch`]. The installed file is replaced only by a rename of
//! a verified file: at every moment it is the old release or the new one. When a patch
//! cannot be used (the installed file changed, the patch is damaged or cannot be
//! downloaded), the update falls back to the full image on its own, unless the policy
//! forbids it, and the outcome says why.
//!
//! ```no_run
//! use deltaapply::update::{Policy, Updater};
//! use deltaapply::{PublicKey, Source, TrustedKeys};
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

use crate::container::FileId;
pub use crate::error::error_chain;
use crate::fetch::{FetchError, Fetcher, Options};
use crate::key::{KeyId, TrustedKeys};
use crate::lock::{LockError, TargetLock};
use crate::manifest::{
    ArtifactKind, MANIFEST_FILE, MAX_MANIFEST_SIZE, Manifest, ManifestError, RelPath,
    SIGNATURE_FILE, Timestamp,
};
use crate::signature::{MAX_SIGNATURE_FILE, SignatureError, verify_manifest};
use crate::source::Source;
use crate::tree::apply::TreeApplyError;
use crate::{Error, Limits, Method, Patch, Phase, exit};

pub mod plan;
pub mod state;
mod tree;

pub use plan::{FullImage, Installed, Plan, PlanError, Policy, Route, Step};
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

/// One mirror's failure to give a usable manifest.
#[derive(Debug)]
pub struct MirrorProblem {
    /// The mirror.
    pub mirror: String,
    /// What went wrong there.
    pub error: UpdateError,
}

/// Everything that can stop an update. [`UpdateError::exit_code`] maps each to the
/// documented exit codes.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// A file could not be fetched.
    #[error("cannot fetch {file}")]
    Fetch {
        /// The file (its path in the publish directory).
        file: String,
        /// Why.
        #[source]
        source: FetchError,
    },
    /// The manifest's signature file does not verify against the trusted keys.
    #[error(
        "the manifest from {mirror} failed its signature check; nothing was changed (is the \
         source right, and is the key the publisher's?)"
    )]
    Signature {
        /// The mirror.
        mirror: String,
        /// Why.
        #[source]
        source: SignatureError,
    },
    /// The manifest is signed but invalid.
    #[error("the manifest from {mirror} is invalid")]
    Manifest {
        /// The mirror.
        mirror: String,
        /// Why.
        #[source]
        source: ManifestError,
    },
    /// The manifest is for another product than the one expected or accepted before.
    #[error(
        "the manifest from {mirror} is for product {got:?}, but {expected}; nothing was changed"
    )]
    WrongProduct {
        /// The mirror.
        mirror: String,
        /// The manifest's product.
        got: String,
        /// What was expected, in words.
        expected: String,
    },
    /// The manifest is for another channel than the one asked for, or than every
    /// channel of its product the state file has accepted before.
    #[error(
        "the manifest from {mirror} is for channel {got:?}, but {expected}; nothing was changed"
    )]
    WrongChannel {
        /// The mirror.
        mirror: String,
        /// The manifest's channel.
        got: String,
        /// What was expected, in words.
        expected: String,
    },
    /// The manifest is older than one accepted before: a rollback.
    #[error(
        "the manifest from {mirror} has sequence {got}, older than sequence {accepted} already \
         accepted for {product} {channel} (state file {}); refusing a rollback, nothing was changed",
        state.display()
    )]
    Rollback {
        /// The mirror.
        mirror: String,
        /// The product.
        product: String,
        /// The channel.
        channel: String,
        /// The manifest's sequence.
        got: u64,
        /// The highest sequence accepted.
        accepted: u64,
        /// The state file.
        state: PathBuf,
    },
    /// The manifest has expired: its feed may be frozen.
    #[error(
        "the manifest from {mirror} expired at {expires} (now {now}); the publisher has not \
         published since, or the feed is being withheld. On a device without a trustworthy \
         clock, --allow-expired accepts it; nothing was changed"
    )]
    Expired {
        /// The mirror.
        mirror: String,
        /// When it expired.
        expires: Timestamp,
        /// The time now.
        now: Timestamp,
    },
    /// No mirror gave a usable manifest.
    #[error("no mirror gave a usable manifest: {}", describe_problems(.0))]
    NoManifest(Vec<MirrorProblem>),
    /// The state file could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The artifact to update could not be chosen.
    #[error("{0}")]
    Artifact(String),
    /// The target cannot be read or is not a file.
    #[error("target {}: {problem}", path.display())]
    Target {
        /// The target.
        path: PathBuf,
        /// What is wrong.
        problem: String,
        /// The I/O error, if any.
        #[source]
        source: Option<io::Error>,
    },
    /// No route satisfies the policy.
    #[error("no update route: {0}")]
    Plan(#[from] PlanError),
    /// A downloaded file's header disagrees with the manifest entry that lists it.
    #[error("{} does not match its manifest entry: {problem}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What differs.
        problem: String,
    },
    /// Another updater holds the target, or its lock cannot be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Applying failed.
    #[error(transparent)]
    Apply(#[from] Error),
    /// Applying a tree patch failed.
    #[error(transparent)]
    TreeApply(#[from] TreeApplyError),
    /// The download directory could not be used.
    #[error("cannot use download directory {}", path.display())]
    Cache {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The patch route failed and the full image would exceed the download limit.
    #[error(
        "{reason}; falling back to the full image would download up to {needed} bytes in all, \
         above the limit of {limit} (--max-download); the installed file is unchanged"
    )]
    FallbackTooLarge {
        /// Why the patch route failed.
        reason: String,
        /// Bytes the patch route and the full image add up to.
        needed: u64,
        /// The limit.
        limit: u64,
    },
    /// The patch route failed, and so did the full image.
    #[error("{reason}; the fallback to the full image failed too")]
    FallbackFailed {
        /// Why the patch route failed.
        reason: String,
        /// Why the full image failed.
        #[source]
        full: Box<UpdateError>,
    },
}

impl UpdateError {
    /// The `deltaapply` exit code for this error (see [`crate::exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            UpdateError::Fetch { source, .. } if source.is_local() => exit::FAILURE,
            UpdateError::Fetch { .. } => exit::NETWORK,
            UpdateError::Signature { .. } => exit::UNTRUSTED,
            UpdateError::Lock(e) => e.exit_code(),
            UpdateError::Manifest { .. } | UpdateError::Mismatch { .. } => exit::BAD_PATCH,
            UpdateError::WrongProduct { .. }
            | UpdateError::WrongChannel { .. }
            | UpdateError::Rollback { .. }
            | UpdateError::Expired { .. } => exit::REFUSED,
            UpdateError::NoManifest(problems) => {
                // The most alarming problem decides: an attack before a dead mirror.
                let codes: Vec<i32> = problems.iter().map(|p| p.error.exit_code()).collect();
                [
                    exit::UNTRUSTED,
                    exit::REFUSED,
                    exit::BAD_PATCH,
                    exit::NETWORK,
                ]
                .into_iter()
                .find(|c| codes.contains(c))
                .unwrap_or(exit::FAILURE)
            }
            UpdateError::State(_) | UpdateError::Target { .. } | UpdateError::Cache { .. } => {
                exit::FAILURE
            }
            UpdateError::Artifact(_) => exit::USAGE,
            UpdateError::Plan(PlanError::FullForbidden { .. }) => exit::NO_ROUTE,
            UpdateError::Plan(_) | UpdateError::FallbackTooLarge { .. } => exit::LIMIT,
            UpdateError::Apply(e) => e.exit_code(),
            UpdateError::TreeApply(e) => e.exit_code(),
            UpdateError::FallbackFailed { full, .. } => full.exit_code(),
        }
    }

    /// Whether the full image may succeed where a patch route failed this way: not
    /// when the failure is on this machine (the target cannot be written, the download
    /// directory is unusable), which the full image would hit too.
    fn patch_specific(&self) -> bool {
        match self {
            UpdateError::Fetch { source, .. } => !source.is_local(),
            UpdateError::Apply(Error::OutputIo { .. }) | UpdateError::Cache { .. } => false,
            UpdateError::Apply(_) | UpdateError::Mismatch { .. } => true,
            // The patch's own files or a base file that differs: the full image may do.
            // A conflict, a link in the way, a journal or an I/O error would stop it too.
            UpdateError::TreeApply(e) => matches!(
                e,
                TreeApplyError::Entry { .. }
                    | TreeApplyError::WrongBase { .. }
                    | TreeApplyError::BadSubstitute { .. }
            ),
            _ => false,
        }
    }
}

fn describe_problems(problems: &[MirrorProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.mirror, error_chain(&p.error)))
        .collect::<Vec<_>>()
        .join("; ")
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
}

/// The manifest accepted, and where from.
struct Accepted {
    manifest: Manifest,
    from: String,
    signed_by: Vec<KeyId>,
    expired: bool,
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
        crate::tree::apply::finish_pending_unlocked(&self.target, &listings, &mut |_| {})?;
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

    /// The check, given the manifest accepted.
    fn check_accepted(
        &self,
        accepted: Accepted,
        events: &mut dyn FnMut(Event<'_>),
    ) -> Result<(Check, Manifest), UpdateError> {
        let manifest = &accepted.manifest;
        events(Event::Manifest {
            from: &accepted.from,
            version: &manifest.version,
            sequence: manifest.sequence,
        });
        let artifact = self.choose_artifact(manifest)?;
        let (target, installed, plan) = if artifact.kind == ArtifactKind::Tree {
            let target = self.target.clone();
            let identified = tree::identify(manifest, artifact, &target, events)?;
            let plan = tree::plan(manifest, artifact, &identified, &self.policy)?;
            (target, identified.installed, plan)
        } else {
            let target = self.resolved_target()?;
            let file = hash_installed(&target, events)?;
            let installed = Installed::identify(manifest, &artifact.name, file);
            let plan = plan::plan(manifest, artifact, &installed, &self.policy)?;
            (target, installed, plan)
        };
        let check = Check {
            manifest_from: accepted.from,
            signed_by: accepted.signed_by,
            product: manifest.product.clone(),
            channel: manifest.channel.clone(),
            newest_version: manifest.version.clone(),
            sequence: manifest.sequence,
            expires: manifest.expires,
            expired: accepted.expired,
            artifact: artifact.name.clone(),
            newest: FileId {
                size: artifact.size,
                sha256: artifact.sha256,
            },
            target,
            installed,
            full_image: plan::full_step(manifest, artifact),
            plan,
        };
        Ok((check, accepted.manifest))
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
            crate::lock::remove_temporaries_of(state_path, &self.target)?;
        }
        let mut state = State::load(state_path)?;
        let accepted = self.accept_manifest(&state)?;
        self.finish_pending(&accepted.manifest)?;
        let (check, manifest) = self.check_accepted(accepted, events)?;
        // Recorded before anything is downloaded: once a manifest is accepted, no older
        // one is, even if this update fails.
        let state_updated = state.accept(&check.product, &check.channel, check.sequence);
        if state_updated {
            state.save(state_path)?;
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
            cache,
            downloaded: 0,
            events,
        };
        let manifest_artifact = manifest
            .artifact(&check.artifact)
            .expect("the check chose an artifact of this manifest");
        let result = match &planned {
            Route::Patches(steps) => run.patches(steps, &check.target),
            Route::Full(step) if step.method == Method::Tree => {
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
                let full = if manifest_full.method == Method::Tree {
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

    /// The first mirror's manifest that verifies and is acceptable.
    fn accept_manifest(&self, state: &State) -> Result<Accepted, UpdateError> {
        let mut problems = Vec::new();
        let mut best: Option<Accepted> = None;
        // Every mirror is asked: one that lags (or withholds a release) must not hold
        // the device back while another serves a newer manifest that verifies.
        for mirror in self.source.mirrors() {
            let one = Source::new(vec![mirror.clone()]).expect("one mirror is a source");
            match self.manifest_from(&one, &mirror.to_string(), state) {
                Ok(accepted) => {
                    if best
                        .as_ref()
                        .is_none_or(|b| accepted.manifest.sequence > b.manifest.sequence)
                    {
                        best = Some(accepted);
                    }
                }
                Err(error) => problems.push(MirrorProblem {
                    mirror: mirror.to_string(),
                    error,
                }),
            }
        }
        if let Some(best) = best {
            return Ok(best);
        }
        match problems.len() {
            1 => Err(problems.pop().expect("one").error),
            _ => Err(UpdateError::NoManifest(problems)),
        }
    }

    fn manifest_from(
        &self,
        one: &Source,
        mirror: &str,
        state: &State,
    ) -> Result<Accepted, UpdateError> {
        let manifest_path = RelPath::new(MANIFEST_FILE).expect("valid");
        let signature_path = RelPath::new(SIGNATURE_FILE).expect("valid");
        let fetch = |rel: &RelPath, cap| {
            self.fetcher
                .fetch_small(one, rel, cap)
                .map_err(|source| UpdateError::Fetch {
                    file: rel.to_string(),
                    source,
                })
        };
        // The manifest and its signature are replaced one after the other when a
        // release is published: a signature that does not match may be that moment,
        // so both are fetched once more before giving up.
        let mut retried = false;
        let (bytes, signed_by) = loop {
            let bytes = fetch(&manifest_path, MAX_MANIFEST_SIZE)?;
            let signature = fetch(&signature_path, MAX_SIGNATURE_FILE)?;
            match verify_manifest(&bytes, &signature, &self.trusted) {
                Ok(keys) => break (bytes, keys),
                Err(SignatureError::BadSignature { .. }) if !retried => retried = true,
                Err(source) => {
                    return Err(UpdateError::Signature {
                        mirror: mirror.to_string(),
                        source,
                    });
                }
            }
        };
        let manifest = Manifest::parse(&bytes).map_err(|source| UpdateError::Manifest {
            mirror: mirror.to_string(),
            source,
        })?;
        self.check_product(&manifest, mirror, state)?;
        self.check_channel(&manifest, mirror, state)?;
        if let Some(accepted) = state.accepted(&manifest.product, &manifest.channel)
            && manifest.sequence < accepted
        {
            return Err(UpdateError::Rollback {
                mirror: mirror.to_string(),
                product: manifest.product,
                channel: manifest.channel,
                got: manifest.sequence,
                accepted,
                state: self.state_path().to_path_buf(),
            });
        }
        let now = Timestamp::now();
        let expired = manifest.is_expired(now);
        if expired && !self.policy.allow_expired {
            return Err(UpdateError::Expired {
                mirror: mirror.to_string(),
                expires: manifest.expires,
                now,
            });
        }
        Ok(Accepted {
            manifest,
            from: mirror.to_string(),
            signed_by,
            expired,
        })
    }

    /// The product must be the one asked for, or else one the state file has accepted
    /// before (a state file binds a target to its product; channels may change).
    fn check_product(
        &self,
        manifest: &Manifest,
        mirror: &str,
        state: &State,
    ) -> Result<(), UpdateError> {
        let expected = match &self.product {
            Some(p) if *p != manifest.product => format!("product {p:?} was asked for"),
            Some(_) => return Ok(()),
            None => {
                let products = state.products();
                if products.is_empty() || products.contains(&manifest.product.as_str()) {
                    return Ok(());
                }
                format!(
                    "the state file {} has accepted only {products:?} for this target (pass \
                     --product to switch products)",
                    self.state_path().display()
                )
            }
        };
        Err(UpdateError::WrongProduct {
            mirror: mirror.to_string(),
            got: manifest.product.clone(),
            expected,
        })
    }

    /// The channel must be the one asked for, or else one the state file has accepted
    /// before for the manifest's product: a mirror cannot move a device from `stable`
    /// to `beta` (or back, to an older manifest of another channel) on its own.
    fn check_channel(
        &self,
        manifest: &Manifest,
        mirror: &str,
        state: &State,
    ) -> Result<(), UpdateError> {
        let expected = match &self.channel {
            Some(c) if *c != manifest.channel => format!("channel {c:?} was asked for"),
            Some(_) => return Ok(()),
            None => {
                let channels = state.channels(&manifest.product);
                if channels.is_empty() || channels.contains(&manifest.channel.as_str()) {
                    return Ok(());
                }
                format!(
                    "the state file {} has accepted only {channels:?} of {} for this target \
                     (pass --channel to switch channels)",
                    self.state_path().display(),
                    manifest.product
                )
            }
        };
        Err(UpdateError::WrongChannel {
            mirror: mirror.to_string(),
            got: manifest.channel.clone(),
            expected,
        })
    }

    fn choose_artifact<'m>(
        &self,
        manifest: &'m Manifest,
    ) -> Result<&'m crate::manifest::Artifact, UpdateError> {
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
                "release {} has several artifacts ({}); say which one the target is with \
                     --artifact",
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
    let (size, sha256) = crate::hash_reader(file, &mut |chunk| {
        done += chunk.len() as u64;
        events(Event::Hashing { done, total });
    })
    .map_err(|e| UpdateError::Target {
        path: target.to_path_buf(),
        problem: "cannot read it".into(),
        source: Some(e),
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

/// One update in progress.
struct Run<'u, 'e> {
    updater: &'u Updater,
    cache: &'u Path,
    downloaded: u64,
    events: &'e mut dyn FnMut(Event<'_>),
}

impl Run<'_, '_> {
    /// Applies a chain of patches: each intermediate release goes to the download
    /// directory, the last is renamed over the target.
    fn patches(&mut self, steps: &[Step], target: &Path) -> Result<(), UpdateError> {
        let mut current = target.to_path_buf();
        let result = (|| {
            for (i, step) in steps.iter().enumerate() {
                let dest = if i + 1 == steps.len() {
                    target.to_path_buf()
                } else {
                    self.cache.join(format!("{}.step", step.target.sha256))
                };
                self.step(i, steps.len(), step, Some(&current), &dest)?;
                if current != target {
                    let _ = fs::remove_file(&current);
                }
                current = dest;
            }
            Ok(())
        })();
        if current != target {
            let _ = fs::remove_file(&current);
        }
        result
    }

    fn full(&mut self, step: &Step, target: &Path) -> Result<(), UpdateError> {
        self.step(0, 1, step, None, target)
    }

    /// Fetches one file of the publish directory (or finds it on a local mirror).
    fn fetch(
        &mut self,
        index: usize,
        steps: usize,
        step: &Step,
    ) -> Result<crate::fetch::Fetched, UpdateError> {
        let events = &mut *self.events;
        let received = self.updater.fetcher.received();
        let fetched = self
            .updater
            .fetcher
            .fetch_file(
                &self.updater.source,
                &step.path,
                step.file,
                self.cache,
                &mut |p| {
                    events(Event::Download {
                        step: index,
                        steps,
                        file: step,
                        done: p.done,
                        total: p.total,
                    })
                },
            )
            .map_err(|source| UpdateError::Fetch {
                file: step.path.to_string(),
                source,
            });
        // Counted whether or not the download succeeded: failed attempts cost bytes too.
        self.downloaded += self.updater.fetcher.received() - received;
        fetched
    }

    /// Removes a downloaded file once used (a file on a local mirror is never touched).
    fn discard(&self, fetched: &crate::fetch::Fetched) {
        if fetched.path.starts_with(self.cache) {
            let _ = fs::remove_file(&fetched.path);
        }
    }

    /// The applier's limits under the policy.
    fn limits(&self) -> Limits {
        Limits {
            max_apply_memory: self.updater.policy.max_apply_memory,
        }
    }

    /// Fetches one file and applies it from `old` to `dest`.
    fn step(
        &mut self,
        index: usize,
        steps: usize,
        step: &Step,
        old: Option<&Path>,
        dest: &Path,
    ) -> Result<(), UpdateError> {
        let fetched = self.fetch(index, steps, step)?;
        let limits = self.limits();
        let events = &mut *self.events;
        let patch = Patch::open(&fetched.path)?;
        let header = patch.header();
        let problem = if header.method != step.method {
            Some(format!(
                "method {} instead of {}",
                header.method, step.method
            ))
        } else if header.target != step.target {
            Some("it makes another file than the manifest says".to_string())
        } else if header.source != step.base {
            Some("it applies to another file than the manifest says".to_string())
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(UpdateError::Mismatch {
                path: fetched.path,
                problem,
            });
        }
        let applied = crate::apply::apply_unlocked(
            old,
            &patch,
            dest,
            &limits,
            Some(&self.updater.trusted),
            &mut |p| {
                events(Event::Apply {
                    step: index,
                    steps,
                    phase: p.phase,
                    done: p.done,
                    total: p.total,
                })
            },
        );
        drop(patch);
        // A downloaded file is of no further use once applied, or once it failed to
        // apply.
        self.discard(&fetched);
        applied?;
        Ok(())
    }
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
