//! The full images of the new file artifacts: each made, signed and checked by
//! unpacking it, with its manifest entry.

use std::path::Path;

use deltaapply::manifest::{Artifact, ArtifactKind, FullImage};
use deltaapply::{Method, Sha256Digest, TrustedKeys};

use super::{BuildError, sign_container};
use crate::keys::SecretKey;
use crate::store::{self, FULL_DIR, StoreError};
use crate::{Settings, make_one};

/// Each file artifact's manifest entry (without patches yet) and its full image's bytes.
pub(super) fn full_images(
    files: &[(String, Vec<u8>)],
    settings: &Settings,
    key: &SecretKey,
    trusted: &TrustedKeys,
    scratch: &Path,
) -> Result<Vec<(Artifact, Vec<u8>)>, BuildError> {
    let mut artifacts = Vec::new();
    for (name, bytes) in files {
        let mut full_bytes =
            make_one(Method::Full, &[], bytes, settings).map_err(|source| BuildError::Diff {
                artifact: name.clone(),
                version: "(none: full image)".into(),
                source,
            })?;
        sign_container(&mut full_bytes, key);
        let path = store::content_path(FULL_DIR, &full_bytes);
        let staged = scratch.join(format!("full-{}", artifacts.len()));
        std::fs::write(&staged, &full_bytes).map_err(StoreError::new("cannot write", &staged))?;
        let check = scratch.join("check");
        let report = store::apply_checked(None, &staged, &check, trusted).map_err(|source| {
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
    Ok(artifacts)
}
