//! Round trips: every patch `deltapack` makes must turn the old file into exactly the
//! new one when `deltaapply` applies it, the same inputs must give the same bytes, and
//! `auto` must pick the smallest method that fits the memory budget.
//!
//! New files are realistic edits of old ones (see `common`), not random noise: the
//! matcher's interesting paths (approximate matches over shifted pointers, switching
//! alignment after moved blocks, zero runs) only run on such pairs.

mod common;

use common::{
    Edit, GENEROUS, Kind, Rng, Segment, apply_via_files, assert_applies, assert_same, build, fill,
    mutate, roundtrip_all, settings,
};
use deltaapply::container::BASE_APPLY_MEMORY;
use deltaapply::{Header, Limits, Method};
use deltapack::{DiffError, MethodChoice, make_one, make_patch};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

fn kind() -> impl Strategy<Value = Kind> {
    prop::sample::select(Kind::ALL.to_vec())
}

/// Up to eight segments of up to 8 KiB: old files of up to 64 KiB.
fn segments() -> impl Strategy<Value = Vec<Segment>> {
    let segment = (kind(), 0usize..8192, any::<u64>()).prop_map(|(kind, len, seed)| Segment {
        kind,
        len,
        seed,
    });
    prop::collection::vec(segment, 0..=8)
}

fn edit() -> impl Strategy<Value = Edit> {
    let delta = prop_oneof![-4096i32..=-1, 1i32..=4096];
    prop_oneof![
        1 => (any::<u32>(), kind(), 0u16..4096, any::<u64>())
            .prop_map(|(at, kind, len, seed)| Edit::Insert { at, kind, len, seed }),
        1 => (any::<u32>(), 0u16..4096).prop_map(|(at, len)| Edit::Delete { at, len }),
        1 => (any::<u32>(), 0u16..8192, any::<u32>())
            .prop_map(|(from, len, to)| Edit::Move { from, len, to }),
        1 => (1u8..=8, any::<u64>()).prop_map(|(count, seed)| Edit::Overwrite { count, seed }),
        // Relocations are the case the bsdiff method exists for: weight them up.
        2 => (any::<u32>(), 0u32..65536, delta)
            .prop_map(|(at, len, delta)| Edit::ShiftPointers { at, len, delta }),
        1 => (any::<u32>(), 0u16..4096, any::<u32>())
            .prop_map(|(from, len, to)| Edit::Duplicate { from, len, to }),
    ]
}

/// An old file and the edits that make the new one from it.
fn pair() -> impl Strategy<Value = (Vec<Segment>, Vec<Edit>)> {
    (segments(), prop::collection::vec(edit(), 0..=8))
}

/// `cases` cases, or `PROPTEST_CASES` when set (e.g. many more in a release build).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        // Each case diffs several times; shrinking a 64 KiB case is slow in debug
        // builds, and a case's printed segments and edits already reproduce it.
        max_shrink_iters: 64,
        // A failing case is printed in full; turn it into a plain #[test] below
        // rather than keeping a seed file beside this one.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Budgets around the smallest any method can fit: none fits at `BASE - 1`; just
/// above `BASE` only small windows fit (the bsdiff method needs `3 * 2^10` more at
/// least); higher up, whether the zstd method fits depends on the old file's size.
fn budget() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(BASE_APPLY_MEMORY - 1),
        2 => BASE_APPLY_MEMORY..BASE_APPLY_MEMORY + (8 << 10),
        5 => BASE_APPLY_MEMORY..BASE_APPLY_MEMORY + (192 << 10),
    ]
}

proptest! {
    // A case costs about a third of a second in a debug build, most of it setting up
    // level-19 zstd encoders; the counts keep the file well under a minute.
    #![proptest_config(config(32))]

    /// Every method, and auto, applies to exactly the new file; auto is the smallest.
    #[test]
    fn every_method_round_trips((segments, edits) in pair()) {
        let old = build(&segments);
        roundtrip_all(&old, &mutate(&old, &edits));
    }
}

proptest! {
    // These cases diff six to nine times each.
    #![proptest_config(config(24))]

    /// Under a tight budget, auto picks the smallest method that fits (or fails when
    /// none does), every patch made declares memory within the budget, and the applier
    /// accepts it at exactly that limit and refuses it one byte below.
    #[test]
    fn auto_picks_the_smallest_that_fits((segments, edits) in pair(), budget in budget()) {
        let old = build(&segments);
        check_budget(&old, &mutate(&old, &edits), budget)?;
    }

    /// The same inputs give the same bytes, whatever the thread count.
    #[test]
    fn patches_are_deterministic((segments, edits) in pair()) {
        let old = build(&segments);
        check_determinism(&old, &mutate(&old, &edits))?;
    }
}

fn check_budget(old: &[u8], new: &[u8], budget: u64) -> Result<(), TestCaseError> {
    let s = settings(1, budget);
    let mut fitting = Vec::new();
    for method in Method::ALL {
        match make_one(method, old, new, &s) {
            Ok(patch) => {
                let header = Header::decode(&patch, patch.len() as u64).expect("valid header");
                let need = header.apply_memory;
                prop_assert!(need <= budget, "{method}: {need} > {budget}");
                let at_limit = Limits {
                    max_apply_memory: need,
                };
                let got = apply_via_files(old, &patch, &at_limit)
                    .unwrap_or_else(|e| panic!("{method}: apply failed: {e}"));
                assert_same(&got, new, method.name());
                let below = Limits {
                    max_apply_memory: need - 1,
                };
                let refused = apply_via_files(old, &patch, &below);
                prop_assert!(
                    matches!(refused, Err(deltaapply::Error::MemoryLimit { .. })),
                    "{method}: applied below its declared memory: {refused:?}"
                );
                fitting.push((method, patch));
            }
            Err(DiffError::OverBudget { needed, .. }) => {
                prop_assert!(
                    needed > budget,
                    "{method}: refused with {needed} <= {budget}"
                );
            }
            Err(e) => panic!("{method}: {e}"),
        }
    }
    let auto = match make_patch(old, new, MethodChoice::Auto, &s) {
        Ok(auto) => auto,
        Err(e) if e.is_over_budget() => {
            prop_assert!(fitting.is_empty(), "auto failed, but {} fit", fitting.len());
            return Ok(());
        }
        Err(e) => panic!("auto: {e}"),
    };
    let smallest = fitting.iter().map(|(_, p)| p.len()).min();
    prop_assert_eq!(Some(auto.bytes.len()), smallest);
    let (_, same) = fitting
        .iter()
        .find(|(m, _)| *m == auto.method)
        .expect("auto's method fits");
    prop_assert!(*same == auto.bytes, "auto's patch differs from make_one's");
    // A candidate auto made is the patch make_one makes. One it skipped either does
    // not fit, or (the full image ruled out by a quick estimate) is larger than
    // auto's choice, which the minimum above checks.
    for c in &auto.candidates {
        let made = fitting
            .iter()
            .find(|(m, _)| *m == c.method)
            .map(|(_, p)| p.len() as u64);
        match c.size {
            Some(size) => prop_assert_eq!(Some(size), made, "candidate {}", c.method),
            None => prop_assert!(c.skipped.is_some(), "{} has no size, no reason", c.method),
        }
    }
    Ok(())
}

/// Each method with one thread and with two, then auto with two against the method
/// it chose: two runs that differ only in threads, so any nondeterminism shows too.
fn check_determinism(old: &[u8], new: &[u8]) -> Result<(), TestCaseError> {
    let (one, two) = (settings(1, GENEROUS), settings(2, GENEROUS));
    let mut single = Vec::new();
    for method in Method::ALL {
        let first = make_one(method, old, new, &one).expect("diff");
        let threaded = make_one(method, old, new, &two).expect("diff");
        prop_assert!(first == threaded, "{method}: 1 and 2 threads differ");
        single.push((method, first));
    }
    let auto = make_patch(old, new, MethodChoice::Auto, &two).expect("diff");
    let (_, chosen) = single
        .iter()
        .find(|(m, _)| *m == auto.method)
        .expect("a method");
    prop_assert!(
        *chosen == auto.bytes,
        "auto ({}) differs from make_one",
        auto.method
    );
    Ok(())
}

/// `len` bytes with a stretch of each kind.
fn realistic(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let segments: Vec<Segment> = Kind::ALL
        .iter()
        .map(|&kind| Segment {
            kind,
            len: len / Kind::ALL.len(),
            seed: rng.next_u64(),
        })
        .collect();
    build(&segments)
}

/// The size of `method`'s patch among `sizes`.
fn size_of(sizes: &[(Method, usize)], method: Method) -> usize {
    sizes
        .iter()
        .find(|(m, _)| *m == method)
        .expect("every method")
        .1
}

#[test]
fn empty_old() {
    roundtrip_all(&[], &realistic(20_000, 1));
}

#[test]
fn empty_new() {
    roundtrip_all(&realistic(20_000, 2), &[]);
}

#[test]
fn both_empty() {
    roundtrip_all(&[], &[]);
}

#[test]
fn identical_files() {
    let old = realistic(50_000, 3);
    let sizes = roundtrip_all(&old, &old);
    // Header (296 bytes) plus three nearly empty streams.
    assert!(size_of(&sizes, Method::Bsdiff) < 600, "{sizes:?}");
}

#[test]
fn zeros_with_a_few_changes() {
    let old = vec![0u8; 1 << 20];
    let mut new = old.clone();
    for (i, at) in [17usize, 4096, 300_000, 700_001, (1 << 20) - 1]
        .into_iter()
        .enumerate()
    {
        new[at] = 0x41 + i as u8;
    }
    new.splice(500_000..500_000, *b"inserted");
    let sizes = roundtrip_all(&old, &new);
    assert!(size_of(&sizes, Method::Bsdiff) < 1000, "{sizes:?}");
}

#[test]
fn repeated_pattern_with_an_insertion() {
    let old = b"\xde\xad\xbe\xef".repeat(64 << 10);
    let mut new = old.clone();
    // One byte shifts the period's phase; the rest is a longer insertion.
    new.insert(100_001, 0x5a);
    new.splice(200_000..200_000, fill(Kind::Text, 3000, 4));
    roundtrip_all(&old, &new);
}

#[test]
fn unrelated_new() {
    let old = fill(Kind::Random, 40_000, 5);
    let new = fill(Kind::Code64, 30_000, 6);
    roundtrip_all(&old, &new);
}

#[test]
fn single_byte_files() {
    roundtrip_all(b"a", b"b");
    roundtrip_all(b"a", b"a");
    roundtrip_all(b"", b"a");
    roundtrip_all(b"a", b"");
}

/// Found by `every_method_round_trips`: the matcher emits segments that produce no
/// bytes (here the fourth), which the encoder must fold into the previous record's
/// seek, because the applier refuses them after the first ("control record 3
/// produces no bytes").
#[test]
fn regression_empty_ops_after_moved_zero_run() {
    let segments = [
        Segment {
            kind: Kind::Zeros,
            len: 6978,
            seed: 13_726_181,
        },
        Segment {
            kind: Kind::Random,
            len: 1251,
            seed: 2_008_363_197_305_379_490,
        },
        Segment {
            kind: Kind::Random,
            len: 1079,
            seed: 12_928_578_932_340_534_309,
        },
    ];
    let edits = [
        Edit::Move {
            from: 4_193_954_157,
            len: 1462,
            to: 3_195_251_912,
        },
        Edit::Delete {
            at: 3_708_278_182,
            len: 3430,
        },
        Edit::Overwrite {
            count: 3,
            seed: 18_220_176_677_258_924_078,
        },
        Edit::Duplicate {
            from: 733_242_906,
            len: 3688,
            to: 3_167_356_622,
        },
        Edit::ShiftPointers {
            at: 3_404_498_863,
            len: 36018,
            delta: -71,
        },
    ];
    let old = build(&segments);
    roundtrip_all(&old, &mutate(&old, &edits));
}

#[test]
fn relocated_code() {
    // The case the bsdiff method is for: pointers shifted after an insertion make a
    // patch much smaller than the zstd reference one, which sees only changed bytes.
    let old = fill(Kind::Code32, 60_000, 7);
    let edits = [
        Edit::Insert {
            at: 1000,
            kind: Kind::Code32,
            len: 64,
            seed: 8,
        },
        Edit::ShiftPointers {
            at: 1064,
            len: u32::MAX,
            delta: 64,
        },
    ];
    let new = mutate(&old, &edits);
    assert_ne!(old[2000..], new[2064..], "the edit shifted pointers");
    let sizes = roundtrip_all(&old, &new);
    assert!(
        size_of(&sizes, Method::Bsdiff) < size_of(&sizes, Method::ZstdRef),
        "{sizes:?}"
    );
}

/// zstd's multithreaded mode splits input larger than a job (at least 1 MiB, four
/// windows) into jobs, and its output is independent of the worker count only when
/// it is always on; 64 KiB inputs fit in one job and cannot show the difference. A
/// budget that forces small windows makes a 1.5 MiB pair span two jobs.
#[test]
fn threads_do_not_change_patches_that_span_several_zstd_jobs() {
    let (old, new) = common::release_pair(3 << 19, 11);
    let budget = BASE_APPLY_MEMORY + (3 << 17);
    for method in [Method::Bsdiff, Method::Full] {
        let one = make_one(method, &old, &new, &settings(1, budget)).expect("diff");
        let header = Header::decode(&one, one.len() as u64).expect("header");
        assert!(
            header.window_log <= 18,
            "{method}: window 2^{}",
            header.window_log
        );
        let two = make_one(method, &old, &new, &settings(2, budget)).expect("diff");
        assert!(one == two, "{method}: 1 and 2 threads differ");
        assert_applies(&old, &new, &one, method.name());
    }
}

/// Large degenerate inputs (where plain bsdiff goes quadratic) must finish. No
/// timing assertion: a hang shows as the test never completing. Each takes a few
/// seconds in a debug build.
#[test]
fn zeros_16mib_diff_in_linear_time() {
    let old = vec![0u8; 16 << 20];
    let mut new = old.clone();
    new[123] = 1;
    new[8 << 20] = 2;
    new.splice(5_000_000..5_000_000, fill(Kind::Random, 100, 9));
    new.drain(12_000_000..12_000_500);
    bsdiff_round_trip(&old, &new);
}

#[test]
fn repeated_pattern_8mib_diff_in_linear_time() {
    let old = b"abcdefg".repeat((8 << 20) / 7);
    let mut new = old.clone();
    new.insert(1_000_003, b'X');
    new[3_000_000] = b'Y';
    new.drain(5_000_000..5_000_003);
    new.splice(7_000_000..7_000_000, b"abcdefg".repeat(1000));
    bsdiff_round_trip(&old, &new);
}

/// Every mismatch makes the matcher search; thousands of them in a zero run must not
/// each cost a scan of the run.
#[test]
fn zeros_4mib_with_a_change_every_2kib() {
    let old = vec![0u8; 4 << 20];
    let mut new = old.clone();
    for at in (1000..new.len()).step_by(2048) {
        new[at] = (at >> 11) as u8 | 1;
    }
    bsdiff_round_trip(&old, &new);
}

fn bsdiff_round_trip(old: &[u8], new: &[u8]) {
    let patch = make_one(Method::Bsdiff, old, new, &settings(2, GENEROUS)).expect("diff");
    assert!(patch.len() < 30_000, "patch is {} bytes", patch.len());
    assert_applies(old, new, &patch, "bsdiff");
}

#[test]
fn wrong_old_file_is_refused_and_leaves_nothing() {
    // `apply_via_files` checks that a failed apply leaves only its inputs behind.
    let (old, new) = common::release_pair(30_000, 10);
    let patch = make_one(Method::Bsdiff, &old, &new, &settings(1, GENEROUS)).expect("diff");
    let mut wrong = old.clone();
    wrong[0] ^= 1;
    let err = apply_via_files(&wrong, &patch, &Limits::default()).expect_err("wrong old file");
    assert!(
        matches!(err, deltaapply::Error::WrongSource { .. }),
        "{err}"
    );
}
