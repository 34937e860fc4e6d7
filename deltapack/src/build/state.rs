//! The publish directory's state: its signed manifest, verified before anything in it
//! is used, the new release's identity (product, channel, sequence) derived from it,
//! and the older releases still supported.

use std::collections::BTreeSet;

use deltaapply::TrustedKeys;
use deltaapply::manifest::{MANIFEST_FILE, Manifest, PreviousRelease};
use deltaapply::signature::verify_manifest;

use super::{BuildError, BuildSpec, settings_err};
use crate::store::Store;

/// Who the new release is.
#[derive(Debug, Clone)]
pub(super) struct Identity {
    /// The product.
    pub product: String,
    /// The channel.
    pub channel: String,
    /// The new manifest's sequence number.
    pub sequence: u64,
}

/// The directory's manifest, if any, once its signature checks out against the build
/// key and it parses, with the SHA-256 of its bytes.
pub(super) fn read_verified(
    store: &Store,
    key_id: deltaapply::KeyId,
    trusted: &TrustedKeys,
) -> Result<Option<(Manifest, deltaapply::Sha256Digest)>, BuildError> {
    let Some(signed) = store.read_manifest()? else {
        return Ok(None);
    };
    verify_manifest(&signed.manifest, &signed.signature, trusted).map_err(|source| {
        BuildError::UntrustedState {
            dir: store.shown(),
            key_id,
            source,
        }
    })?;
    let digest = deltaapply::Sha256Digest::of(&signed.manifest);
    Manifest::parse(&signed.manifest)
        .map(|m| Some((m, digest)))
        .map_err(|source| BuildError::BadState {
            path: store.shown_at(MANIFEST_FILE),
            source,
        })
}

/// The new release's product, channel and sequence: from the spec for the first
/// release, else those of the current manifest (which the spec must not contradict)
/// and its sequence plus one.
pub(super) fn identity(spec: &BuildSpec, old: Option<&Manifest>) -> Result<Identity, BuildError> {
    let dir = &spec.out;
    let identity = match old {
        None => Identity {
            product: spec.product.clone().ok_or_else(|| {
                settings_err("the first release needs a product name (--product)")
            })?,
            channel: spec.channel.clone().unwrap_or_else(|| "stable".into()),
            sequence: 1,
        },
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
                    spec.version, dir, m.version, m.sequence
                )));
            }
            // A TOML integer holds at most i64::MAX.
            let Some(sequence) = m.sequence.checked_add(1).filter(|&s| s <= i64::MAX as u64) else {
                return Err(settings_err(format!(
                    "the manifest in {} has sequence {}, the largest there can be; it cannot be \
                     raised for a new release",
                    dir, m.sequence
                )));
            };
            Identity {
                product: m.product.clone(),
                channel: m.channel.clone(),
                sequence,
            }
        }
    };
    for (what, value) in [
        ("product", &identity.product),
        ("channel", &identity.channel),
        ("version", &spec.version),
    ] {
        deltaapply::manifest::check_label(what, value).map_err(|e| settings_err(e.to_string()))?;
    }
    Ok(identity)
}

/// The older releases still supported once the new one is published, newest first:
/// the current one and its previous ones, at most `keep`. A kept release keeps the
/// patches to it from releases still kept (for chains); patches from releases dropped
/// go. Only the newest release's tree files are listed with their own full containers.
pub(super) fn kept_releases(old: Option<&Manifest>, keep: usize) -> Vec<PreviousRelease> {
    let Some(m) = old else {
        return Vec::new();
    };
    let current = PreviousRelease {
        version: m.version.clone(),
        sequence: m.sequence,
        artifacts: m.artifacts.clone(),
    };
    let mut kept: Vec<PreviousRelease> = std::iter::once(current)
        .chain(m.previous.iter().cloned())
        .take(keep)
        .collect();
    for i in 0..kept.len() {
        let older: BTreeSet<String> = kept[i + 1..].iter().map(|r| r.version.clone()).collect();
        for a in &mut kept[i].artifacts {
            a.patches.retain(|p| older.contains(&p.base_version));
            for e in &mut a.entries {
                e.full = None;
            }
        }
    }
    kept
}
