//! Fan-out over CI jobs: `--plan` writes the build's deterministic work list (which
//! patch, from which base, for which artifact), `--shard K/N` makes its share of the
//! file patches (unsigned: a shard needs no secret key) and writes them to the store
//! under `shards/<plan id>/<job>.dpatch`, and `--merge` (the one job holding the key)
//! checks the plan still holds, signs every shard's patch, applies each to its base as
//! a whole build does, and publishes. Patches are deterministic and signing is too, so
//! the result is byte-identical to a single-job build with the same inputs, settings,
//! key and `--created`. Tree artifacts' patches are made by `--merge` itself.

use deltaapply::{Method, PublicKey, Sha256Digest};

use super::bases::{self, Base, Select};
use super::jobs::{self, make_unsigned};
use super::{BuildError, BuildEvent, BuildReport, BuildSpec, Prepared, finish, prepare};
use crate::keys::SecretKey;
use crate::store::Store;

/// The plan's format name.
pub const PLAN_FORMAT: &str = "deltapack-build-plan-1";

/// Where shards put their patches, under the publish location.
pub const SHARDS_DIR: &str = "shards";

/// A build's work list. Two plans of the same location state, inputs and settings are
/// equal, whoever makes them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// [`PLAN_FORMAT`].
    pub format: String,
    /// The publish location.
    pub location: String,
    /// The SHA-256 of the manifest the plan builds on (`None`: the first release).
    pub manifest_sha256: Option<String>,
    /// The product.
    pub product: String,
    /// The channel.
    pub channel: String,
    /// The new release's version.
    pub version: String,
    /// Its sequence number.
    pub sequence: u64,
    /// The zstd level patches are made with.
    pub level: i32,
    /// The apply-memory budget patches are made for.
    pub max_apply_memory: u64,
    /// The new release's file artifacts.
    pub artifacts: Vec<PlannedArtifact>,
    /// The new release's tree artifacts (their patches are made by `--merge`).
    pub trees: Vec<String>,
    /// The file patches to make, in job order.
    pub jobs: Vec<PlannedJob>,
}

/// A new file artifact of a plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedArtifact {
    /// Its name.
    pub name: String,
    /// Its size.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: String,
}

/// One patch to make.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedJob {
    /// Its number: shard K of N makes the jobs whose number is K - 1 modulo N.
    pub job: usize,
    /// The artifact.
    pub artifact: String,
    /// The older release patched from.
    pub base_version: String,
    /// The base's size.
    pub base_size: u64,
    /// The base's SHA-256.
    pub base_sha256: String,
    /// The base's full image in the publish location.
    pub base_full: String,
    /// Its size.
    pub base_full_size: u64,
}

impl Plan {
    /// The plan of the build `prepared` is for.
    pub(super) fn of(spec: &BuildSpec, prepared: &Prepared) -> Plan {
        let jobs = bases::file_jobs(&prepared.releases, &prepared.inputs)
            .into_iter()
            .enumerate()
            .map(|(job, (version, a))| PlannedJob {
                job,
                artifact: a.name.clone(),
                base_version: version.to_string(),
                base_size: a.size,
                base_sha256: a.sha256.to_string(),
                base_full: a.full.path.to_string(),
                base_full_size: a.full.size,
            })
            .collect();
        Plan {
            format: PLAN_FORMAT.to_string(),
            location: spec.out.to_string(),
            manifest_sha256: prepared.manifest_sha256.map(|s| s.to_string()),
            product: prepared.identity.product.clone(),
            channel: prepared.identity.channel.clone(),
            version: spec.version.clone(),
            sequence: prepared.identity.sequence,
            level: spec.settings.level,
            max_apply_memory: spec.settings.max_apply_memory,
            artifacts: prepared
                .inputs
                .files
                .iter()
                .map(|(name, bytes)| PlannedArtifact {
                    name: name.clone(),
                    size: bytes.len() as u64,
                    sha256: Sha256Digest::of(bytes).to_string(),
                })
                .collect(),
            trees: prepared
                .inputs
                .trees
                .iter()
                .map(|(n, _)| n.clone())
                .collect(),
            jobs,
        }
    }

    /// The plan as written to its file: pretty JSON, the same bytes for equal plans.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a plan always serialises");
        bytes.push(b'\n');
        bytes
    }

    /// Reads a plan file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Plan, BuildError> {
        let plan: Plan = serde_json::from_slice(bytes)
            .map_err(|e| BuildError::Settings(format!("the plan is not a build plan: {e}")))?;
        if plan.format != PLAN_FORMAT {
            return Err(BuildError::Settings(format!(
                "the plan's format is {:?}, not {PLAN_FORMAT:?}",
                plan.format
            )));
        }
        Ok(plan)
    }

    /// The plan's identity: the first 16 hex digits of the SHA-256 of its bytes.
    pub fn id(&self) -> String {
        Sha256Digest::of(&self.to_bytes()).to_string()[..16].to_string()
    }

    /// Where job `job`'s patch goes.
    pub fn shard_path(&self, job: usize) -> String {
        format!("{SHARDS_DIR}/{}/{job}.dpatch", self.id())
    }

    /// Refuses to go on when this build's own plan is not this one: the location's
    /// state, the inputs or the settings changed since the plan was made.
    pub(super) fn check_against(&self, now: &Plan) -> Result<(), BuildError> {
        if self == now {
            return Ok(());
        }
        let field = match () {
            _ if self.location != now.location => "the publish location",
            _ if self.manifest_sha256 != now.manifest_sha256 => {
                "the published manifest (another release was published since)"
            }
            _ if self.version != now.version || self.sequence != now.sequence => "the version",
            _ if self.artifacts != now.artifacts || self.trees != now.trees => "the artifacts",
            _ if self.level != now.level || self.max_apply_memory != now.max_apply_memory => {
                "the settings (--level, --max-apply-memory)"
            }
            _ => "the work list",
        };
        Err(BuildError::Settings(format!(
            "this build does not match the plan {}: {field} differs; make a new plan with \
             --plan and run every shard again",
            self.id()
        )))
    }

    /// Removes the shards' files once the release is published (best effort: a file
    /// left over is never read again, the next plan has another id).
    pub(super) fn remove_shard_files(&self, store: &Store) {
        for job in &self.jobs {
            let _ = store.remove(&self.shard_path(job.job));
        }
        if let Store::Dir(dir) = store {
            let shards = dir.join(SHARDS_DIR);
            let _ = std::fs::remove_dir(shards.join(self.id()));
            let _ = std::fs::remove_dir(shards);
        }
    }
}

/// The plan of the build `spec` describes, trusting `trust` for the location's
/// manifest (no secret key is needed).
pub fn make_plan(spec: &BuildSpec, trust: &[PublicKey]) -> Result<Plan, BuildError> {
    let prepared = prepare(spec, trust, None)?;
    Ok(Plan::of(spec, &prepared))
}

/// What one shard did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShardReport {
    /// The plan's id.
    pub plan: String,
    /// Jobs made, by number.
    pub jobs: Vec<usize>,
    /// Bytes of the patches written.
    pub patch_bytes: u64,
    /// Bytes downloaded from a bucket (the manifest, signature, key chain and this
    /// shard's bases).
    pub downloaded_bytes: u64,
}

/// Shard `k` of `n` (1-based) of `plan`: rebuilds only its jobs' bases, makes their
/// patches (unsigned) and writes them to the store. Trusts `trust` for the location's
/// manifest and full images.
pub fn run_shard(
    spec: &BuildSpec,
    trust: &[PublicKey],
    plan: &Plan,
    (k, n): (usize, usize),
    events: &mut dyn FnMut(BuildEvent),
) -> Result<ShardReport, BuildError> {
    if n == 0 || k == 0 || k > n {
        return Err(BuildError::Settings(format!(
            "--shard {k}/{n}: expected K/N with 1 <= K <= N"
        )));
    }
    let prepared = prepare(spec, trust, None)?;
    plan.check_against(&Plan::of(spec, &prepared))?;
    let mine = |job: usize| job % n == k - 1;
    let select = Select {
        files: &mine,
        trees: false,
    };
    let bases = bases::rebuild_all(
        &prepared.sources(),
        &prepared.releases,
        &prepared.inputs,
        prepared.scratch.path(),
        &select,
    )?;
    events(BuildEvent::Planned {
        patches: bases.files.len(),
    });
    let store = &prepared.store;
    let made = jobs::parallel(
        spec.jobs,
        &bases.files,
        &|base: &Base| {
            let (_, new_bytes) = prepared
                .inputs
                .files
                .iter()
                .find(|(name, _)| *name == base.artifact)
                .expect("bases are for new artifacts");
            let bytes = make_unsigned(base, new_bytes, &spec.settings)?;
            store.write(&plan.shard_path(base.job), &bytes)?;
            Ok((base.job, bytes.len() as u64))
        },
        &mut |_| {},
    )?;
    Ok(ShardReport {
        plan: plan.id(),
        jobs: made.iter().map(|(job, _)| *job).collect(),
        patch_bytes: made.iter().map(|(_, size)| size).sum(),
        downloaded_bytes: store.downloaded(),
    })
}

/// `--merge`: the build of `plan`, with the shards' patches instead of patches made
/// here, signed with `key`. Fails, publishing nothing, if the plan no longer holds or
/// a shard's patch is missing or is not the patch the plan asks for.
pub fn merge(
    spec: &BuildSpec,
    key: &SecretKey,
    plan: &Plan,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<BuildReport, BuildError> {
    let prepared = prepare(spec, &[key.public_key()], Some(key))?;
    finish(spec, key, prepared, Some(plan), events)
}

/// Reads job `base.job`'s patch from the store, checked to be a patch-v1 container
/// from that base to the new artifact.
pub(super) fn fetcher<'a>(
    plan: &'a Plan,
    store: &'a Store,
    new_files: &'a [(String, Vec<u8>)],
) -> impl Fn(&Base) -> Result<Vec<u8>, BuildError> + Sync + 'a {
    move |base: &Base| {
        let path = plan.shard_path(base.job);
        let (_, new_bytes) = new_files
            .iter()
            .find(|(name, _)| *name == base.artifact)
            .expect("bases are for new artifacts");
        let wrong = |problem: String| BuildError::SelfCheck {
            artifact: base.artifact.clone(),
            version: base.version.clone(),
            source: format!("{}: {problem}", store.shown_at(&path).display()).into(),
        };
        let cap = 2 * new_bytes.len() as u64 + (1 << 20);
        let bytes = store.read(&path, cap)?.ok_or_else(|| {
            wrong(format!(
                "missing: job {} has not been made; run every --shard of plan {} first",
                base.job,
                plan.id()
            ))
        })?;
        let header = deltaapply::Header::decode(&bytes, bytes.len() as u64)
            .map_err(|e| wrong(format!("not a patch: {e}")))?;
        let job = plan
            .jobs
            .get(base.job)
            .ok_or_else(|| wrong("not in the plan".into()))?;
        let source_ok = match header.source() {
            None => header.method() == Method::Full,
            Some(s) => s.size == job.base_size && s.sha256.to_string() == job.base_sha256,
        };
        let target = deltaapply::FileId {
            size: new_bytes.len() as u64,
            sha256: Sha256Digest::of(new_bytes),
        };
        if !source_ok || header.target != target {
            return Err(wrong(
                "patches another pair of files than the plan's job".into(),
            ));
        }
        Ok(bytes)
    }
}
