//! Why an update stopped: [`UpdateError`] (with its exit codes) and, for each mirror
//! that gave no usable manifest, a [`MirrorProblem`].

use std::io;
use std::path::PathBuf;

use super::{PlanError, StateError};
use deltaapply_apply::error_chain;
use deltaapply_apply::lock::LockError;
use deltaapply_apply::tree::apply::TreeApplyError;
use deltaapply_apply::{Error, ErrorKind};
use deltaapply_fetch::fetch::FetchError;
use deltaapply_format::manifest::{ManifestError, Timestamp};
use deltaapply_format::signature::SignatureError;

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
    /// A step of the mirror's key chain was refused (`format-spec/rotation.md`).
    #[error(
        "the key chain from {mirror} was refused; nothing was changed and the keys trusted \
         before stay trusted"
    )]
    Rotation {
        /// The mirror.
        mirror: String,
        /// Why.
        #[source]
        source: deltaapply_format::rotation::RotationError,
    },
    /// The manifest has the sequence accepted before but other bytes.
    #[error(
        "the manifest from {mirror} has sequence {sequence}, already accepted for {product} \
         {channel} with other bytes (state file {}); two releases under one sequence number \
         are refused, nothing was changed",
        state.display()
    )]
    SameSequence {
        /// The mirror.
        mirror: String,
        /// The product.
        product: String,
        /// The channel.
        channel: String,
        /// The sequence.
        sequence: u64,
        /// The state file.
        state: PathBuf,
    },
    /// The newest keys document the chain reached has expired.
    #[error(
        "the newest trusted keys (version {version}, from {mirror}) expired at {expires} (now \
         {now}); a policy that allows expired manifests accepts them; nothing was changed"
    )]
    KeysExpired {
        /// The mirror.
        mirror: String,
        /// The keys version.
        version: u64,
        /// When it expired.
        expires: Timestamp,
        /// The time now.
        now: Timestamp,
    },
    /// The keys file (the newest keys document accepted) cannot be used.
    #[error(
        "keys file {} cannot be used ({problem}); it records the newest release keys accepted, \
         so it is not ignored: restore it, or delete it to start again from the pinned keys",
        path.display()
    )]
    KeysFile {
        /// The keys file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
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
    /// The manifest's sequence is below the policy's floor (`Policy::min_sequence`).
    #[error(
        "the manifest from {mirror} has sequence {got}, below the lowest this device accepts \
         for {product} ({floor}, set by the embedder or the command line, whatever the state \
         file says); refusing a rollback, nothing was changed"
    )]
    BelowFloor {
        /// The mirror.
        mirror: String,
        /// The manifest's product.
        product: String,
        /// The manifest's sequence.
        got: u64,
        /// The floor.
        floor: u64,
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
         clock, a policy that allows expired manifests accepts it; nothing was changed"
    )]
    Expired {
        /// The mirror.
        mirror: String,
        /// When it expired.
        expires: Timestamp,
        /// The time now.
        now: Timestamp,
    },
    /// The device's clock is more than [`crate::CLOCK_SKEW`] behind the manifest's
    /// creation time, so it cannot tell whether the manifest has expired.
    #[error(
        "the manifest from {mirror} was created at {created}, more than a day after this \
         device's clock ({now}): a clock that far behind cannot tell a fresh manifest from \
         an expired one. Set the clock; a policy that allows expired manifests accepts it; \
         nothing was changed"
    )]
    ClockBehind {
        /// The mirror.
        mirror: String,
        /// When the manifest says it was created.
        created: Timestamp,
        /// The time now, by the device's clock.
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
         above the download limit of {limit}; the installed file is unchanged"
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
    /// What kind of failure this is ([`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            UpdateError::Fetch { source, .. } if source.is_cancelled() => ErrorKind::Cancelled,
            UpdateError::Fetch { source, .. } if source.is_local() => ErrorKind::Failure,
            UpdateError::Fetch { .. } => ErrorKind::Network,
            UpdateError::Signature { .. } => ErrorKind::Untrusted,
            UpdateError::Rotation { source, .. } => match source {
                deltaapply_format::rotation::RotationError::TooManySteps { .. } => {
                    ErrorKind::Refused
                }
                _ => ErrorKind::Untrusted,
            },
            UpdateError::KeysExpired { .. } | UpdateError::SameSequence { .. } => {
                ErrorKind::Refused
            }
            UpdateError::KeysFile { .. } => ErrorKind::Failure,
            UpdateError::Lock(e) => e.kind(),
            UpdateError::Manifest { .. } | UpdateError::Mismatch { .. } => ErrorKind::BadInput,
            UpdateError::WrongProduct { .. }
            | UpdateError::WrongChannel { .. }
            | UpdateError::Rollback { .. }
            | UpdateError::BelowFloor { .. }
            | UpdateError::Expired { .. }
            | UpdateError::ClockBehind { .. } => ErrorKind::Refused,
            UpdateError::NoManifest(problems) => {
                // The most alarming problem decides: an attack before a dead mirror.
                let codes: Vec<ErrorKind> = problems.iter().map(|p| p.error.kind()).collect();
                [
                    ErrorKind::Cancelled,
                    ErrorKind::Untrusted,
                    ErrorKind::Refused,
                    ErrorKind::BadInput,
                    ErrorKind::Network,
                ]
                .into_iter()
                .find(|c| codes.contains(c))
                .unwrap_or(ErrorKind::Failure)
            }
            UpdateError::State(_) | UpdateError::Target { .. } | UpdateError::Cache { .. } => {
                ErrorKind::Failure
            }
            UpdateError::Artifact(_) => ErrorKind::Usage,
            UpdateError::Plan(PlanError::FullForbidden { .. }) => ErrorKind::NoRoute,
            UpdateError::Plan(_) | UpdateError::FallbackTooLarge { .. } => ErrorKind::Limit,
            UpdateError::Apply(e) => e.kind(),
            UpdateError::TreeApply(e) => e.kind(),
            UpdateError::FallbackFailed { full, .. } => full.kind(),
        }
    }

    /// Whether the full image may succeed where a patch route failed this way: not
    /// when the failure is on this machine (the target cannot be written, the download
    /// directory is unusable), which the full image would hit too.
    pub(super) fn patch_specific(&self) -> bool {
        // A cancelled job stops: the full image is not tried.
        if self.kind() == ErrorKind::Cancelled {
            return false;
        }
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
