//! `deltapack prune`: removes the content files no manifest a client may still hold
//! references.
//!
//! A client may hold the current manifest, the one before it (always: it may have
//! fetched it just before the new one was published), and any older one replaced less
//! than the grace period ago. `build` keeps a copy of every manifest it publishes in
//! `manifests/<sequence>.toml`; prune reads them, keeps every file those manifests
//! name, and removes the other files of `patches/`, `full/` and `files/`, and the
//! copies of manifests past the grace period. It needs the current manifest signed by a
//! trusted key, and refuses to remove anything when the copy of the previous manifest
//! is missing or a copy it needs does not parse: it never guesses.

use std::collections::{BTreeMap, BTreeSet};

use deltaapply::TrustedKeys;
use deltaapply::manifest::{MANIFEST_FILE, MAX_MANIFEST_SIZE, Manifest, Timestamp};
use deltaapply::signature::verify_manifest;

use crate::store::{
    FILES_DIR, FULL_DIR, HISTORY_DIR, PATCH_DIR, Store, StoreError, history_path, references,
};

/// How to prune.
#[derive(Debug, Clone)]
pub struct PruneSpec {
    /// A manifest replaced longer ago than this (seconds) is no longer held by clients.
    pub grace: u64,
    /// The time now.
    pub now: Timestamp,
    /// List what would be removed, remove nothing.
    pub dry_run: bool,
}

/// What prune kept and removed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PruneReport {
    /// The sequence numbers of the manifests whose files were kept, newest first.
    pub kept_manifests: Vec<u64>,
    /// Files the kept manifests name (all kept).
    pub kept_files: usize,
    /// Files removed (or, with `dry_run`, that would be), sorted.
    pub removed: Vec<String>,
    /// Whether anything was actually removed.
    pub dry_run: bool,
}

/// Why nothing was pruned.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// A file could not be read, listed or removed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// There is no manifest.
    #[error("{0} has no manifest.toml: nothing to prune against")]
    NoManifest(String),
    /// The current manifest's signature does not check out.
    #[error("the manifest of {location} is not signed by the trusted keys; refusing to prune")]
    Untrusted {
        /// The location.
        location: String,
        /// Why.
        #[source]
        source: deltaapply::signature::SignatureError,
    },
    /// A manifest needed to decide does not parse, or is missing.
    #[error("{0}; refusing to remove anything")]
    History(String),
}

/// Whether `name` is `<64 lowercase hex digits>.dpatch`.
fn is_content_name(name: &str) -> bool {
    name.strip_suffix(".dpatch").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Prunes `store` against `trusted`.
pub fn prune(
    store: &Store,
    trusted: &TrustedKeys,
    spec: &PruneSpec,
) -> Result<PruneReport, PruneError> {
    let location = store.shown().display().to_string();
    let signed = store
        .read_manifest()?
        .ok_or_else(|| PruneError::NoManifest(location.clone()))?;
    verify_manifest(&signed.manifest, &signed.signature, trusted).map_err(|source| {
        PruneError::Untrusted {
            location: location.clone(),
            source,
        }
    })?;
    let current = Manifest::parse(&signed.manifest)
        .map_err(|e| PruneError::History(format!("{MANIFEST_FILE} does not parse: {e}")))?;

    // The copies of older manifests, by sequence (later ones are a failed build's).
    let mut copies = BTreeSet::new();
    for name in store.list(HISTORY_DIR)? {
        if let Some(seq) = name
            .strip_suffix(".toml")
            .and_then(|n| n.parse::<u64>().ok())
        {
            copies.insert(seq);
        }
    }
    let parse_copy = |seq: u64| -> Result<Manifest, PruneError> {
        let rel = history_path(seq, false);
        let bytes = store
            .read(&rel, MAX_MANIFEST_SIZE)?
            .ok_or_else(|| PruneError::History(format!("{rel} vanished while pruning")))?;
        Manifest::parse(&bytes)
            .map_err(|e| PruneError::History(format!("{rel} does not parse: {e}")))
    };

    let mut live: BTreeMap<u64, Manifest> = BTreeMap::new();
    let mut successor_created = current.created;
    let previous = current.sequence.checked_sub(1).filter(|s| *s > 0);
    if let Some(prev) = previous
        && !copies.contains(&prev)
    {
        return Err(PruneError::History(format!(
            "there is no copy of the previous manifest (sequence {prev}, {}) in {location}: it \
             was published by a deltapack without manifest history, and clients may still \
             hold it",
            history_path(prev, false)
        )));
    }
    // Newest first: each older manifest is live while its successor is younger than
    // the grace period; the previous one always is.
    let mut removable_copies = Vec::new();
    let mut seq = current.sequence;
    while let Some(older) = seq.checked_sub(1).filter(|s| *s > 0) {
        seq = older;
        if !copies.contains(&older) {
            // A gap: nothing older can be placed in time; what the copies there name is
            // kept.
            for &s in copies.range(..older) {
                live.insert(s, parse_copy(s)?);
            }
            break;
        }
        let held =
            Some(older) == previous || successor_created.0.saturating_add(spec.grace) > spec.now.0;
        if held {
            let m = parse_copy(older)?;
            successor_created = m.created;
            live.insert(older, m);
        } else {
            removable_copies.push(older);
            // Every older copy is older still: none of them is held either.
            removable_copies.extend(copies.range(..older).copied());
            break;
        }
    }

    let mut kept: BTreeSet<String> = references(&current).into_keys().collect();
    for m in live.values() {
        kept.extend(references(m).into_keys());
    }
    let mut removed = Vec::new();
    for kind in [PATCH_DIR, FULL_DIR, FILES_DIR] {
        for name in store.list(kind)? {
            let rel = format!("{kind}/{name}");
            // Only content-addressed names: anything else there is not ours to remove.
            if !is_content_name(&name) {
                continue;
            }
            if !kept.contains(&rel) {
                removed.push(rel);
            }
        }
    }
    removed.sort();
    let mut copies_removed: Vec<String> = removable_copies
        .iter()
        .flat_map(|&s| [history_path(s, false), history_path(s, true)])
        .collect();
    copies_removed.sort();
    if !spec.dry_run {
        // Content first: a copy of a manifest goes only once its files have.
        for rel in removed.iter().chain(&copies_removed) {
            store.remove(rel)?;
        }
    }
    let mut kept_manifests: Vec<u64> = std::iter::once(current.sequence)
        .chain(live.keys().rev().copied())
        .collect();
    kept_manifests.dedup();
    removed.extend(copies_removed);
    Ok(PruneReport {
        kept_manifests,
        kept_files: kept.len(),
        removed,
        dry_run: spec.dry_run,
    })
}
