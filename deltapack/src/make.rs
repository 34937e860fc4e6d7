//! Making one file's patch: one method within the memory budget ([`make_one`]), or
//! `auto`, every method side by side and the smallest kept ([`make_patch`]).

use deltaapply::Method;
use deltaapply::container::{MAX_WINDOW_LOG, MIN_WINDOW_LOG, memory_bound};

use deltaapply::exe::{Direction, Filter, TransformTable, code_file};

use crate::exe::{self, TransformChoice};
use crate::{DiffError, MethodChoice, Settings, methods, suffix};

/// One method's result while choosing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Candidate {
    /// The method.
    pub method: Method,
    /// Patch size in bytes, when it was made.
    pub size: Option<u64>,
    /// Memory applying it needs, when it was made.
    pub apply_memory: Option<u64>,
    /// Why it was not made.
    pub skipped: Option<String>,
}

/// A finished patch and how it was chosen.
#[derive(Debug, Clone)]
pub struct MadePatch {
    /// The patch file's bytes.
    pub bytes: Vec<u8>,
    /// The method chosen.
    pub method: Method,
    /// Memory applying the chosen patch needs (its header's `apply_memory`).
    pub apply_memory: u64,
    /// Every method considered.
    pub candidates: Vec<Candidate>,
}

/// The largest window log at which `method` fits `budget`, if any.
pub fn max_window_log(
    method: Method,
    source_size: u64,
    target_size: u64,
    budget: u64,
) -> Option<u8> {
    (MIN_WINDOW_LOG..=MAX_WINDOW_LOG)
        .rev()
        .find(|&w| memory_bound(method, w, source_size, target_size) <= budget)
}

/// Makes a patch from `old` to `new`.
pub fn make_patch(
    old: &[u8],
    new: &[u8],
    choice: MethodChoice,
    settings: &Settings,
) -> Result<MadePatch, DiffError> {
    let results: Vec<(Method, Result<Vec<u8>, Skip>)> = match choice {
        MethodChoice::Only(method) => {
            vec![(
                method,
                make_one(method, old, new, settings).map_err(Skip::Failed),
            )]
        }
        MethodChoice::Auto => auto(old, new, settings),
    };

    let mut candidates = Vec::new();
    let mut best: Option<(Method, Vec<u8>)> = None;
    let mut first_error = None;
    let mut all_over_budget = true;
    for (method, result) in results {
        match result {
            Ok(bytes) => {
                let header = deltaapply::Header::decode(&bytes, bytes.len() as u64)
                    .expect("encoder writes valid headers");
                candidates.push(Candidate {
                    method,
                    size: Some(bytes.len() as u64),
                    apply_memory: Some(header.apply_memory),
                    skipped: None,
                });
                // Strictly smaller wins, so ties go to the earlier method in Method::ALL.
                if best.as_ref().is_none_or(|(_, b)| bytes.len() < b.len()) {
                    best = Some((method, bytes));
                }
            }
            Err(skip) => {
                let reason = match &skip {
                    Skip::Failed(e) => e.to_string(),
                    Skip::CannotWin { estimate, best } => format!(
                        "cannot win: a quick compression gives {estimate} bytes, over twice the best patch's {best}"
                    ),
                };
                candidates.push(Candidate {
                    method,
                    size: None,
                    apply_memory: None,
                    skipped: Some(reason),
                });
                if let Skip::Failed(e) = skip {
                    all_over_budget &= e.is_over_budget();
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    match best {
        Some((method, bytes)) => {
            let apply_memory = candidates
                .iter()
                .find(|c| c.method == method)
                .and_then(|c| c.apply_memory)
                .expect("the chosen method is a candidate with its header read");
            Ok(MadePatch {
                bytes,
                method,
                apply_memory,
                candidates,
            })
        }
        None if candidates.len() == 1 => Err(first_error.expect("the one method failed")),
        None => Err(DiffError::NoMethod {
            over_budget: all_over_budget,
            reasons: candidates
                .iter()
                .map(|c| (c.method, c.skipped.clone().unwrap_or_default()))
                .collect(),
        }),
    }
}

/// Why `auto` has no patch from a method.
enum Skip {
    Failed(DiffError),
    /// The full image, when a quick compression shows it cannot beat the best delta.
    CannotWin {
        estimate: u64,
        best: u64,
    },
}

/// The full image at level 19 is rarely more than 25% smaller than at level 3 with
/// the same window; a quick estimate over this factor times the best delta means
/// the full image cannot win, and its slow compression is skipped.
const FULL_ESTIMATE_FACTOR: u64 = 2;

/// `auto`: the delta methods side by side (with a quick estimate of the full image
/// beside them), then the full image unless the estimate rules it out. Every choice
/// depends only on the inputs and settings, so the result is deterministic.
fn auto(old: &[u8], new: &[u8], settings: &Settings) -> Vec<(Method, Result<Vec<u8>, Skip>)> {
    let (deltas, estimate) = std::thread::scope(|s| {
        let handles: Vec<_> = [Method::Bsdiff, Method::ZstdRef]
            .into_iter()
            .map(|m| s.spawn(move || (m, make_one(m, old, new, settings).map_err(Skip::Failed))))
            .collect();
        let quick = Settings {
            level: settings.level.min(3),
            ..settings.clone()
        };
        let estimate = make_one(Method::Full, old, new, &quick).map(|b| b.len() as u64);
        let deltas: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("method thread panicked"))
            .collect();
        (deltas, estimate)
    });
    let best = deltas
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .map(|b| b.len() as u64)
        .min();
    let full = match (estimate, best) {
        (Ok(estimate), Some(best)) if estimate > FULL_ESTIMATE_FACTOR * best => {
            Err(Skip::CannotWin { estimate, best })
        }
        _ => make_one(Method::Full, old, new, settings).map_err(Skip::Failed),
    };
    let mut results = deltas;
    results.push((Method::Full, full));
    results
}

/// With `DELTAPACK_TIMINGS=1` in the environment, prints how long a phase took to
/// stderr (a diagnostic for benchmarking; never part of normal output).
fn trace_phase(name: &str, started: std::time::Instant) {
    if std::env::var_os("DELTAPACK_TIMINGS").is_some() {
        eprintln!("[timing] {name}: {:.2} s", started.elapsed().as_secs_f64());
    }
}

fn bsdiff_plain(old: &[u8], new: &[u8], settings: &Settings, w: u8) -> Result<Vec<u8>, DiffError> {
    let started = std::time::Instant::now();
    let index = suffix::SuffixIndex::build(old, settings.threads)?;
    trace_phase("suffix index", started);
    let started = std::time::Instant::now();
    let patch = methods::bsdiff(&index, old, new, settings, w)?;
    trace_phase("bsdiff match + compress", started);
    Ok(patch)
}

/// The bsdiff patch of old and new with their x86 code filtered (patch-v1 §5.2.6), if
/// either is a recognised executable.
fn bsdiff_transformed(
    old: &[u8],
    new: &[u8],
    settings: &Settings,
    w: u8,
) -> Result<Option<Vec<u8>>, DiffError> {
    let filter = match settings.transform {
        TransformChoice::X86Branches => Filter::X86Branches,
        _ => Filter::X86,
    };
    let table = TransformTable {
        old: exe::code_ranges(old, filter),
        new: exe::code_ranges(new, filter),
    };
    if table.old.is_empty() && table.new.is_empty() {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let filtered = |data: &[u8], ranges| {
        let mut copy = data.to_vec();
        code_file(&mut copy, ranges, Direction::Forward);
        copy
    };
    let (old_f, new_f) = (filtered(old, &table.old), filtered(new, &table.new));
    let index = suffix::SuffixIndex::build(&old_f, settings.threads)?;
    let transform = methods::Transformed {
        old,
        new,
        table: table.encode(),
    };
    let patch = methods::bsdiff_transformed(&index, &old_f, &new_f, settings, w, Some(transform))?;
    trace_phase("bsdiff with the x86 transform", started);
    Ok(Some(patch))
}

/// Makes one method's patch within the settings' memory budget.
pub fn make_one(
    method: Method,
    old: &[u8],
    new: &[u8],
    settings: &Settings,
) -> Result<Vec<u8>, DiffError> {
    let budget = settings.max_apply_memory;
    let (old_len, new_len) = (old.len() as u64, new.len() as u64);
    let over = |needed| DiffError::OverBudget {
        method,
        needed,
        budget,
    };
    match method {
        Method::Bsdiff => {
            let w = max_window_log(method, old_len, new_len, budget)
                .ok_or_else(|| over(memory_bound(method, MIN_WINDOW_LOG, old_len, new_len)))?;
            let forced = matches!(
                settings.transform,
                TransformChoice::X86 | TransformChoice::X86Branches
            );
            let plain = (!forced)
                .then(|| bsdiff_plain(old, new, settings, w))
                .transpose()?;
            let transformed = match settings.transform {
                TransformChoice::None => None,
                _ => bsdiff_transformed(old, new, settings, w)?,
            };
            // A transform that makes the patch larger is not used (ties: plain).
            Ok(match (plain, transformed) {
                (Some(p), Some(t)) if t.len() < p.len() => t,
                (Some(p), _) => p,
                (None, Some(t)) => t,
                (None, None) => bsdiff_plain(old, new, settings, w)?,
            })
        }
        Method::ZstdRef => {
            let w = methods::window_log_for(old_len + new_len).min(MAX_WINDOW_LOG);
            let needed = memory_bound(method, w, old_len, new_len);
            if needed > budget {
                return Err(over(needed));
            }
            Ok(methods::zstd_ref(old, new, settings)?)
        }
        Method::Full => {
            let w = max_window_log(method, 0, new_len, budget)
                .ok_or_else(|| over(memory_bound(method, MIN_WINDOW_LOG, 0, new_len)))?;
            Ok(methods::full(new, settings, w)?)
        }
    }
}
