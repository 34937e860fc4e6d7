//! Carrying a planned route out ([`Run`]): fetching each file of a route (resumably,
//! checked against the manifest) and applying patches and full images. The tree routes
//! are in `update/tree.rs`.

use std::fs;
use std::path::Path;

use super::{Event, Step, UpdateError, Updater};
use deltaapply_apply::key::TrustedKeys;
use deltaapply_apply::{AnyPatch, Limits, PatchKind};

/// One update in progress.
pub(super) struct Run<'u, 'e> {
    pub(super) updater: &'u Updater,
    /// The keys patches must be signed by: the updater's, or with a key chain the
    /// newest version's.
    pub(super) trusted: TrustedKeys,
    pub(super) cache: &'u Path,
    pub(super) downloaded: u64,
    pub(super) events: &'e mut dyn FnMut(Event<'_>),
}

impl Run<'_, '_> {
    /// Applies a chain of patches: each intermediate release goes to the download
    /// directory, the last is renamed over the target.
    pub(super) fn patches(&mut self, steps: &[Step], target: &Path) -> Result<(), UpdateError> {
        let mut current = target.to_path_buf();
        let result = (|| {
            for (i, step) in steps.iter().enumerate() {
                let dest = if i + 1 == steps.len() {
                    target.to_path_buf()
                } else {
                    self.cache.join(format!("{}.step", step.target.sha256))
                };
                self.step(i, steps.len(), step, Some(&current), &dest)?;
                if current != target {
                    let _ = fs::remove_file(&current);
                }
                current = dest;
            }
            Ok(())
        })();
        if current != target {
            let _ = fs::remove_file(&current);
        }
        result
    }

    pub(super) fn full(&mut self, step: &Step, target: &Path) -> Result<(), UpdateError> {
        self.step(0, 1, step, None, target)
    }

    /// Fetches one file of the publish directory (or finds it on a local mirror).
    pub(super) fn fetch(
        &mut self,
        index: usize,
        steps: usize,
        step: &Step,
    ) -> Result<deltaapply_fetch::fetch::Fetched, UpdateError> {
        let events = &mut *self.events;
        let received = self.updater.fetcher.received();
        let fetched = self
            .updater
            .fetcher
            .fetch_file(
                &self.updater.source,
                &step.path,
                step.file,
                self.cache,
                &mut |p| {
                    events(Event::Download {
                        step: index,
                        steps,
                        file: step,
                        done: p.done,
                        total: p.total,
                    })
                },
            )
            .map_err(|source| UpdateError::Fetch {
                file: step.path.to_string(),
                source,
            });
        // Counted whether or not the download succeeded: failed attempts cost bytes too.
        self.downloaded += self.updater.fetcher.received() - received;
        fetched
    }

    /// Removes a downloaded file once used (a file on a local mirror is never touched).
    pub(super) fn discard(&self, fetched: &deltaapply_fetch::fetch::Fetched) {
        if fetched.path.starts_with(self.cache) {
            let _ = fs::remove_file(&fetched.path);
        }
    }

    /// The applier's limits under the policy.
    pub(super) fn limits(&self) -> Limits {
        Limits {
            max_apply_memory: self.updater.policy.max_apply_memory,
        }
    }

    /// Fetches one file and applies it from `old` to `dest`.
    fn step(
        &mut self,
        index: usize,
        steps: usize,
        step: &Step,
        old: Option<&Path>,
        dest: &Path,
    ) -> Result<(), UpdateError> {
        let fetched = self.fetch(index, steps, step)?;
        let limits = self.limits();
        let events = &mut *self.events;
        let patch = match AnyPatch::open(&fetched.path)? {
            AnyPatch::File(patch) => patch,
            AnyPatch::Tree(_) => {
                return Err(UpdateError::Mismatch {
                    path: fetched.path,
                    problem: format!("method tree instead of {}", step.method),
                });
            }
        };
        let header = patch.header();
        let problem = if PatchKind::File(header.method()) != step.method {
            Some(format!(
                "method {} instead of {}",
                header.method(),
                step.method
            ))
        } else if header.target != step.target {
            Some("it makes another file than the manifest says".to_string())
        } else if header.source() != step.base {
            Some("it applies to another file than the manifest says".to_string())
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(UpdateError::Mismatch {
                path: fetched.path,
                problem,
            });
        }
        let applied = deltaapply_apply::apply_unlocked(
            old,
            &patch,
            dest,
            &limits,
            Some(&self.trusted),
            &mut |p| {
                events(Event::Apply {
                    step: index,
                    steps,
                    phase: p.phase,
                    done: p.done,
                    total: p.total,
                })
            },
        );
        drop(patch);
        // A downloaded file is of no further use once applied, or once it failed to
        // apply.
        self.discard(&fetched);
        applied?;
        Ok(())
    }
}
