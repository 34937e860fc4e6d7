//! `deltapack build`: adds a release to a publish location (a directory or an
//! S3-compatible bucket, [`crate::store::Store`]).
//!
//! The location is the pipeline's state. Its signed manifest (if any) names the
//! current release and the older ones still supported, each with a full image in the
//! directory. A build verifies that manifest, rebuilds the last `keep` releases'
//! artifacts from their full images (checking every hash), makes a patch from each to
//! the new artifact in parallel, applies every patch to its base and checks the
//! result, drops patches not worth it, writes the content-addressed files, and finally
//! the new manifest and its signature. Same inputs, settings, time and key give
//! byte-identical files.

mod bases;
pub mod fanout;
mod files;
mod jobs;
mod publish;
mod state;
pub mod tree;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use deltaapply::manifest::{Manifest, ManifestError, SIGNATURE_FILE, Timestamp};
use deltaapply::signature::SignatureError;
use deltaapply::{PatchKind, PublicKey, Sha256Digest, TrustedKeys};

use crate::keys::SecretKey;
use crate::store::{Location, Store, StoreError};
use crate::{DiffError, Settings};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// The publish location: a directory, or `s3://bucket/prefix`.
    pub out: Location,
    /// Where base full images downloaded from a bucket are kept across builds, by
    /// SHA-256 (`None`: a temporary directory, so every build downloads its bases).
    /// Unused for a local directory, whose files are read in place.
    pub cache: Option<PathBuf>,
    /// Product name; required for the first release, must match afterwards.
    pub product: Option<String>,
    /// Channel name; defaults to `stable` for the first release, must match afterwards.
    pub channel: Option<String>,
    /// The new release's version.
    pub version: String,
    /// The new release's artifacts: name and file.
    pub artifacts: Vec<(String, PathBuf)>,
    /// How many older releases to make patches from (and keep as supported).
    pub keep: usize,
    /// A patch larger than this share of the full image is not published (0..=1).
    pub max_patch_share: f64,
    /// When the manifest is made.
    pub created: Timestamp,
    /// How long the manifest is valid, in seconds.
    pub valid_for: u64,
    /// Diff settings (level, apply-memory budget, threads per patch).
    pub settings: Settings,
    /// Patches made at the same time.
    pub jobs: usize,
}

/// Something worth telling the user while building.
#[derive(Debug, Clone)]
pub enum BuildEvent {
    /// Bases were read; `patches` patches will be made.
    Planned {
        /// Patches to make.
        patches: usize,
    },
    /// One patch is done (made, applied, checked), or was dropped.
    PatchDone(PatchSummary),
}

/// One (base, artifact) pair's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PatchSummary {
    /// The artifact.
    pub artifact: String,
    /// The older release.
    pub base_version: String,
    /// The method chosen (`tree` for a tree patch).
    pub method: PatchKind,
    /// Patch size in bytes.
    pub size: u64,
    /// Size of the artifact's full image.
    pub full_size: u64,
    /// `size / full_size`.
    pub share: f64,
    /// Memory applying it needs.
    pub apply_memory: u64,
    /// Where it was published; `None` if it was dropped.
    pub path: Option<String>,
    /// Why it was dropped.
    pub omitted: Option<String>,
}

/// What a build did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildReport {
    /// Product.
    pub product: String,
    /// Channel.
    pub channel: String,
    /// The new release's version.
    pub version: String,
    /// Its sequence number.
    pub sequence: u64,
    /// The manifest's expiry.
    pub expires: String,
    /// Each new artifact: name, size, full image size.
    pub artifacts: Vec<ArtifactSummary>,
    /// Every patch considered.
    pub patches: Vec<PatchSummary>,
    /// Older releases now supported, newest first.
    pub previous: Vec<String>,
    /// Bytes of every file the manifest references (full images, patches to the newest
    /// release, tree artifacts' per-file containers), plus the manifest and its
    /// signature.
    pub publish_bytes: u64,
    /// What the same releases would take as full images only.
    pub full_only_bytes: u64,
    /// Bytes downloaded from a bucket (the manifest, its signature, the key chain and
    /// the bases' full images not in the cache); 0 for a directory.
    pub downloaded_bytes: u64,
    /// Bytes uploaded to a bucket (content files not there yet, the signature and the
    /// manifest); 0 for a directory.
    pub uploaded_bytes: u64,
}

/// One new artifact.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ArtifactSummary {
    /// Name.
    pub name: String,
    /// Size.
    pub size: u64,
    /// SHA-256.
    pub sha256: Sha256Digest,
    /// Full image size.
    pub full_size: u64,
}

/// Why a build failed. Nothing is published unless every step succeeded: the
/// manifest is written last.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A setting is missing or out of range.
    #[error("{0}")]
    Settings(String),
    /// A file cannot be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The existing manifest's signature does not check out against the build key.
    #[error(
        "the existing manifest in {} is not signed by this key ({key_id}); refusing to build on a publish directory it cannot trust",
        dir.display()
    )]
    UntrustedState {
        /// The publish directory.
        dir: PathBuf,
        /// The build key's id.
        key_id: deltaapply::KeyId,
        /// Why.
        #[source]
        source: SignatureError,
    },
    /// The publish directory's key chain (`keys/`) does not verify.
    #[error("the key chain of {} cannot be trusted", dir.display())]
    KeyChain {
        /// The publish directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: Box<crate::rotation::RotateError>,
    },
    /// The build key is not among the keys of the newest version of the key chain, so
    /// appliers that follow the chain would refuse the manifest.
    #[error(
        "the build key ({key_id}) is not one of the keys of version {version} of the key \
         chain in {}: appliers following it would refuse this release (rotate the keys first \
         with `deltapack keys rotate`)",
        dir.display()
    )]
    KeyNotInChain {
        /// The publish directory.
        dir: PathBuf,
        /// The build key's id.
        key_id: deltaapply::KeyId,
        /// The newest version of the chain.
        version: u64,
    },
    /// The existing manifest does not parse.
    #[error("the existing manifest {} is invalid", path.display())]
    BadState {
        /// The manifest.
        path: PathBuf,
        /// Why.
        #[source]
        source: ManifestError,
    },
    /// A base's full image is missing or does not rebuild the artifact it should.
    #[error("cannot rebuild {artifact} {version} from {}", path.display())]
    Base {
        /// The artifact.
        artifact: String,
        /// The release.
        version: String,
        /// Its full image.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A patch could not be made.
    #[error("cannot make the patch {version} -> new for {artifact}")]
    Diff {
        /// The artifact.
        artifact: String,
        /// The base version.
        version: String,
        /// Why.
        #[source]
        source: DiffError,
    },
    /// A patch made here failed its own check: a bug, reported rather than published.
    #[error("the patch {version} -> new for {artifact} does not apply to its base; not publishing")]
    SelfCheck {
        /// The artifact.
        artifact: String,
        /// The base version.
        version: String,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A tree artifact could not be read or diffed.
    #[error("cannot make the tree patch {version} -> new for {artifact}")]
    Tree {
        /// The artifact.
        artifact: String,
        /// The base version, or what was being made.
        version: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The keys a build trusts in its publish directory: its own (`own`: the build key's
/// public half, or for `--plan` and `--shard` the keys given to trust), and with a key
/// chain (`keys/`), every key of its versions (the manifest and patches there may have
/// been signed before the last rotations). A signing key must be in the newest version.
fn build_keys(
    store: &Store,
    own: &[PublicKey],
    signer: Option<&SecretKey>,
) -> Result<TrustedKeys, BuildError> {
    let chain = crate::rotation::read_chain_in(store).map_err(|source| BuildError::KeyChain {
        dir: store.shown(),
        source: Box::new(source),
    })?;
    let mut keys = own.to_vec();
    if let Some(chain) = chain {
        if let Some(key) = signer
            && !chain.newest.keys.contains(&key.public_key())
        {
            return Err(BuildError::KeyNotInChain {
                dir: store.shown(),
                key_id: key.key_id(),
                version: chain.newest.version,
            });
        }
        keys.extend(chain.all_keys);
    }
    TrustedKeys::new(keys, 1).map_err(|e| settings_err(e.to_string()))
}

fn settings_err(msg: impl Into<String>) -> BuildError {
    BuildError::Settings(msg.into())
}

/// What every kind of build reads first: the location's verified state, the new
/// release's identity and inputs, the releases still supported, and a scratch
/// directory.
pub(crate) struct Prepared {
    store: Store,
    trusted: TrustedKeys,
    manifest_sha256: Option<Sha256Digest>,
    identity: state::Identity,
    inputs: Inputs,
    releases: Vec<deltaapply::manifest::PreviousRelease>,
    scratch: tempfile::TempDir,
    cache: PathBuf,
}

impl Prepared {
    /// The bases' sources.
    fn sources(&self) -> bases::Sources<'_> {
        bases::Sources {
            store: &self.store,
            cache: &self.cache,
            trusted: &self.trusted,
        }
    }
}

/// Opens the location and reads what every build needs, trusting `own` (and the key
/// chain's keys); `signer` is the key that will sign, if this build signs.
fn prepare(
    spec: &BuildSpec,
    own: &[PublicKey],
    signer: Option<&SecretKey>,
) -> Result<Prepared, BuildError> {
    check_spec(spec)?;
    if let Location::Dir(dir) = &spec.out {
        std::fs::create_dir_all(dir).map_err(StoreError::new("cannot create", dir))?;
    }
    let store = Store::open(&spec.out)?;
    let trusted = build_keys(&store, own, signer)?;
    let key_id = own
        .first()
        .map(PublicKey::id)
        .expect("a build trusts a key");
    let verified = state::read_verified(&store, key_id, &trusted)?;
    let manifest_sha256 = verified.as_ref().map(|(_, d)| *d);
    let old = verified.map(|(m, _)| m);
    let identity = state::identity(spec, old.as_ref())?;
    let inputs = read_artifacts(spec)?;
    let releases = state::kept_releases(old.as_ref(), spec.keep);
    // Beside the publish directory's files (same file system); for a bucket, in the
    // system's temporary directory.
    let scratch = match &spec.out {
        Location::Dir(dir) => tempfile::Builder::new()
            .prefix(".deltapack-build-")
            .tempdir_in(dir)
            .map_err(StoreError::new("cannot create a scratch directory in", dir))?,
        Location::S3(_) => tempfile::Builder::new()
            .prefix(".deltapack-build-")
            .tempdir()
            .map_err(StoreError::new(
                "cannot create a scratch directory in",
                &std::env::temp_dir(),
            ))?,
    };
    let cache = spec
        .cache
        .clone()
        .unwrap_or_else(|| scratch.path().join("downloads"));
    Ok(Prepared {
        store,
        trusted,
        manifest_sha256,
        identity,
        inputs,
        releases,
        scratch,
        cache,
    })
}

/// Adds the release described by `spec` to its publish directory, signed with `key`.
/// `events` hears about progress (on the calling thread).
///
/// The phases, each its own function: verify the existing state and derive the new
/// release's identity ([`state`]); read the new artifacts; rebuild the bases still
/// supported from their full images ([`bases`]); make the full images of file
/// artifacts ([`files`]) and everything a tree artifact publishes ([`tree`]); make the
/// patches in parallel, each checked against its base ([`jobs`]); write the new
/// manifest's content files first, then its signature and itself ([`publish`]).
pub fn build(
    spec: &BuildSpec,
    key: &SecretKey,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<BuildReport, BuildError> {
    let prepared = prepare(spec, &[key.public_key()], Some(key))?;
    finish(spec, key, prepared, None, events)
}

/// The rest of a build once [`prepare`]d: with `merge`, the file patches are the
/// shards' uploads for that plan (checked against it first) instead of made here.
fn finish(
    spec: &BuildSpec,
    key: &SecretKey,
    prepared: Prepared,
    merge: Option<&fanout::Plan>,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<BuildReport, BuildError> {
    if let Some(plan) = merge {
        plan.check_against(&fanout::Plan::of(spec, &prepared))?;
    }
    let Prepared {
        store,
        trusted,
        identity,
        inputs,
        releases,
        scratch,
        ..
    } = &prepared;
    let bases = bases::rebuild_all(
        &prepared.sources(),
        releases,
        inputs,
        scratch.path(),
        &bases::Select::ALL,
    )?;

    // Nothing else runs meanwhile, so the full images use every core (the bytes do not
    // depend on the thread count).
    let full_settings = Settings {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..spec.settings.clone()
    };
    let mut artifacts =
        files::full_images(&inputs.files, &full_settings, key, trusted, scratch.path())?;
    let trees = tree::publish_trees(
        &inputs.trees,
        &bases.trees,
        &full_settings,
        spec.max_patch_share,
        key,
        trusted,
        scratch.path(),
    )?;
    artifacts.extend(trees.artifacts.into_iter().map(|a| (a, Vec::new())));

    events(BuildEvent::Planned {
        patches: bases.files.len(),
    });
    let full_sizes: Vec<(String, u64)> = artifacts
        .iter()
        .map(|(a, _)| (a.name.clone(), a.full.size))
        .collect();
    let fetch = merge.map(|plan| fanout::fetcher(plan, store, &inputs.files));
    let jobs = jobs::Jobs {
        spec,
        key,
        trusted,
        new_files: &inputs.files,
        full_sizes: &full_sizes,
        scratch: scratch.path(),
        fetch: fetch.as_ref().map(|f| f as jobs::Fetch),
    };
    let made = jobs.run(&bases.files, events)?;
    let mut summaries = trees.summaries;
    let mut patch_files = trees.files;
    jobs::record(made, &mut artifacts, &mut summaries, &mut patch_files);

    let manifest = publish::new_manifest(spec, identity.clone(), &artifacts, releases.clone())?;
    let written = publish::write(store, &manifest, &artifacts, &patch_files, key)?;
    if let (Store::S3(_), Some(cache)) = (store, &spec.cache) {
        publish::seed_cache(cache, &manifest, &artifacts, &patch_files);
    }
    if let Some(plan) = merge {
        plan.remove_shard_files(store);
    }
    let mut report = publish::report(&manifest, summaries, written);
    report.downloaded_bytes = store.downloaded();
    report.uploaded_bytes = store.uploaded();
    Ok(report)
}

/// The new release's artifacts as given: files read, directories kept as paths.
struct Inputs {
    /// File artifacts: name and content.
    files: Vec<(String, Vec<u8>)>,
    /// Tree artifacts: name and directory.
    trees: Vec<(String, PathBuf)>,
}

/// Reads the new artifacts: files are read, directories are tree artifacts.
fn read_artifacts(spec: &BuildSpec) -> Result<Inputs, BuildError> {
    let mut inputs = Inputs {
        files: Vec::new(),
        trees: Vec::new(),
    };
    for (name, path) in &spec.artifacts {
        if path.is_dir() {
            inputs.trees.push((name.clone(), path.clone()));
            continue;
        }
        let bytes = std::fs::read(path).map_err(StoreError::new("cannot read artifact", path))?;
        inputs.files.push((name.clone(), bytes));
    }
    Ok(inputs)
}

/// The manifest's bytes: a comment line, then `toml`'s rendering (deterministic: field
/// order is the struct's, arrays keep their order).
pub fn render(manifest: &Manifest) -> Vec<u8> {
    let body = toml::to_string(manifest).expect("a manifest always serialises");
    format!(
        "# deltapack release manifest (format-spec/manifest-v1.md); signed by {SIGNATURE_FILE}\n\n{body}"
    )
    .into_bytes()
}

fn check_spec(spec: &BuildSpec) -> Result<(), BuildError> {
    if spec.artifacts.is_empty() {
        return Err(settings_err(
            "no artifacts: give at least one --artifact NAME=PATH",
        ));
    }
    let mut names = BTreeSet::new();
    for (name, _) in &spec.artifacts {
        deltaapply::manifest::check_artifact_name(name).map_err(|e| settings_err(e.to_string()))?;
        if !names.insert(name) {
            return Err(settings_err(format!("artifact {name:?} is given twice")));
        }
    }
    if !(0.0..=1.0).contains(&spec.max_patch_share) {
        return Err(settings_err("--max-patch-share must be between 0 and 1"));
    }
    if spec.keep > deltaapply::manifest::MAX_PREVIOUS {
        return Err(settings_err(format!(
            "--keep must be at most {}",
            deltaapply::manifest::MAX_PREVIOUS
        )));
    }
    if spec.valid_for == 0 {
        return Err(settings_err("the manifest must be valid for some time"));
    }
    Ok(())
}

/// Size and SHA-256 of a file.
pub fn hash_file(path: &Path) -> std::io::Result<(u64, Sha256Digest)> {
    let file = std::fs::File::open(path)?;
    deltaapply::hash_reader(file, &mut |_| {})
}

pub(crate) fn sign_container(bytes: &mut [u8], key: &SecretKey) {
    let len = bytes.len() as u64;
    let mut header = deltaapply::Header::decode(bytes, len).expect("encoder writes valid headers");
    key.sign_header(&mut header);
    bytes[..deltaapply::container::HEADER_LEN].copy_from_slice(&header.encode());
}
