//! `deltapack build`: adds a release to a publish directory.
//!
//! The directory is the pipeline's state. Its signed manifest (if any) names the
//! current release and the older ones still supported, each with a full image in the
//! directory. A build verifies that manifest, rebuilds the last `keep` releases'
//! artifacts from their full images (checking every hash), makes a patch from each to
//! the new artifact in parallel, applies every patch to its base and checks the
//! result, drops patches not worth it, writes the content-addressed files, and finally
//! the new manifest and its signature. Same inputs, settings, time and key give
//! byte-identical files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use deltaapply::manifest::{
    Artifact, ArtifactKind, FullImage, MANIFEST_FILE, MANIFEST_FORMAT, Manifest, ManifestError,
    PatchEntry, PreviousRelease, SIGNATURE_FILE, Timestamp,
};
use deltaapply::signature::{SignatureError, encode_signature_file, verify_manifest};
use deltaapply::{Method, Sha256Digest, TrustedKeys};

use crate::keys::SecretKey;
use crate::store::{self, FULL_DIR, PATCH_DIR, StoreError};
use crate::{DiffError, MethodChoice, Settings, make_one, make_patch};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// The publish directory.
    pub out: PathBuf,
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
    /// The method chosen.
    pub method: Method,
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

fn settings_err(msg: impl Into<String>) -> BuildError {
    BuildError::Settings(msg.into())
}

/// A base artifact to diff from.
struct Base {
    version: String,
    artifact: String,
    /// The rebuilt file (in the build's scratch directory).
    file: PathBuf,
}

/// Adds the release described by `spec` to its publish directory, signed with `key`.
/// `events` hears about progress (on the calling thread).
pub fn build(
    spec: &BuildSpec,
    key: &SecretKey,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<BuildReport, BuildError> {
    check_spec(spec)?;
    let trusted = TrustedKeys::single(key.public_key());
    let dir = &spec.out;
    std::fs::create_dir_all(dir).map_err(StoreError::new("cannot create", dir))?;

    // 1. The existing state, verified before anything in it is used.
    let old = match store::read_manifest(dir)? {
        None => None,
        Some(signed) => {
            verify_manifest(&signed.manifest, &signed.signature, &trusted).map_err(|source| {
                BuildError::UntrustedState {
                    dir: dir.clone(),
                    key_id: key.key_id(),
                    source,
                }
            })?;
            Some(
                Manifest::parse(&signed.manifest).map_err(|source| BuildError::BadState {
                    path: dir.join(MANIFEST_FILE),
                    source,
                })?,
            )
        }
    };
    let (product, channel, sequence) = match &old {
        None => (
            spec.product.clone().ok_or_else(|| {
                settings_err("the first release needs a product name (--product)")
            })?,
            spec.channel.clone().unwrap_or_else(|| "stable".into()),
            1,
        ),
        Some(m) => {
            for (what, given, have) in [
                ("product", &spec.product, &m.product),
                ("channel", &spec.channel, &m.channel),
            ] {
                if let Some(given) = given
                    && given != have
                {
                    return Err(settings_err(format!(
                        "{what} {given:?} does not match the publish directory's {have:?}"
                    )));
                }
            }
            if m.version == spec.version || m.previous.iter().any(|p| p.version == spec.version) {
                return Err(settings_err(format!(
                    "version {:?} is already published in {} (current: {}, sequence {}); give the new release a new version",
                    spec.version,
                    dir.display(),
                    m.version,
                    m.sequence
                )));
            }
            // A TOML integer holds at most i64::MAX.
            let Some(sequence) = m.sequence.checked_add(1).filter(|&s| s <= i64::MAX as u64) else {
                return Err(settings_err(format!(
                    "the manifest in {} has sequence {}, the largest there can be; it cannot be \
                     raised for a new release",
                    dir.display(),
                    m.sequence
                )));
            };
            (m.product.clone(), m.channel.clone(), sequence)
        }
    };
    for (what, value) in [
        ("product", &product),
        ("channel", &channel),
        ("version", &spec.version),
    ] {
        deltaapply::manifest::check_label(what, value).map_err(|e| settings_err(e.to_string()))?;
    }

    // 2. The new artifacts: files are read, directories are tree artifacts.
    let mut new_files = Vec::new();
    let mut new_trees = Vec::new();
    for (name, path) in &spec.artifacts {
        if path.is_dir() {
            new_trees.push((name.clone(), path.clone()));
            continue;
        }
        let bytes = std::fs::read(path).map_err(StoreError::new("cannot read artifact", path))?;
        new_files.push((name.clone(), bytes));
    }

    // 3. Older releases still supported, newest first, and their full images rebuilt.
    let releases: Vec<PreviousRelease> = old
        .as_ref()
        .map(|m| {
            let current = PreviousRelease {
                version: m.version.clone(),
                sequence: m.sequence,
                artifacts: m.artifacts.clone(),
            };
            let mut kept: Vec<PreviousRelease> = std::iter::once(current)
                .chain(m.previous.iter().cloned())
                .take(spec.keep)
                .collect();
            // A kept release keeps the patches to it from releases still kept (for
            // chains); patches from releases dropped go. Only the newest release's
            // tree files are listed with their own full containers.
            for i in 0..kept.len() {
                let older: BTreeSet<String> =
                    kept[i + 1..].iter().map(|r| r.version.clone()).collect();
                for a in &mut kept[i].artifacts {
                    a.patches.retain(|p| older.contains(&p.base_version));
                    for e in &mut a.entries {
                        e.full = None;
                    }
                }
            }
            kept
        })
        .unwrap_or_default();
    let scratch = tempfile::Builder::new()
        .prefix(".deltapack-build-")
        .tempdir_in(dir)
        .map_err(StoreError::new("cannot create a scratch directory in", dir))?;
    let mut bases = Vec::new();
    let mut seen = BTreeSet::new();
    let mut tree_bases: Vec<(String, Vec<crate::tree::publish::TreeBase>)> = new_trees
        .iter()
        .map(|(name, _)| (name.clone(), Vec::new()))
        .collect();
    for release in &releases {
        for a in &release.artifacts {
            if a.kind == ArtifactKind::Tree {
                let Some((_, list)) = tree_bases.iter_mut().find(|(n, _)| *n == a.name) else {
                    continue;
                };
                if !seen.insert((a.name.clone(), a.sha256)) {
                    continue;
                }
                let tree_dir = scratch.path().join(format!("tree-base-{}", seen.len()));
                rebuild(dir, &release.version, a, &tree_dir, &trusted)?;
                list.push(crate::tree::publish::TreeBase {
                    version: release.version.clone(),
                    dir: tree_dir,
                });
                continue;
            }
            let Some((_, new_bytes)) = new_files.iter().find(|(n, _)| *n == a.name) else {
                continue;
            };
            // Unchanged artifacts need no patch; a base equal to a newer base needs
            // only the newer one's.
            if a.sha256 == Sha256Digest::of(new_bytes) || !seen.insert((a.name.clone(), a.sha256)) {
                continue;
            }
            let file = scratch.path().join(format!("base-{}", bases.len()));
            rebuild(dir, &release.version, a, &file, &trusted)?;
            bases.push(Base {
                version: release.version.clone(),
                artifact: a.name.clone(),
                file,
            });
        }
    }

    // 4. Full images of the new artifacts.
    // Nothing else runs meanwhile, so the full images use every core (the bytes do not
    // depend on the thread count).
    let full_settings = Settings {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..spec.settings.clone()
    };
    let mut artifacts = Vec::new();
    for (name, bytes) in &new_files {
        let mut full_bytes =
            make_one(Method::Full, &[], bytes, &full_settings).map_err(|source| {
                BuildError::Diff {
                    artifact: name.clone(),
                    version: "(none: full image)".into(),
                    source,
                }
            })?;
        sign_container(&mut full_bytes, key);
        let path = store::content_path(FULL_DIR, &full_bytes);
        let staged = scratch.path().join(format!("full-{}", artifacts.len()));
        std::fs::write(&staged, &full_bytes).map_err(StoreError::new("cannot write", &staged))?;
        let check = scratch.path().join("check");
        let report = store::apply_checked(None, &staged, &check, &trusted).map_err(|source| {
            BuildError::SelfCheck {
                artifact: name.clone(),
                version: "(full image)".into(),
                source: Box::new(source),
            }
        })?;
        assert_eq!(
            report.target.sha256,
            Sha256Digest::of(bytes),
            "the full image encoder records the artifact's hash"
        );
        let header = deltaapply::Header::decode(&full_bytes, full_bytes.len() as u64)
            .expect("encoder writes valid headers");
        artifacts.push((
            Artifact {
                name: name.clone(),
                size: bytes.len() as u64,
                sha256: Sha256Digest::of(bytes),
                full: FullImage {
                    path,
                    size: full_bytes.len() as u64,
                    sha256: Sha256Digest::of(&full_bytes),
                    compression: "zstd".into(),
                    apply_memory: header.apply_memory,
                },
                patches: Vec::new(),
                kind: ArtifactKind::File,
                entries: Vec::new(),
            },
            full_bytes,
        ));
    }

    // 4b. Tree artifacts: full image, per-file containers, tree patches.
    let mut tree_files = Vec::new();
    let mut tree_summaries = Vec::new();
    for ((name, path), (_, bases)) in new_trees.iter().zip(&tree_bases) {
        let published = crate::tree::publish::publish_tree(
            name,
            path,
            bases,
            &full_settings,
            spec.max_patch_share,
            key,
            &trusted,
            scratch.path(),
        )?;
        // An unchanged tree needs no patch from its own release.
        let mut artifact = published.artifact;
        artifact
            .patches
            .retain(|p| p.base_sha256 != artifact.sha256);
        tree_summaries.extend(published.summaries);
        tree_files.extend(published.files);
        artifacts.push((artifact, Vec::new()));
    }

    // 5. Patches, in parallel; each applied to its base and checked.
    events(BuildEvent::Planned {
        patches: bases.len(),
    });
    let full_sizes: Vec<(String, u64)> = artifacts
        .iter()
        .map(|(a, _)| (a.name.clone(), a.full.size))
        .collect();
    let jobs = Jobs {
        spec,
        key,
        trusted: &trusted,
        new_files: &new_files,
        full_sizes: &full_sizes,
        scratch: scratch.path(),
    };
    let made = jobs.run(&bases, events)?;
    let mut summaries = tree_summaries;
    let mut patch_files = tree_files;
    for (base, patch_bytes, summary) in made {
        let (artifact, _) = artifacts
            .iter_mut()
            .find(|(a, _)| a.name == base.artifact)
            .expect("bases are for new artifacts");
        if summary.omitted.is_none() {
            let path = store::content_path(PATCH_DIR, &patch_bytes);
            let header = deltaapply::Header::decode(&patch_bytes, patch_bytes.len() as u64)
                .expect("encoder writes valid headers");
            let source = header.source.expect("a delta method has a source");
            artifact.patches.push(PatchEntry {
                base_version: base.version.clone(),
                base_size: source.size,
                base_sha256: source.sha256,
                path: path.clone(),
                size: patch_bytes.len() as u64,
                sha256: Sha256Digest::of(&patch_bytes),
                method: header.method,
                apply_memory: header.apply_memory,
            });
            patch_files.push((path, patch_bytes));
        }
        summaries.push(summary);
    }

    // 6. The manifest: the new release, and the bases kept as previous releases.
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        product,
        channel,
        version: spec.version.clone(),
        sequence,
        created: spec.created,
        expires: Timestamp(spec.created.0.saturating_add(spec.valid_for)),
        artifacts: spec
            .artifacts
            .iter()
            .filter_map(|(name, _)| artifacts.iter().find(|(a, _)| a.name == *name))
            .map(|(a, _)| a.clone())
            .collect(),
        previous: releases,
    };
    manifest
        .validate()
        .map_err(|e| settings_err(format!("the new manifest would be invalid: {e}")))?;
    let manifest_bytes = render(&manifest);
    let signature = encode_signature_file(&[key.sign_manifest(&manifest_bytes)]);

    // 7. Publish: content files first, then the signature and the manifest.
    for (a, full_bytes) in &artifacts {
        if a.kind == ArtifactKind::File {
            store::write_file(&a.full.path.under(dir), full_bytes)?;
        }
    }
    for (path, bytes) in &patch_files {
        store::write_file(&path.under(dir), bytes)?;
    }
    store::write_file(&dir.join(SIGNATURE_FILE), signature.as_bytes())?;
    store::write_file(&dir.join(MANIFEST_FILE), &manifest_bytes)?;
    drop(scratch);

    let full_only: u64 = manifest.artifacts.iter().map(|a| a.full.size).sum::<u64>()
        + manifest
            .previous
            .iter()
            .flat_map(|r| &r.artifacts)
            .map(|a| a.full.size)
            .sum::<u64>();
    // Patches and tree artifacts' per-file containers (`files/`), each file once: the
    // same content is one content-addressed file however often it is listed.
    let mut other_files = BTreeSet::new();
    for a in &manifest.artifacts {
        for p in &a.patches {
            other_files.insert((p.path.as_str(), p.size));
        }
        for f in a.entries.iter().filter_map(|e| e.full.as_ref()) {
            other_files.insert((f.path.as_str(), f.size));
        }
    }
    let patch_bytes: u64 = other_files.iter().map(|(_, size)| size).sum();
    Ok(BuildReport {
        product: manifest.product.clone(),
        channel: manifest.channel.clone(),
        version: manifest.version.clone(),
        sequence: manifest.sequence,
        expires: manifest.expires.to_string(),
        artifacts: manifest
            .artifacts
            .iter()
            .map(|a| ArtifactSummary {
                name: a.name.clone(),
                size: a.size,
                sha256: a.sha256,
                full_size: a.full.size,
            })
            .collect(),
        patches: summaries,
        previous: manifest
            .previous
            .iter()
            .map(|r| r.version.clone())
            .collect(),
        publish_bytes: full_only
            + patch_bytes
            + manifest_bytes.len() as u64
            + signature.len() as u64,
        full_only_bytes: full_only,
    })
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

/// Rebuilds an older release's artifact from its full image into `dest` (a file, or a
/// directory for a tree artifact), checking the full image's size and hash against the
/// manifest, its signature, and the result's size and hash (a tree's: its total file
/// bytes and listing digest).
pub(crate) fn rebuild(
    dir: &Path,
    version: &str,
    artifact: &Artifact,
    dest: &Path,
    trusted: &TrustedKeys,
) -> Result<(), BuildError> {
    let path = artifact.full.path.under(dir);
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| BuildError::Base {
        artifact: artifact.name.clone(),
        version: version.to_string(),
        path: path.clone(),
        source,
    };
    let file_id = hash_file(&path).map_err(|e| fail(Box::new(e)))?;
    if file_id != (artifact.full.size, artifact.full.sha256) {
        return Err(fail(
            format!(
                "the file is {} bytes with sha256 {}, the manifest says {} bytes with sha256 {}",
                file_id.0, file_id.1, artifact.full.size, artifact.full.sha256
            )
            .into(),
        ));
    }
    let target = match artifact.kind {
        ArtifactKind::File => {
            store::apply_checked(None, &path, dest, trusted)
                .map_err(|e| fail(Box::new(e)))?
                .target
        }
        ArtifactKind::Tree => {
            crate::tree::publish::apply_checked(None, &path, dest, trusted).map_err(fail)?
        }
    };
    if target.size != artifact.size || target.sha256 != artifact.sha256 {
        return Err(fail(
            format!(
                "it holds {} bytes with sha256 {}, the manifest says {} bytes with sha256 {}",
                target.size, target.sha256, artifact.size, artifact.sha256
            )
            .into(),
        ));
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

type Made<'b> = (&'b Base, Vec<u8>, PatchSummary);

/// What every patch job shares.
struct Jobs<'a> {
    spec: &'a BuildSpec,
    key: &'a SecretKey,
    trusted: &'a TrustedKeys,
    new_files: &'a [(String, Vec<u8>)],
    full_sizes: &'a [(String, u64)],
    scratch: &'a Path,
}

impl Jobs<'_> {
    /// Makes, signs and checks one patch per base on `spec.jobs` threads. Results come
    /// back in base order whatever the scheduling, so the output is deterministic.
    fn run<'b>(
        &self,
        bases: &'b [Base],
        events: &mut dyn FnMut(BuildEvent),
    ) -> Result<Vec<Made<'b>>, BuildError> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let (tx, rx) = mpsc::channel::<(usize, Result<(Vec<u8>, PatchSummary), BuildError>)>();
        let jobs = self.spec.jobs.clamp(1, bases.len().max(1));
        let mut results: Vec<Option<(Vec<u8>, PatchSummary)>> = vec![None; bases.len()];
        let mut first_error = None;
        std::thread::scope(|s| {
            for _ in 0..jobs {
                let tx = tx.clone();
                let next = &next;
                s.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(base) = bases.get(i) else { break };
                        let result = self.one(base, i);
                        let failed = result.is_err();
                        if tx.send((i, result)).is_err() || failed {
                            // Stop taking work after a failure; others finish their own.
                            next.store(bases.len(), std::sync::atomic::Ordering::Relaxed);
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for (i, result) in rx {
                match result {
                    Ok((bytes, summary)) => {
                        events(BuildEvent::PatchDone(summary.clone()));
                        results[i] = Some((bytes, summary));
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        });
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(bases
            .iter()
            .zip(results)
            .map(|(base, r)| {
                let (bytes, summary) = r.expect("every base has a result when none failed");
                (base, bytes, summary)
            })
            .collect())
    }

    /// One patch: made, signed, dropped if not worth it, else applied to its base and
    /// checked.
    fn one(&self, base: &Base, index: usize) -> Result<(Vec<u8>, PatchSummary), BuildError> {
        let Jobs {
            spec,
            key,
            trusted,
            new_files,
            full_sizes,
            scratch,
        } = *self;
        let full_size = full_sizes
            .iter()
            .find(|(n, _)| *n == base.artifact)
            .map_or(0, |(_, s)| *s);
        let (_, new_bytes) = new_files
            .iter()
            .find(|(n, _)| *n == base.artifact)
            .expect("bases are for new artifacts");
        let old_bytes =
            std::fs::read(&base.file).map_err(StoreError::new("cannot read", &base.file))?;
        let made = make_patch(&old_bytes, new_bytes, MethodChoice::Auto, &spec.settings).map_err(
            |source| BuildError::Diff {
                artifact: base.artifact.clone(),
                version: base.version.clone(),
                source,
            },
        )?;
        drop(old_bytes);
        let mut bytes = made.bytes;
        sign_container(&mut bytes, key);
        let size = bytes.len() as u64;
        let share = size as f64 / full_size.max(1) as f64;
        let mut summary = PatchSummary {
            artifact: base.artifact.clone(),
            base_version: base.version.clone(),
            method: made.method,
            size,
            full_size,
            share,
            apply_memory: made.apply_memory,
            path: None,
            omitted: None,
        };
        if made.method == Method::Full {
            summary.omitted = Some("no delta beats the full image".into());
            return Ok((bytes, summary));
        }
        if share > spec.max_patch_share {
            summary.omitted = Some(format!(
                "{:.1}% of the full image, above --max-patch-share {:.0}%",
                share * 100.0,
                spec.max_patch_share * 100.0
            ));
            return Ok((bytes, summary));
        }
        let patch_file = scratch.join(format!("patch-{index}"));
        let out_file = scratch.join(format!("patched-{index}"));
        std::fs::write(&patch_file, &bytes)
            .map_err(StoreError::new("cannot write", &patch_file))?;
        let checked = store::apply_checked(Some(&base.file), &patch_file, &out_file, trusted)
            .map_err(|source| BuildError::SelfCheck {
                artifact: base.artifact.clone(),
                version: base.version.clone(),
                source: Box::new(source),
            })?;
        if checked.target.sha256 != Sha256Digest::of(new_bytes) {
            return Err(BuildError::SelfCheck {
                artifact: base.artifact.clone(),
                version: base.version.clone(),
                source: Box::new(deltaapply::Error::Corrupt {
                    path: patch_file,
                    problem: "the patch's target is not the new artifact".into(),
                }),
            });
        }
        let _ = std::fs::remove_file(&patch_file);
        let _ = std::fs::remove_file(&out_file);
        summary.path = Some(store::content_path(PATCH_DIR, &bytes).to_string());
        Ok((bytes, summary))
    }
}
