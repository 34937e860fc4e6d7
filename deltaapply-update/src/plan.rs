//! Choosing what to download: from the installed file's hash and a verified manifest,
//! the route with the fewest bytes among a direct patch, a chain of patches (through
//! older releases the manifest still lists) and the newest full image, within the
//! caller's [`Policy`].

use std::collections::BTreeMap;

use serde::Serialize;

use deltaapply_format::container::FileId;
use deltaapply_format::manifest::{Artifact, Manifest, RelPath};
use deltaapply_format::{Method, PatchKind, Sha256Digest};

/// Longest chain of patches the planner considers by default.
pub const DEFAULT_MAX_CHAIN: usize = 4;

/// When the full image may be downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FullImage {
    /// When it is the cheapest route, when no patch route exists, and as the fallback
    /// when a patch cannot be used.
    #[default]
    Allow,
    /// Never: fail instead (for metered links).
    Never,
    /// Always, even when a patch route is smaller.
    Prefer,
}

/// What the planner (and the fallback) may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Most bytes one update may download, fallback included.
    pub max_download: Option<u64>,
    /// When the full image may be used.
    pub full_image: FullImage,
    /// Longest chain of patches considered (at least 1).
    pub max_chain: usize,
    /// Largest `apply_memory` a patch or full image may declare: routes needing more
    /// are not considered.
    pub max_apply_memory: u64,
    /// Accept a manifest past its `expires` time. Meant for air-gapped devices whose
    /// clock cannot be trusted; it gives up protection against a frozen feed.
    pub allow_expired: bool,
    /// Lowest manifest sequence accepted, whatever the state file says: the sequence of
    /// the release an installer was built with, so that a device whose state file was
    /// lost cannot be rolled back past it. 0: no floor.
    pub min_sequence: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_download: None,
            full_image: FullImage::Allow,
            max_chain: DEFAULT_MAX_CHAIN,
            max_apply_memory: deltaapply_apply::Limits::default().max_apply_memory,
            allow_expired: false,
            min_sequence: 0,
        }
    }
}

/// What is installed at the target, decided by its size and SHA-256 alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Installed {
    /// There is no file at the target.
    Missing,
    /// The file is this release's artifact (the newest, or an older one the manifest
    /// lists).
    Release {
        /// The release's version.
        version: String,
        /// Whether it is the newest release.
        newest: bool,
        /// The file's size and SHA-256.
        file: FileId,
    },
    /// The file matches no release in the manifest: modified, damaged, or from a
    /// release no longer supported.
    Unknown {
        /// The file's size and SHA-256.
        file: FileId,
    },
    /// A tree that is this release but for some entries (modified, missing or
    /// replaced files, links or modes). Files the user added never count.
    Tree {
        /// The release the tree is closest to.
        version: String,
        /// Whether it is the newest release.
        newest: bool,
        /// The release's tree: total file bytes and listing digest.
        tree: FileId,
        /// The entries that differ, and how.
        differences: Vec<deltaapply_apply::tree::Difference>,
    },
}

impl Installed {
    /// Identifies `file` (or its absence) among `artifact`'s releases in `manifest`.
    pub fn identify(manifest: &Manifest, artifact: &str, file: Option<FileId>) -> Installed {
        let Some(file) = file else {
            return Installed::Missing;
        };
        let found = manifest
            .all_artifacts()
            .find(|(_, a)| a.name == artifact && a.size == file.size && a.sha256 == file.sha256);
        match found {
            Some((version, _)) => Installed::Release {
                version: version.to_string(),
                newest: version == manifest.version,
                file,
            },
            None => Installed::Unknown { file },
        }
    }

    /// The installed file's size and SHA-256, if there is one.
    pub fn file(&self) -> Option<FileId> {
        match self {
            Installed::Missing | Installed::Tree { .. } => None,
            Installed::Release { file, .. } | Installed::Unknown { file } => Some(*file),
        }
    }

    /// A short description: `1.2`, `1.2 (newest)`, `missing`, `unknown (… bytes, sha256 …)`.
    pub fn describe(&self) -> String {
        match self {
            Installed::Missing => "nothing (no file at the target)".into(),
            Installed::Release {
                version,
                newest: true,
                ..
            } => format!("{version} (the newest release)"),
            Installed::Release { version, .. } => version.clone(),
            Installed::Tree {
                version,
                newest,
                differences,
                ..
            } => format!(
                "{version}{} but for {} entr{} (listed below)",
                if *newest { " (the newest release)" } else { "" },
                differences.len(),
                if differences.len() == 1 { "y" } else { "ies" }
            ),
            Installed::Unknown { file } => format!(
                "a file matching no release in the manifest ({} bytes, sha256 {})",
                file.size, file.sha256
            ),
        }
    }
}

/// One file to download and apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The release it produces.
    pub to_version: String,
    /// The release it applies to (`None` for a full image).
    pub from_version: Option<String>,
    /// Its path in the publish directory.
    pub path: RelPath,
    /// The file to download: its size and SHA-256.
    pub file: FileId,
    /// The patch's method (`full` for a full image, `tree` for a tree's).
    pub method: PatchKind,
    /// The file it applies to (`None` for a full image).
    pub base: Option<FileId>,
    /// The file it produces.
    pub target: FileId,
    /// Memory applying it needs.
    pub apply_memory: u64,
}

/// One file of the newest tree fetched whole (the per-file fallback): its signed
/// full container, listed in the manifest beside the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileStep {
    /// The file's path in the tree.
    pub path: deltaapply_apply::tree::TreePath,
    /// Why it is fetched whole: how the installed tree differs there.
    pub why: deltaapply_apply::tree::Mismatch,
    /// The container's path in the publish directory.
    pub publish_path: RelPath,
    /// The container to download: its size and SHA-256.
    pub file: FileId,
    /// The file it holds.
    pub target: FileId,
}

/// The route an update takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "steps", rename_all = "kebab-case")]
pub enum Route {
    /// Nothing to do: the newest release is installed.
    UpToDate,
    /// One patch, or a chain of patches applied in order.
    Patches(Vec<Step>),
    /// The newest full image.
    Full(Step),
    /// A tree patch applied in place, with the files whose base is not installed
    /// fetched whole instead of patched.
    TreePatch {
        /// The tree patch.
        patch: Step,
        /// The files fetched whole (empty when the installed tree is the base exactly;
        /// an estimate until the patch's index is read).
        files: Vec<FileStep>,
        /// How the installed tree differs from the patch's base.
        differences: Vec<deltaapply_apply::tree::Difference>,
    },
    /// The newest tree is installed but for some entries: fetch those files whole and
    /// mend links, directories and modes.
    Repair {
        /// The files fetched whole.
        files: Vec<FileStep>,
        /// Entries mended without a download (links, directories, modes).
        mended: usize,
        /// How the installed tree differs from the newest release.
        differences: Vec<deltaapply_apply::tree::Difference>,
    },
}

impl Route {
    /// The steps, in order (for a tree route, its patch; per-file downloads are
    /// [`Route::files`]).
    pub fn steps(&self) -> &[Step] {
        match self {
            Route::UpToDate | Route::Repair { .. } => &[],
            Route::Patches(steps) => steps,
            Route::Full(step) | Route::TreePatch { patch: step, .. } => std::slice::from_ref(step),
        }
    }

    /// The files fetched whole by a tree route.
    pub fn files(&self) -> &[FileStep] {
        match self {
            Route::TreePatch { files, .. } | Route::Repair { files, .. } => files,
            _ => &[],
        }
    }

    /// Bytes the route downloads (the sum of its files' sizes; see [`total_bytes`]).
    pub fn download_size(&self) -> u64 {
        total_bytes(
            self.steps()
                .iter()
                .map(|s| s.file.size)
                .chain(self.files().iter().map(|f| f.file.size)),
        )
    }

    /// `up-to-date`, `patch`, `chain`, `full`, `tree-patch` or `repair`.
    pub fn kind(&self) -> &'static str {
        match self {
            Route::UpToDate => "up-to-date",
            Route::Patches(steps) if steps.len() == 1 => "patch",
            Route::Patches(_) => "chain",
            Route::Full(_) => "full",
            Route::TreePatch { .. } => "tree-patch",
            Route::Repair { .. } => "repair",
        }
    }
}

/// The route chosen, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// What to download and apply.
    pub route: Route,
    /// Bytes it downloads.
    pub download_size: u64,
    /// Size of the newest full image, for comparison.
    pub full_size: u64,
    /// The cheapest patch route found, when the route chosen is another.
    pub cheapest_patch_route: Option<u64>,
    /// Why this route: one sentence for people.
    pub reason: String,
}

impl Plan {
    /// Nothing to do: the newest release is installed.
    pub(crate) fn up_to_date(full_size: u64) -> Plan {
        Plan {
            route: Route::UpToDate,
            download_size: 0,
            full_size,
            cheapest_patch_route: None,
            reason: "the newest release is installed".into(),
        }
    }
}

/// Why no route could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Only the full image would do, and the policy forbids it.
    #[error("{why}, and the policy does not allow the full image")]
    FullForbidden {
        /// Why no patch route exists.
        why: String,
    },
    /// Every route downloads more than the policy's `max_download`.
    #[error(
        "the cheapest allowed route downloads {needed} bytes, above the download limit of \
         {limit}"
    )]
    TooLarge {
        /// Bytes of the cheapest allowed route.
        needed: u64,
        /// The limit.
        limit: u64,
    },
    /// Every route needs more memory than the policy allows.
    #[error(
        "the full image needs {needed} bytes of memory to apply, above the memory limit of \
         {limit}, and {why}"
    )]
    Memory {
        /// What the full image needs.
        needed: u64,
        /// The limit.
        limit: u64,
        /// Why no patch route exists.
        why: String,
    },
}

/// Chooses the route from `installed` to the newest release of `artifact`.
pub fn plan(
    manifest: &Manifest,
    artifact: &Artifact,
    installed: &Installed,
    policy: &Policy,
) -> Result<Plan, PlanError> {
    let full = full_step(manifest, artifact);
    let full_size = full.file.size;
    if matches!(installed, Installed::Release { newest: true, .. }) {
        return Ok(Plan::up_to_date(full_size));
    }
    let chain = match installed {
        Installed::Missing => Err("nothing is installed".to_string()),
        Installed::Unknown { .. } | Installed::Tree { .. } => {
            Err("the installed file matches no release the manifest lists".to_string())
        }
        Installed::Release { file, version, .. } => {
            cheapest_chain(manifest, artifact, *file, policy).ok_or_else(|| {
                format!(
                    "no chain of at most {} patches within the memory limit leads from {version}",
                    policy.max_chain.max(1)
                )
            })
        }
    };
    let full_fits_memory = full.apply_memory <= policy.max_apply_memory;
    let chain_size = chain.as_ref().ok().map(|c| steps_size(c));

    // Candidates in order of preference, each with its reason.
    let mut candidates: Vec<(Route, String)> = Vec::new();
    let full_reason = |why: &str| format!("{why}; the full image is {full_size} bytes");
    match (&chain, policy.full_image) {
        (_, FullImage::Prefer) if full_fits_memory => {
            candidates.push((
                Route::Full(full.clone()),
                full_reason("the full image was asked for"),
            ));
            if let Ok(c) = &chain {
                candidates.push((Route::Patches(c.clone()), patches_reason(c, full_size)));
            }
        }
        (Ok(c), policy_full) => {
            let size = steps_size(c);
            if policy_full == FullImage::Never || !full_fits_memory || size <= full_size {
                candidates.push((Route::Patches(c.clone()), patches_reason(c, full_size)));
                if policy_full != FullImage::Never && full_fits_memory {
                    candidates.push((
                        Route::Full(full.clone()),
                        full_reason(&format!(
                            "the cheapest patch route ({size} bytes) is above the download limit"
                        )),
                    ));
                }
            } else {
                candidates.push((
                    Route::Full(full.clone()),
                    full_reason(&format!(
                        "the full image is smaller than the cheapest patch route ({size} bytes)"
                    )),
                ));
                candidates.push((Route::Patches(c.clone()), patches_reason(c, full_size)));
            }
        }
        (Err(why), FullImage::Never) => {
            return Err(PlanError::FullForbidden { why: why.clone() });
        }
        (Err(why), _) if !full_fits_memory => {
            return Err(PlanError::Memory {
                needed: full.apply_memory,
                limit: policy.max_apply_memory,
                why: why.clone(),
            });
        }
        (Err(why), _) => candidates.push((Route::Full(full.clone()), full_reason(why))),
    }
    choose(candidates, policy, full_size, chain_size)
}

/// The first of `candidates` (in order of preference) within the download limit.
pub(crate) fn choose(
    candidates: Vec<(Route, String)>,
    policy: &Policy,
    full_size: u64,
    cheapest_patch: Option<u64>,
) -> Result<Plan, PlanError> {
    let within = |size: u64| policy.max_download.is_none_or(|m| size <= m);
    let cheapest = candidates
        .iter()
        .map(|(r, _)| r.download_size())
        .min()
        .unwrap_or(0);
    let (route, reason) = candidates
        .into_iter()
        .find(|(r, _)| within(r.download_size()))
        .ok_or(PlanError::TooLarge {
            needed: cheapest,
            limit: policy.max_download.unwrap_or(0),
        })?;
    let download_size = route.download_size();
    let cheapest_patch_route = cheapest_patch.filter(|_| matches!(route, Route::Full(_)));
    Ok(Plan {
        route,
        download_size,
        full_size,
        cheapest_patch_route,
        reason,
    })
}

/// The newest full image of `artifact` as a step.
pub fn full_step(manifest: &Manifest, artifact: &Artifact) -> Step {
    Step {
        to_version: manifest.version.clone(),
        from_version: None,
        path: artifact.full.path.clone(),
        file: FileId {
            size: artifact.full.size,
            sha256: artifact.full.sha256,
        },
        method: match artifact.kind {
            deltaapply_format::manifest::ArtifactKind::File => PatchKind::File(Method::Full),
            deltaapply_format::manifest::ArtifactKind::Tree => PatchKind::Tree,
        },
        base: None,
        target: FileId {
            size: artifact.size,
            sha256: artifact.sha256,
        },
        apply_memory: artifact.full.apply_memory,
    }
}

fn steps_size(steps: &[Step]) -> u64 {
    total_bytes(steps.iter().map(|s| s.file.size))
}

/// The sum of sizes a manifest declares, saturating at `u64::MAX` instead of wrapping:
/// each is at most `i64::MAX` (a TOML integer), so a few hostile ones could otherwise
/// wrap to a small total and pass a download limit. A saturated total is larger than
/// any limit (`--max-download` refuses it as too large) and than any route whose total
/// is real, so it is never chosen.
pub(crate) fn total_bytes(sizes: impl IntoIterator<Item = u64>) -> u64 {
    sizes.into_iter().fold(0, u64::saturating_add)
}

fn patches_reason(steps: &[Step], full_size: u64) -> String {
    let size = steps_size(steps);
    let what = if steps.len() == 1 {
        format!(
            "a patch from {}",
            steps[0].from_version.as_deref().unwrap_or("?")
        )
    } else {
        let versions: Vec<&str> = std::iter::once(steps[0].from_version.as_deref().unwrap_or("?"))
            .chain(steps.iter().map(|s| s.to_version.as_str()))
            .collect();
        format!(
            "a chain of {} patches ({})",
            steps.len(),
            versions.join(" -> ")
        )
    };
    format!(
        "{what} is the smallest download: {size} bytes, {:.2}% of the {full_size}-byte full image",
        size as f64 * 100.0 / full_size.max(1) as f64
    )
}

/// The cheapest chain of at most `policy.max_chain` patches from `installed` to the
/// newest `artifact`, every patch within the memory limit. Ties go to fewer patches.
fn cheapest_chain(
    manifest: &Manifest,
    artifact: &Artifact,
    installed: FileId,
    policy: &Policy,
) -> Option<Vec<Step>> {
    // The releases' files are the graph's nodes (by size and hash: two releases with
    // identical files are one node), the patches its edges.
    type Node = (u64, Sha256Digest);
    let mut edges: Vec<(Node, Node, Step)> = Vec::new();
    for (version, a) in manifest.all_artifacts() {
        if a.name != artifact.name {
            continue;
        }
        for p in &a.patches {
            if p.apply_memory > policy.max_apply_memory {
                continue;
            }
            let step = Step {
                to_version: version.to_string(),
                from_version: Some(p.base_version.clone()),
                path: p.path.clone(),
                file: FileId {
                    size: p.size,
                    sha256: p.sha256,
                },
                method: p.method,
                base: Some(FileId {
                    size: p.base_size,
                    sha256: p.base_sha256,
                }),
                target: FileId {
                    size: a.size,
                    sha256: a.sha256,
                },
                apply_memory: p.apply_memory,
            };
            edges.push(((p.base_size, p.base_sha256), (a.size, a.sha256), step));
        }
    }
    let start: Node = (installed.size, installed.sha256);
    let goal: Node = (artifact.size, artifact.sha256);
    // Bellman-Ford bounded to max_chain rounds: best[node] = (bytes, patches, edges used).
    let mut best: BTreeMap<Node, (u64, Vec<usize>)> = BTreeMap::new();
    best.insert(start, (0, Vec::new()));
    for _ in 0..policy.max_chain.max(1) {
        let mut next = best.clone();
        for (i, (from, to, step)) in edges.iter().enumerate() {
            let Some((cost, path)) = best.get(from) else {
                continue;
            };
            let cost = cost.saturating_add(step.file.size);
            let better = match next.get(to) {
                None => true,
                Some((c, p)) => (cost, path.len() + 1) < (*c, p.len()),
            };
            if better && *to != start {
                let mut path = path.clone();
                path.push(i);
                next.insert(*to, (cost, path));
            }
        }
        best = next;
    }
    let (_, path) = best.get(&goal)?;
    Some(path.iter().map(|&i| edges[i].2.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltaapply_format::manifest::{FullImage as Full, PatchEntry, PreviousRelease, Timestamp};

    fn id(n: u8) -> (u64, Sha256Digest) {
        (1000 + u64::from(n), Sha256Digest([n; 32]))
    }

    fn artifact(n: u8, full: u64, patches: &[(u8, u64)]) -> Artifact {
        let (size, sha256) = id(n);
        Artifact {
            name: "app".into(),
            size,
            sha256,
            full: Full {
                path: RelPath::new(&format!("full/{n}.dpatch")).unwrap(),
                size: full,
                sha256: Sha256Digest([100 + n; 32]),
                compression: "zstd".into(),
                apply_memory: 1 << 20,
            },
            patches: patches
                .iter()
                .map(|&(base, size)| PatchEntry {
                    base_version: format!("1.{base}"),
                    base_size: id(base).0,
                    base_sha256: id(base).1,
                    path: RelPath::new(&format!("patches/{base}-{n}.dpatch")).unwrap(),
                    size,
                    sha256: Sha256Digest([base * 16 + n; 32]),
                    method: PatchKind::File(Method::Bsdiff),
                    apply_memory: 1 << 20,
                })
                .collect(),
            kind: Default::default(),
            entries: Vec::new(),
        }
    }

    /// Releases 1.0 .. 1.3; 1.3 newest with patches from 1.2 (cheap) and 1.0 (dear);
    /// 1.2 has a patch from 1.1; 1.1 from 1.0.
    fn manifest(newest_patches: &[(u8, u64)]) -> Manifest {
        let release = |n: u8, patches: &[(u8, u64)]| PreviousRelease {
            version: format!("1.{n}"),
            sequence: u64::from(n) + 1,
            artifacts: vec![artifact(n, 5000, patches)],
        };
        Manifest {
            format: 1,
            product: "p".into(),
            channel: "c".into(),
            version: "1.3".into(),
            sequence: 4,
            created: Timestamp(0),
            expires: Timestamp(u64::MAX / 2),
            artifacts: vec![artifact(3, 5000, newest_patches)],
            previous: vec![
                release(2, &[(1, 100)]),
                release(1, &[(0, 100)]),
                release(0, &[]),
            ],
        }
    }

    fn installed(m: &Manifest, n: u8) -> Installed {
        let (size, sha256) = id(n);
        Installed::identify(m, "app", Some(FileId { size, sha256 }))
    }

    fn versions(plan: &Plan) -> Vec<String> {
        plan.route
            .steps()
            .iter()
            .map(|s| s.to_version.clone())
            .collect()
    }

    #[test]
    fn declared_sizes_that_would_wrap_are_too_large_not_small() {
        // i64::MAX + i64::MAX + 2 is 2^64: a wrapping sum would make the chain cost 0.
        let mut m = manifest(&[(2, 2)]);
        m.previous[0].artifacts[0].patches[0].size = i64::MAX as u64;
        m.previous[1].artifacts[0].patches[0].size = i64::MAX as u64;
        let policy = Policy {
            full_image: FullImage::Never,
            max_download: Some(1000),
            ..Policy::default()
        };
        let e = plan(&m, &m.artifacts[0], &installed(&m, 0), &policy).unwrap_err();
        assert!(
            matches!(
                e,
                PlanError::TooLarge {
                    needed: u64::MAX,
                    limit: 1000
                }
            ),
            "{e}"
        );
        assert_eq!(total_bytes([u64::MAX, 1]), u64::MAX);
        assert_eq!(total_bytes([i64::MAX as u64; 3]), u64::MAX);
    }

    #[test]
    fn direct_patch_when_cheapest() {
        let m = manifest(&[(2, 50), (1, 400), (0, 900)]);
        let p = plan(&m, &m.artifacts[0], &installed(&m, 2), &Policy::default()).unwrap();
        assert_eq!(p.route.kind(), "patch");
        assert_eq!(p.download_size, 50);
    }

    #[test]
    fn chain_when_cheaper_than_direct() {
        let m = manifest(&[(2, 50), (0, 900)]);
        let p = plan(&m, &m.artifacts[0], &installed(&m, 0), &Policy::default()).unwrap();
        assert_eq!(p.route.kind(), "chain");
        assert_eq!(versions(&p), ["1.1", "1.2", "1.3"]);
        assert_eq!(p.download_size, 250);
    }

    #[test]
    fn chain_bounded_by_max_chain() {
        let m = manifest(&[(2, 50)]);
        let policy = Policy {
            max_chain: 2,
            ..Policy::default()
        };
        let p = plan(&m, &m.artifacts[0], &installed(&m, 0), &policy).unwrap();
        assert_eq!(p.route.kind(), "full");
        let p = plan(&m, &m.artifacts[0], &installed(&m, 1), &policy).unwrap();
        assert_eq!(versions(&p), ["1.2", "1.3"]);
    }

    #[test]
    fn full_when_smaller_or_unknown_or_preferred() {
        let m = manifest(&[(2, 6000)]);
        let p = plan(&m, &m.artifacts[0], &installed(&m, 2), &Policy::default()).unwrap();
        assert_eq!(p.route.kind(), "full");
        assert_eq!(p.cheapest_patch_route, Some(6000));
        let m = manifest(&[(2, 50)]);
        let p = plan(&m, &m.artifacts[0], &installed(&m, 9), &Policy::default()).unwrap();
        assert!(matches!(p.route, Route::Full(_)), "{p:?}");
        let p = plan(&m, &m.artifacts[0], &Installed::Missing, &Policy::default()).unwrap();
        assert!(matches!(p.route, Route::Full(_)));
        let prefer = Policy {
            full_image: FullImage::Prefer,
            ..Policy::default()
        };
        let p = plan(&m, &m.artifacts[0], &installed(&m, 2), &prefer).unwrap();
        assert!(matches!(p.route, Route::Full(_)));
    }

    #[test]
    fn no_full_and_limits() {
        let m = manifest(&[(2, 50)]);
        let never = Policy {
            full_image: FullImage::Never,
            ..Policy::default()
        };
        let e = plan(&m, &m.artifacts[0], &installed(&m, 9), &never).unwrap_err();
        assert!(matches!(e, PlanError::FullForbidden { .. }), "{e}");
        // --no-full takes a patch route even when it is larger than the full image.
        let m2 = manifest(&[(2, 6000)]);
        let p = plan(&m2, &m2.artifacts[0], &installed(&m2, 2), &never).unwrap();
        assert_eq!(p.download_size, 6000);
        let small = Policy {
            max_download: Some(49),
            ..Policy::default()
        };
        let e = plan(&m, &m.artifacts[0], &installed(&m, 2), &small).unwrap_err();
        assert_eq!(
            e,
            PlanError::TooLarge {
                needed: 50,
                limit: 49
            }
        );
        let tight = Policy {
            max_apply_memory: 1000,
            ..Policy::default()
        };
        let e = plan(&m, &m.artifacts[0], &installed(&m, 2), &tight).unwrap_err();
        assert!(matches!(e, PlanError::Memory { .. }), "{e}");
    }

    #[test]
    fn up_to_date() {
        let m = manifest(&[(2, 50)]);
        let p = plan(&m, &m.artifacts[0], &installed(&m, 3), &Policy::default()).unwrap();
        assert_eq!(p.route, Route::UpToDate);
        assert_eq!(p.download_size, 0);
    }
}
