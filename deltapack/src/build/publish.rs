//! The last phases: the new manifest, written after every content file it references
//! (then its signature, then itself), and the report of what the build did.

use std::collections::BTreeSet;

use deltaapply::manifest::{
    Artifact, ArtifactKind, MANIFEST_FILE, MANIFEST_FORMAT, Manifest, PreviousRelease, RelPath,
    SIGNATURE_FILE, Timestamp,
};
use deltaapply::signature::encode_signature_file;

use super::state::Identity;
use super::{
    ArtifactSummary, BuildError, BuildReport, BuildSpec, PatchSummary, render, settings_err,
};
use crate::keys::SecretKey;
use crate::store::{self, Store};

/// The new release's manifest: its artifacts in the spec's order, and the bases kept
/// as previous releases. Validated before it is used.
pub(super) fn new_manifest(
    spec: &BuildSpec,
    identity: Identity,
    artifacts: &[(Artifact, Vec<u8>)],
    releases: Vec<PreviousRelease>,
) -> Result<Manifest, BuildError> {
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        product: identity.product,
        channel: identity.channel,
        version: spec.version.clone(),
        sequence: identity.sequence,
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
    Ok(manifest)
}

/// The sizes of the two files written last.
pub(super) struct Written {
    manifest: u64,
    signature: u64,
}

/// Publishes: the file artifacts' full images and the other content files first, then
/// the signature and the manifest, so that a reader sees the old release or the new
/// one, complete.
pub(super) fn write(
    store: &Store,
    manifest: &Manifest,
    artifacts: &[(Artifact, Vec<u8>)],
    patch_files: &[(RelPath, Vec<u8>)],
    key: &SecretKey,
) -> Result<Written, BuildError> {
    let manifest_bytes = render(manifest);
    let signature = encode_signature_file(&[key.sign_manifest(&manifest_bytes)]);
    for (a, full_bytes) in artifacts {
        if a.kind == ArtifactKind::File {
            store.write(a.full.path.as_str(), full_bytes)?;
        }
    }
    for (path, bytes) in patch_files {
        store.write(path.as_str(), bytes)?;
    }
    // A copy of the manifest for `deltapack prune` (devices never read it).
    store.write(
        &store::history_path(manifest.sequence, true),
        signature.as_bytes(),
    )?;
    store.write(
        &store::history_path(manifest.sequence, false),
        &manifest_bytes,
    )?;
    store.write(SIGNATURE_FILE, signature.as_bytes())?;
    store.write(MANIFEST_FILE, &manifest_bytes)?;
    Ok(Written {
        manifest: manifest_bytes.len() as u64,
        signature: signature.len() as u64,
    })
}

/// Puts the new release's full images into the download cache (named by SHA-256, as
/// [`Store::local_file`] looks for them), so that the next build on this runner needs
/// none of them from the bucket. Best effort: a cache that cannot be written only
/// costs a download later.
pub(super) fn seed_cache(
    cache: &std::path::Path,
    manifest: &Manifest,
    artifacts: &[(Artifact, Vec<u8>)],
    patch_files: &[(RelPath, Vec<u8>)],
) {
    for a in &manifest.artifacts {
        let bytes = match a.kind {
            ArtifactKind::File => artifacts
                .iter()
                .find(|(b, _)| b.name == a.name)
                .map(|(_, bytes)| bytes),
            ArtifactKind::Tree => patch_files
                .iter()
                .find(|(path, _)| *path == a.full.path)
                .map(|(_, bytes)| bytes),
        };
        if let Some(bytes) = bytes {
            let name = format!("{}.{}", a.full.sha256, store::EXTENSION);
            let _ = store::write_file(&cache.join(name), bytes);
        }
    }
}

/// What the build did, for its caller.
pub(super) fn report(
    manifest: &Manifest,
    summaries: Vec<PatchSummary>,
    written: Written,
) -> BuildReport {
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
    BuildReport {
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
        publish_bytes: full_only + patch_bytes + written.manifest + written.signature,
        full_only_bytes: full_only,
        downloaded_bytes: 0,
        uploaded_bytes: 0,
    }
}
