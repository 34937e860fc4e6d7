//! `deltapack verify`: checks a publish directory the way an applier would, and
//! reports every problem rather than stopping at the first.
//!
//! Checked: the signature file against the trusted keys (before the manifest is
//! parsed), the manifest's validity and expiry, every referenced file's size and
//! SHA-256, every container's header (signed by a trusted key, describing the
//! artifact and base the manifest says), every full image's content, and every patch
//! applied to its base wherever the base's full image is in the directory.
//!
//! A tree artifact's full image is a tree patch from the empty tree: it is unpacked
//! into a scratch directory, which must hold exactly the tree the manifest's entries
//! list. Its tree patches are applied to the base trees rebuilt that way, and each
//! per-file full container (`files/<sha256>.dpatch`) is decoded and must be the
//! entry's content.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use deltaapply::manifest::{
    Artifact, ArtifactKind, MANIFEST_FILE, Manifest, SIGNATURE_FILE, Timestamp,
};
use deltaapply::signature::check_patch_origin;
use deltaapply::signature::verify_manifest;
use deltaapply::update::error_chain;
use deltaapply::{AnyHeader, AnyPatch, FileId, Method, Sha256Digest, TrustedKeys};

use crate::build::hash_file;
use crate::build::tree::FILES_DIR;
use crate::store::{self, EXTENSION, FULL_DIR, Location, PATCH_DIR, Store, StoreError, mirror};

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
    /// The newest version of the directory's key chain (`keys/`), if it has one.
    pub keys_version: Option<u64>,
    /// Files whose size and hash were checked.
    pub files_checked: usize,
    /// Full images decoded and checked (a tree's: unpacked and compared with its
    /// entries).
    pub full_images_checked: usize,
    /// Per-file full containers of tree artifacts (`files/`) decoded and checked.
    pub file_containers_checked: usize,
    /// Patches applied to their base and checked.
    pub patches_applied: usize,
    /// Patches whose base's full image is not in the directory.
    pub patches_without_base: usize,
    /// Every problem found; empty means the directory is good.
    pub problems: Vec<Problem>,
    /// Files in `patches/`, `full/` and `files/` the manifest does not reference (not a problem:
    /// an older manifest a client still holds may reference them).
    pub unreferenced: Vec<String>,
    /// Bytes downloaded from a bucket to check it (0 for a directory).
    pub downloaded_bytes: u64,
}

impl VerifyReport {
    fn problem(&mut self, file: impl Into<String>, problem: impl Into<String>) {
        self.problems.push(Problem {
            file: file.into(),
            problem: problem.into(),
        });
    }
}

/// Verifies a publish location: a directory in place; a bucket through a local copy of
/// the release it serves ([`crate::store::mirror::pull`]: the manifest, signature and
/// key chain, then every file the manifest references once its signature checks out),
/// with the bucket's own listing for `unreferenced`. An error means the location
/// could not be reached at all (bucket missing, credentials refused).
pub fn verify_location(
    location: &Location,
    trusted: &TrustedKeys,
    now: Timestamp,
) -> Result<VerifyReport, StoreError> {
    if let Location::Dir(dir) = location {
        return Ok(verify(dir, trusted, now));
    }
    let store = Store::open(location)?;
    let copy = tempfile::Builder::new()
        .prefix(".deltapack-verify-copy-")
        .tempdir()
        .map_err(StoreError::new(
            "cannot create a scratch directory in",
            &std::env::temp_dir(),
        ))?;
    let pulled = mirror::pull(&store, copy.path(), trusted)?;
    let mut report = verify(copy.path(), trusted, now);
    for (file, problem) in pulled.problems {
        report.problem(file, problem);
    }
    report.unreferenced = pulled.unreferenced;
    report.downloaded_bytes = pulled.downloaded;
    Ok(report)
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
    let chain = match crate::rotation::read_chain(dir) {
        Ok(chain) => chain,
        Err(e) => {
            report.problem(deltaapply::rotation::KEYS_DIR, e.to_string());
            None
        }
    };
    if let Some(chain) = &chain {
        report.keys_version = Some(chain.newest.version);
        if let Err(e) =
            verify_manifest(&signed.manifest, &signed.signature, &chain.newest.trusted())
        {
            report.problem(
                SIGNATURE_FILE,
                format!(
                    "devices following the key chain (version {}) refuse it: {e}",
                    chain.newest.version
                ),
            );
        }
    }
    // Containers published before a rotation are signed by the keys of that time.
    let with_chain;
    let trusted = match &chain {
        Some(chain) => {
            let mut keys = trusted.keys().to_vec();
            keys.extend(chain.all_keys.iter().copied());
            with_chain = TrustedKeys::new(keys, 1).unwrap_or_else(|_| trusted.clone());
            &with_chain
        }
        None => trusted,
    };
    let manifest = match Manifest::parse(&signed.manifest) {
        Ok(m) => m,
        Err(e) => {
            report.problem(MANIFEST_FILE, e.to_string());
            return report;
        }
    };
    if let Some(chain) = &chain
        && chain.newest.product != manifest.product
    {
        report.problem(
            MANIFEST_FILE,
            format!(
                "product {:?}, but the key chain is for {:?}",
                manifest.product, chain.newest.product
            ),
        );
    }
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
        if artifact.kind == ArtifactKind::Tree {
            if let Some(tree) = check_full_tree(
                &mut report,
                &path,
                artifact,
                version,
                &header,
                trusted,
                scratch.path(),
                rebuilt.len(),
            ) {
                rebuilt.insert((name.clone(), content.sha256), tree);
            }
            continue;
        }
        let header = match header {
            AnyHeader::File(h) if h.method() == Method::Full => h,
            other => {
                report.problem(
                    at,
                    format!(
                        "a full image must use the full method, not {}",
                        other.kind()
                    ),
                );
                continue;
            }
        };
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

    // The per-file full containers of tree artifacts (a file listed at several paths,
    // or in several releases, has one container, checked once).
    let mut decoded = BTreeSet::new();
    for (version, artifact) in manifest.all_artifacts() {
        for entry in &artifact.entries {
            let Some(file_ref) = &entry.full else {
                continue;
            };
            let at = file_ref.path.as_str();
            referenced.insert(file_ref.path.to_string());
            let (Some(size), Some(sha256)) = (entry.size, entry.sha256) else {
                report.problem(
                    at,
                    format!(
                        "is listed as the content of {} {version} entry {:?}, which is not a file",
                        artifact.name, entry.path
                    ),
                );
                continue;
            };
            if !decoded.insert((file_ref.path.to_string(), size, sha256)) {
                continue;
            }
            let what = format!("{} {version} file {:?}", artifact.name, entry.path);
            check_file_container(
                &mut report,
                dir,
                file_ref,
                file_id(size, sha256),
                &what,
                trusted,
                scratch.path(),
            );
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
            if header.source() != Some(base) {
                report.problem(
                    at,
                    format!(
                        "applies to {}, but the manifest says its base ({} {}) is {} bytes with sha256 {}",
                        header
                            .source()
                            .map_or("no base".into(), |s| format!("{} bytes with sha256 {}", s.size, s.sha256)),
                        name,
                        p.base_version,
                        base.size,
                        base.sha256
                    ),
                );
                consistent = false;
            }
            if header.target() != expected_target {
                report.problem(
                    at,
                    format!(
                        "produces {} bytes with sha256 {}, but the manifest says {} {} is {} bytes with sha256 {}",
                        header.target().size,
                        header.target().sha256,
                        name,
                        target_version,
                        target.size,
                        target.sha256
                    ),
                );
                consistent = false;
            }
            if header.kind() != p.method || header.apply_memory() != p.apply_memory {
                report.problem(
                    at,
                    format!(
                        "is a {} patch needing {} bytes to apply, the manifest says {} needing {}",
                        header.kind(),
                        header.apply_memory(),
                        p.method,
                        p.apply_memory
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
            if artifact.kind == ArtifactKind::Tree {
                match crate::build::tree::apply_checked(Some(base_file), &path, &dest, trusted) {
                    Err(e) => report.problem(
                        at,
                        format!("does not apply to its base: {}", error_chain(&*e)),
                    ),
                    Ok(made) if made != target => report.problem(
                        at,
                        format!(
                            "makes a tree of {} bytes with digest {}, not {name} {target_version}",
                            made.size, made.sha256
                        ),
                    ),
                    Ok(_) => {
                        if let Some(problem) = compare_tree(&dest, artifact) {
                            report.problem(at, format!("applied to its base, {problem}"));
                        } else {
                            report.patches_applied += 1;
                        }
                    }
                }
                let _ = std::fs::remove_dir_all(&dest);
                continue;
            }
            match store::apply_checked(Some(base_file), &path, &dest, trusted) {
                Ok(_) => report.patches_applied += 1,
                Err(e) => report.problem(at, format!("does not apply to its base: {e}")),
            }
            let _ = std::fs::remove_file(&dest);
        }
    }

    for kind in [PATCH_DIR, FULL_DIR, FILES_DIR] {
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

/// Checks a tree artifact's full image, whose file and signature were checked: a tree
/// patch from the empty tree to the listed tree, unpacked (out of place) into the
/// scratch directory to exactly the manifest's entries. Returns the unpacked tree.
#[allow(clippy::too_many_arguments)]
fn check_full_tree(
    report: &mut VerifyReport,
    path: &Path,
    artifact: &Artifact,
    version: &str,
    header: &AnyHeader,
    trusted: &TrustedKeys,
    scratch: &Path,
    n: usize,
) -> Option<PathBuf> {
    let (name, full) = (&artifact.name, &artifact.full);
    let at = full.path.as_str();
    let content = file_id(artifact.size, artifact.sha256);
    let AnyHeader::Tree(header) = header else {
        report.problem(
            at,
            format!(
                "the full image of tree artifact {name} {version} must be a tree patch \
                 (method tree), not {}",
                header.kind()
            ),
        );
        return None;
    };
    if let Some(source) = header.source() {
        report.problem(
            at,
            format!(
                "the full image of {name} {version} applies to a tree of {} bytes with digest {} \
                 instead of the empty tree",
                source.size, source.sha256
            ),
        );
        return None;
    }
    if header.target != content {
        report.problem(
            at,
            format!(
                "holds a tree of {} bytes with digest {}, but the manifest says {name} {version} \
                 is {} bytes with digest {}",
                header.target.size, header.target.sha256, content.size, content.sha256
            ),
        );
        return None;
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
    let dest = scratch.join(format!("full-{n}"));
    match crate::build::tree::apply_checked(None, path, &dest, trusted) {
        Err(e) => {
            report.problem(at, format!("does not unpack: {}", error_chain(&*e)));
            None
        }
        Ok(made) if made != content => {
            report.problem(
                at,
                format!(
                    "unpacks to a tree of {} bytes with digest {}, not {name} {version}",
                    made.size, made.sha256
                ),
            );
            None
        }
        Ok(_) => match compare_tree(&dest, artifact) {
            Some(problem) => {
                report.problem(at, format!("unpacked, {problem}"));
                None
            }
            None => {
                report.full_images_checked += 1;
                Some(dest)
            }
        },
    }
}

/// Compares the tree on disk at `dir` with a tree artifact's entries: `None` when
/// they are the same, else what differs (the first few differences).
fn compare_tree(dir: &Path, artifact: &Artifact) -> Option<String> {
    let listed = match artifact.listing() {
        Some(Ok(l)) => l,
        Some(Err(e)) => return Some(format!("but the manifest's entries are invalid: {e}")),
        None => return Some("but the artifact is not a tree".into()),
    };
    let scanned = match crate::tree::scan_tree(dir) {
        Ok(s) => s,
        Err(e) => {
            return Some(format!(
                "but the result cannot be read: {}",
                error_chain(&e)
            ));
        }
    };
    let (got, want) = (scanned.listing().entries(), listed.entries());
    if got == want {
        return None;
    }
    let got_map: BTreeMap<&str, _> = got.iter().map(|e| (e.path.as_str(), e)).collect();
    let want_map: BTreeMap<&str, _> = want.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut diffs = Vec::new();
    for (p, w) in &want_map {
        match got_map.get(p) {
            None => diffs.push(format!("{p:?} is missing")),
            Some(g) if g != w => diffs.push(format!("{p:?} differs from its entry")),
            Some(_) => {}
        }
    }
    for p in got_map.keys().filter(|p| !want_map.contains_key(*p)) {
        diffs.push(format!("{p:?} is not listed"));
    }
    let more = diffs.len().saturating_sub(5);
    diffs.truncate(5);
    let mut text = format!(
        "but the tree is not the one the manifest lists for {}: {}",
        artifact.name,
        diffs.join(", ")
    );
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    Some(text)
}

/// Checks one per-file full container of a tree artifact: size and hash, signature,
/// method full making `content`, and that it decodes to it.
fn check_file_container(
    report: &mut VerifyReport,
    dir: &Path,
    file_ref: &deltaapply::manifest::FileRef,
    content: FileId,
    what: &str,
    trusted: &TrustedKeys,
    scratch: &Path,
) {
    let at = file_ref.path.as_str();
    let path = file_ref.path.under(dir);
    if !check_file(report, &path, at, file_ref.size, file_ref.sha256) {
        return;
    }
    let Some(header) = check_header(report, &path, at, trusted) else {
        return;
    };
    let header = match header {
        AnyHeader::File(h) if h.method() == Method::Full => h,
        other => {
            report.problem(
                at,
                format!(
                    "the full container of {what} must use the full method, not {}",
                    other.kind()
                ),
            );
            return;
        }
    };
    if header.target != content {
        report.problem(
            at,
            format!(
                "holds {} bytes with sha256 {}, but the manifest says {what} is {} bytes with sha256 {}",
                header.target.size, header.target.sha256, content.size, content.sha256
            ),
        );
        return;
    }
    let dest = scratch.join("file");
    match store::apply_checked(None, &path, &dest, trusted) {
        Ok(made) if made.target == content => report.file_containers_checked += 1,
        Ok(made) => report.problem(
            at,
            format!(
                "decodes to {} bytes with sha256 {}, not {what}",
                made.target.size, made.target.sha256
            ),
        ),
        Err(e) => report.problem(at, format!("does not decode: {}", error_chain(&e))),
    }
    let _ = std::fs::remove_file(&dest);
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
) -> Option<AnyHeader> {
    let patch = match AnyPatch::open(path) {
        Ok(p) => p,
        Err(e) => {
            report.problem(at, error_chain(&e));
            return None;
        }
    };
    let (origin, header) = match &patch {
        AnyPatch::File(p) => (
            check_patch_origin(p.header(), Some(trusted)),
            AnyHeader::File(p.header().clone()),
        ),
        AnyPatch::Tree(p) => (
            check_patch_origin(p.header(), Some(trusted)),
            AnyHeader::Tree(p.header().clone()),
        ),
    };
    if let Err(e) = origin {
        report.problem(at, e.to_string());
        return None;
    }
    Some(header)
}
