//! `deltapack verify`: checks a publish directory the way an applier would, and
//! reports every problem rather than stopping at the first.
//!
//! Checked: the signature file against the trusted keys (before the manifest is
//! parsed), the manifest's validity and expiry, every referenced file's size and
//! SHA-256, every container's header (signed by a trusted key, describing the
//! artifact and base the manifest says), every full image's content, and every patch
//! applied to its base wherever the base's full image is in the directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use deltaapply::manifest::{MANIFEST_FILE, Manifest, SIGNATURE_FILE, Timestamp};
use deltaapply::signature::verify_manifest;
use deltaapply::{FileId, Method, Sha256Digest, TrustedKeys};

use crate::build::hash_file;
use crate::store::{self, EXTENSION, FULL_DIR, PATCH_DIR};

/// One problem found, with the file it concerns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file, relative to the publish directory.
    pub file: String,
    /// What is wrong.
    pub problem: String,
}

/// What `verify` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    /// The manifest's version, if it could be read.
    pub version: Option<String>,
    /// Its sequence number.
    pub sequence: Option<u64>,
    /// Its expiry.
    pub expires: Option<String>,
    /// Keys whose signatures were counted.
    pub signed_by: Vec<String>,
    /// Files whose size and hash were checked.
    pub files_checked: usize,
    /// Full images decoded and checked.
    pub full_images_checked: usize,
    /// Patches applied to their base and checked.
    pub patches_applied: usize,
    /// Patches whose base's full image is not in the directory.
    pub patches_without_base: usize,
    /// Every problem found; empty means the directory is good.
    pub problems: Vec<Problem>,
    /// Files in `patches/` and `full/` the manifest does not reference (not a problem:
    /// an older manifest a client still holds may reference them).
    pub unreferenced: Vec<String>,
}

impl VerifyReport {
    fn problem(&mut self, file: impl Into<String>, problem: impl Into<String>) {
        self.problems.push(Problem {
            file: file.into(),
            problem: problem.into(),
        });
    }
}

/// Verifies the publish directory `dir` against `trusted`, with `now` as the time for
/// the expiry check.
pub fn verify(dir: &Path, trusted: &TrustedKeys, now: Timestamp) -> VerifyReport {
    let mut report = VerifyReport::default();
    let signed = match store::read_manifest(dir) {
        Ok(Some(s)) => s,
        Ok(None) => {
            report.problem(MANIFEST_FILE, "missing: this is not a publish directory");
            return report;
        }
        Err(e) => {
            report.problem(MANIFEST_FILE, format!("{e:#}"));
            return report;
        }
    };
    match verify_manifest(&signed.manifest, &signed.signature, trusted) {
        Ok(ids) => report.signed_by = ids.iter().map(ToString::to_string).collect(),
        Err(e) => {
            // Keep going: which files also fail helps find out what happened, but
            // nothing below is trusted.
            report.problem(SIGNATURE_FILE, e.to_string());
        }
    }
    let manifest = match Manifest::parse(&signed.manifest) {
        Ok(m) => m,
        Err(e) => {
            report.problem(MANIFEST_FILE, e.to_string());
            return report;
        }
    };
    report.version = Some(manifest.version.clone());
    report.sequence = Some(manifest.sequence);
    report.expires = Some(manifest.expires.to_string());
    if manifest.is_expired(now) {
        report.problem(
            MANIFEST_FILE,
            format!(
                "expired at {} (now {}): appliers refuse it; publish a new build",
                manifest.expires, now
            ),
        );
    }

    let scratch = match tempfile::Builder::new()
        .prefix(".deltapack-verify-")
        .tempdir()
    {
        Ok(t) => t,
        Err(e) => {
            report.problem("(scratch directory)", e.to_string());
            return report;
        }
    };
    let mut referenced = BTreeSet::new();
    // Rebuilt artifacts of every release, by (name, sha256), for applying patches.
    let mut rebuilt: BTreeMap<(String, Sha256Digest), PathBuf> = BTreeMap::new();

    for (version, artifact) in manifest.all_artifacts() {
        let (name, full) = (&artifact.name, &artifact.full);
        let content = file_id(artifact.size, artifact.sha256);
        referenced.insert(full.path.to_string());
        let path = full.path.under(dir);
        if !check_file(
            &mut report,
            &path,
            full.path.as_str(),
            full.size,
            full.sha256,
        ) {
            continue;
        }
        let Some(header) = check_header(&mut report, &path, full.path.as_str(), trusted) else {
            continue;
        };
        let at = full.path.as_str();
        if header.method != Method::Full {
            report.problem(
                at,
                format!(
                    "a full image must use the full method, not {}",
                    header.method
                ),
            );
            continue;
        }
        if header.target != content {
            report.problem(
                at,
                format!(
                    "holds {} bytes with sha256 {}, but the manifest says {name} {version} is {} bytes with sha256 {}",
                    header.target.size, header.target.sha256, content.size, content.sha256
                ),
            );
            continue;
        }
        if header.apply_memory != full.apply_memory {
            report.problem(
                at,
                format!(
                    "needs {} bytes to apply, the manifest says {}",
                    header.apply_memory, full.apply_memory
                ),
            );
        }
        let dest = scratch.path().join(format!("full-{}", rebuilt.len()));
        match store::apply_checked(None, &path, &dest, trusted) {
            Ok(_) => {
                report.full_images_checked += 1;
                rebuilt.insert((name.clone(), content.sha256), dest);
            }
            Err(e) => report.problem(at, format!("does not decode: {e}")),
        }
    }

    // Patches to the newest release, and those kept to older releases (for chains).
    for (target_version, artifact) in manifest.all_artifacts() {
        let (name, patches) = (&artifact.name, &artifact.patches);
        let target = file_id(artifact.size, artifact.sha256);
        for p in patches {
            let at = p.path.as_str();
            referenced.insert(p.path.to_string());
            let path = p.path.under(dir);
            if !check_file(&mut report, &path, at, p.size, p.sha256) {
                continue;
            }
            let Some(header) = check_header(&mut report, &path, at, trusted) else {
                continue;
            };
            let base = file_id(p.base_size, p.base_sha256);
            let expected_target = target;
            let mut consistent = true;
            if header.source != Some(base) {
                report.problem(
                    at,
                    format!(
                        "applies to {}, but the manifest says its base ({} {}) is {} bytes with sha256 {}",
                        header
                            .source
                            .map_or("no base".into(), |s| format!("{} bytes with sha256 {}", s.size, s.sha256)),
                        name,
                        p.base_version,
                        base.size,
                        base.sha256
                    ),
                );
                consistent = false;
            }
            if header.target != expected_target {
                report.problem(
                    at,
                    format!(
                        "produces {} bytes with sha256 {}, but the manifest says {} {} is {} bytes with sha256 {}",
                        header.target.size,
                        header.target.sha256,
                        name,
                        target_version,
                        target.size,
                        target.sha256
                    ),
                );
                consistent = false;
            }
            if header.method != p.method || header.apply_memory != p.apply_memory {
                report.problem(
                    at,
                    format!(
                        "is a {} patch needing {} bytes to apply, the manifest says {} needing {}",
                        header.method, header.apply_memory, p.method, p.apply_memory
                    ),
                );
            }
            if !consistent {
                continue;
            }
            let Some(base_file) = rebuilt.get(&(name.to_string(), p.base_sha256)) else {
                report.patches_without_base += 1;
                continue;
            };
            let dest = scratch.path().join("patched");
            match store::apply_checked(Some(base_file), &path, &dest, trusted) {
                Ok(_) => report.patches_applied += 1,
                Err(e) => report.problem(at, format!("does not apply to its base: {e}")),
            }
            let _ = std::fs::remove_file(&dest);
        }
    }

    for kind in [PATCH_DIR, FULL_DIR] {
        let Ok(entries) = std::fs::read_dir(dir.join(kind)) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| format!("{kind}/{}", e.file_name().to_string_lossy()))
            .filter(|n| !referenced.contains(n))
            .collect();
        names.sort();
        for n in names {
            if n.ends_with(&format!(".{EXTENSION}")) {
                report.unreferenced.push(n);
            } else {
                report.problem(n, "unexpected file (a leftover temporary file?)");
            }
        }
    }
    report
}

fn file_id(size: u64, sha256: Sha256Digest) -> FileId {
    FileId { size, sha256 }
}

/// Checks size and hash; records a problem and returns false on mismatch.
fn check_file(
    report: &mut VerifyReport,
    path: &Path,
    at: &str,
    size: u64,
    sha256: Sha256Digest,
) -> bool {
    match hash_file(path) {
        Err(e) => {
            report.problem(at, format!("cannot read: {e}"));
            false
        }
        Ok((got_size, got_sha)) => {
            report.files_checked += 1;
            if (got_size, got_sha) != (size, sha256) {
                report.problem(
                    at,
                    format!(
                        "is {got_size} bytes with sha256 {got_sha}, the manifest says {size} bytes with sha256 {sha256}"
                    ),
                );
                false
            } else {
                true
            }
        }
    }
}

/// Reads a container's header and checks its signature against `trusted`.
fn check_header(
    report: &mut VerifyReport,
    path: &Path,
    at: &str,
    trusted: &TrustedKeys,
) -> Option<deltaapply::Header> {
    let patch = match deltaapply::Patch::open(path) {
        Ok(p) => p,
        Err(e) => {
            report.problem(at, error_chain(&e));
            return None;
        }
    };
    if let Err(e) = deltaapply::signature::check_patch_origin(patch.header(), Some(trusted)) {
        report.problem(at, e.to_string());
        return None;
    }
    Some(patch.header().clone())
}

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
