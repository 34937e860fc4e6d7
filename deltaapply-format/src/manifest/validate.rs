//! Validation of a parsed manifest: every field's range and the cross-field rules of
//! `format-spec/manifest-v1.md`, and the name checks producers share with it.

use std::collections::BTreeSet;

use super::{
    Artifact, ArtifactKind, FullImage, MANIFEST_FORMAT, MAX_ARTIFACTS, MAX_NAME_LEN, MAX_PREVIOUS,
    Manifest, ManifestError, PatchEntry,
};
use crate::digest::Sha256Digest;
use crate::method::{Method, PatchKind};

impl Manifest {
    /// Checks every field's range and the cross-field rules of the spec.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let invalid = |field: &str, problem: String| ManifestError::Invalid {
            field: field.to_string(),
            problem,
        };
        if self.format != MANIFEST_FORMAT {
            return Err(ManifestError::UnsupportedFormat {
                format: self.format,
            });
        }
        check_name("product", &self.product, NameKind::Label)?;
        check_name("channel", &self.channel, NameKind::Label)?;
        check_name("version", &self.version, NameKind::Label)?;
        if self.sequence == 0 {
            return Err(invalid("sequence", "must be at least 1".into()));
        }
        if self.expires <= self.created {
            return Err(invalid(
                "expires",
                format!("{} is not after created {}", self.expires, self.created),
            ));
        }
        let older: Vec<&str> = self.previous.iter().map(|r| r.version.as_str()).collect();
        check_artifacts("artifact", &self.artifacts, &older)?;
        if self.previous.len() > MAX_PREVIOUS {
            return Err(invalid(
                "previous",
                format!("more than {MAX_PREVIOUS} older releases"),
            ));
        }
        let mut versions = BTreeSet::from([self.version.as_str()]);
        let mut last_sequence = self.sequence;
        for (i, r) in self.previous.iter().enumerate() {
            let at = format!("previous[{i}]");
            check_name(&format!("{at}.version"), &r.version, NameKind::Label)?;
            if !versions.insert(r.version.as_str()) {
                return Err(invalid(
                    &format!("{at}.version"),
                    format!("version {:?} is listed twice", r.version),
                ));
            }
            if r.sequence >= last_sequence {
                return Err(invalid(
                    &format!("{at}.sequence"),
                    "must be lower than the newer release's before it".into(),
                ));
            }
            last_sequence = r.sequence;
            check_artifacts(&format!("{at}.artifact"), &r.artifacts, &older[i + 1..])?;
        }
        Ok(())
    }
}

/// Checks one release's artifact list (`at` names it): 1 to [`MAX_ARTIFACTS`]
/// entries, valid and distinct names, full images, and patches from the `older`
/// releases only.
fn check_artifacts(at: &str, artifacts: &[Artifact], older: &[&str]) -> Result<(), ManifestError> {
    if artifacts.is_empty() || artifacts.len() > MAX_ARTIFACTS {
        return Err(ManifestError::Invalid {
            field: at.to_string(),
            problem: format!("must list 1 to {MAX_ARTIFACTS} artifacts"),
        });
    }
    let mut names = BTreeSet::new();
    for (j, a) in artifacts.iter().enumerate() {
        let at = format!("{at}[{j}]");
        check_name(&format!("{at}.name"), &a.name, NameKind::FileName)?;
        if !names.insert(a.name.as_str()) {
            return Err(ManifestError::Invalid {
                field: format!("{at}.name"),
                problem: format!("{:?} appears twice", a.name),
            });
        }
        check_full(&format!("{at}.full"), &a.full)?;
        check_patches(&at, &a.patches, a.sha256, older, a.kind)?;
        match a.listing() {
            None if !a.entries.is_empty() => {
                return Err(ManifestError::Invalid {
                    field: format!("{at}.entry"),
                    problem: "only a tree artifact (kind = \"tree\") lists entries".into(),
                });
            }
            None => {}
            Some(listing) => {
                let id = listing
                    .map_err(|e| match e {
                        ManifestError::Invalid { field, problem } => ManifestError::Invalid {
                            field: format!("{at}.{field}"),
                            problem,
                        },
                        other => other,
                    })?
                    .id();
                if (id.size, id.sha256) != (a.size, a.sha256) {
                    return Err(ManifestError::Invalid {
                        field: format!("{at}.sha256"),
                        problem: format!(
                            "the entries' listing is {} bytes with digest {}, not the artifact's",
                            id.size, id.sha256
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Checks the patches to one artifact: at most [`MAX_PREVIOUS`], each from one of
/// the `older` releases, none from the artifact itself, no two from the same base.
fn check_patches(
    at: &str,
    patches: &[PatchEntry],
    own_sha256: Sha256Digest,
    older: &[&str],
    kind: ArtifactKind,
) -> Result<(), ManifestError> {
    let invalid = |field: String, problem: String| ManifestError::Invalid { field, problem };
    if patches.len() > MAX_PREVIOUS {
        return Err(invalid(
            format!("{at}.patch"),
            format!("more than {MAX_PREVIOUS} patches"),
        ));
    }
    let mut bases = BTreeSet::new();
    for (j, p) in patches.iter().enumerate() {
        let at = format!("{at}.patch[{j}]");
        check_name(
            &format!("{at}.base_version"),
            &p.base_version,
            NameKind::Label,
        )?;
        if !older.contains(&p.base_version.as_str()) {
            return Err(invalid(
                format!("{at}.base_version"),
                format!(
                    "{:?} is not a listed release older than this one",
                    p.base_version
                ),
            ));
        }
        if p.base_sha256 == own_sha256 {
            return Err(invalid(
                format!("{at}.base_sha256"),
                "equals the artifact's own hash".into(),
            ));
        }
        if !bases.insert(p.base_sha256) {
            return Err(invalid(
                format!("{at}.base_sha256"),
                "two patches from the same base".into(),
            ));
        }
        let method_ok = match kind {
            ArtifactKind::File => {
                matches!(p.method, PatchKind::File(Method::Bsdiff | Method::ZstdRef))
            }
            ArtifactKind::Tree => p.method == PatchKind::Tree,
        };
        if !method_ok {
            return Err(invalid(
                format!("{at}.method"),
                match kind {
                    ArtifactKind::File => "a file's patch applies to a base (bsdiff or zstd)",
                    ArtifactKind::Tree => "a tree's patch is a tree patch (method tree)",
                }
                .into(),
            ));
        }
    }
    Ok(())
}

fn check_full(at: &str, full: &FullImage) -> Result<(), ManifestError> {
    if full.compression != "zstd" {
        return Err(ManifestError::Invalid {
            field: format!("{at}.compression"),
            problem: format!("{:?} is not a known compression (zstd)", full.compression),
        });
    }
    Ok(())
}

enum NameKind {
    /// Product, channel, version: printable ASCII without spaces.
    Label,
    /// An artifact name: letters, digits, `.`, `_`, `-`, `+`, not starting with `.`.
    FileName,
}

fn check_name(field: &str, value: &str, kind: NameKind) -> Result<(), ManifestError> {
    let problem = if value.is_empty() || value.len() > MAX_NAME_LEN {
        Some(format!("must be 1 to {MAX_NAME_LEN} bytes"))
    } else {
        match kind {
            NameKind::Label => (!value.bytes().all(|b| b.is_ascii_graphic()))
                .then(|| "must be printable ASCII without spaces".to_string()),
            NameKind::FileName => (value.starts_with('.')
                || !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b)))
            .then(|| {
                "must be letters, digits, '.', '_', '-', '+' and not start with '.'".to_string()
            }),
        }
    };
    match problem {
        Some(problem) => Err(ManifestError::Invalid {
            field: field.to_string(),
            problem: format!("{value:?} {problem}"),
        }),
        None => Ok(()),
    }
}

/// Checks a name the way the manifest checks artifact names (for producers).
pub fn check_artifact_name(name: &str) -> Result<(), ManifestError> {
    check_name("artifact name", name, NameKind::FileName)
}

/// Checks a product, channel or version label the way the manifest does.
pub fn check_label(field: &str, value: &str) -> Result<(), ManifestError> {
    check_name(field, value, NameKind::Label)
}
