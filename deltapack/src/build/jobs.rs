//! The patches of file artifacts: one per base, made on `spec.jobs` threads, signed,
//! dropped when not worth publishing, else applied to its base and checked.

use std::path::Path;
use std::sync::mpsc;

use deltaapply::manifest::{Artifact, PatchEntry, RelPath};
use deltaapply::{Method, Sha256Digest, TrustedKeys};

use super::bases::Base;
use super::{BuildError, BuildEvent, BuildSpec, PatchSummary, sign_container};
use crate::keys::SecretKey;
use crate::store::{self, PATCH_DIR, StoreError};
use crate::{MethodChoice, make_patch};

pub(super) type Made<'b> = (&'b Base, Vec<u8>, PatchSummary);

/// Where a job's unsigned patch comes from when it is not made here (`--merge`: the
/// shards' uploads), checked to be a container from the base to the new artifact.
pub(super) type Fetch<'a> = &'a (dyn Fn(&Base) -> Result<Vec<u8>, BuildError> + Sync);

/// What every patch job shares.
pub(super) struct Jobs<'a> {
    pub spec: &'a BuildSpec,
    pub key: &'a SecretKey,
    pub trusted: &'a TrustedKeys,
    pub new_files: &'a [(String, Vec<u8>)],
    pub full_sizes: &'a [(String, u64)],
    pub scratch: &'a Path,
    /// `None`: make each patch; else fetch it.
    pub fetch: Option<Fetch<'a>>,
}

/// Runs `f` on every base on `jobs` threads; results come back in base order whatever
/// the scheduling, so the output is deterministic. `done` hears of each result as it
/// comes (on the calling thread). The first error stops the others taking new work.
pub(super) fn parallel<T: Send>(
    jobs: usize,
    bases: &[Base],
    f: &(dyn Fn(&Base) -> Result<T, BuildError> + Sync),
    done: &mut dyn FnMut(&T),
) -> Result<Vec<T>, BuildError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Result<T, BuildError>)>();
    let jobs = jobs.clamp(1, bases.len().max(1));
    let mut results: Vec<Option<T>> = (0..bases.len()).map(|_| None).collect();
    let mut first_error = None;
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let next = &next;
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(base) = bases.get(i) else { break };
                    let result = f(base);
                    let failed = result.is_err();
                    if tx.send((i, result)).is_err() || failed {
                        next.store(bases.len(), std::sync::atomic::Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, result) in rx {
            match result {
                Ok(value) => {
                    done(&value);
                    results[i] = Some(value);
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
    Ok(results
        .into_iter()
        .map(|r| r.expect("every base has a result when none failed"))
        .collect())
}

/// Makes the unsigned patch from `base` to `new_bytes` with `settings` (the part of a
/// job a shard does).
pub(super) fn make_unsigned(
    base: &Base,
    new_bytes: &[u8],
    settings: &crate::Settings,
) -> Result<Vec<u8>, BuildError> {
    let old_bytes =
        std::fs::read(&base.file).map_err(StoreError::new("cannot read", &base.file))?;
    let made =
        make_patch(&old_bytes, new_bytes, MethodChoice::Auto, settings).map_err(|source| {
            BuildError::Diff {
                artifact: base.artifact.clone(),
                version: base.version.clone(),
                source,
            }
        })?;
    Ok(made.bytes)
}

impl Jobs<'_> {
    /// Makes (or fetches), signs and checks one patch per base on `spec.jobs` threads,
    /// in base order.
    pub(super) fn run<'b>(
        &self,
        bases: &'b [Base],
        events: &mut dyn FnMut(BuildEvent),
    ) -> Result<Vec<Made<'b>>, BuildError> {
        let results = parallel(self.spec.jobs, bases, &|base| self.one(base), &mut |r| {
            events(BuildEvent::PatchDone(r.1.clone()))
        })?;
        Ok(bases
            .iter()
            .zip(results)
            .map(|(base, (bytes, summary))| (base, bytes, summary))
            .collect())
    }

    /// One patch: made (or fetched), signed, dropped if not worth it, else applied to
    /// its base and checked.
    fn one(&self, base: &Base) -> Result<(Vec<u8>, PatchSummary), BuildError> {
        let Jobs {
            spec,
            key,
            trusted,
            new_files,
            full_sizes,
            scratch,
            fetch,
        } = *self;
        let index = base.job;
        let full_size = full_sizes
            .iter()
            .find(|(n, _)| *n == base.artifact)
            .map_or(0, |(_, s)| *s);
        let (_, new_bytes) = new_files
            .iter()
            .find(|(n, _)| *n == base.artifact)
            .expect("bases are for new artifacts");
        let mut bytes = match fetch {
            None => make_unsigned(base, new_bytes, &spec.settings)?,
            Some(fetch) => fetch(base)?,
        };
        let header = deltaapply::Header::decode(&bytes, bytes.len() as u64)
            .expect("made and fetched patches have valid headers");
        sign_container(&mut bytes, key);
        let size = bytes.len() as u64;
        let share = size as f64 / full_size.max(1) as f64;
        let mut summary = PatchSummary {
            artifact: base.artifact.clone(),
            base_version: base.version.clone(),
            method: header.method().into(),
            size,
            full_size,
            share,
            apply_memory: header.apply_memory,
            path: None,
            omitted: None,
        };
        if header.method() == Method::Full {
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

/// Records each patch kept in its artifact's manifest entry and among the files to
/// publish, and every summary, in base order.
pub(super) fn record(
    made: Vec<Made<'_>>,
    artifacts: &mut [(Artifact, Vec<u8>)],
    summaries: &mut Vec<PatchSummary>,
    patch_files: &mut Vec<(RelPath, Vec<u8>)>,
) {
    for (base, patch_bytes, summary) in made {
        let (artifact, _) = artifacts
            .iter_mut()
            .find(|(a, _)| a.name == base.artifact)
            .expect("bases are for new artifacts");
        if summary.omitted.is_none() {
            let path = store::content_path(PATCH_DIR, &patch_bytes);
            let header = deltaapply::Header::decode(&patch_bytes, patch_bytes.len() as u64)
                .expect("encoder writes valid headers");
            let source = header.source().expect("a delta method has a source");
            artifact.patches.push(PatchEntry {
                base_version: base.version.clone(),
                base_size: source.size,
                base_sha256: source.sha256,
                path: path.clone(),
                size: patch_bytes.len() as u64,
                sha256: Sha256Digest::of(&patch_bytes),
                method: header.method().into(),
                apply_memory: header.apply_memory,
            });
            patch_files.push((path, patch_bytes));
        }
        summaries.push(summary);
    }
}
