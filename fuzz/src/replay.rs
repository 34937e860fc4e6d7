//! The replay loop of the regression tests: every input under `testdata/fuzz/<target>/`
//! through its target's check. Compiled (`#[path]`) into
//! `deltaapply-format/tests/fuzz_regressions.rs` and
//! `deltaapply/tests/fuzz_regressions.rs`, beside the checks they replay; both crates
//! sit one level below the workspace root, where `testdata/` is.

use std::path::Path;

/// One target's check.
pub type Check<'a> = &'a dyn Fn(&[u8]);

/// Runs each target's check on every file of `testdata/fuzz/<target>/` (a target
/// without inputs yet has no directory) and says how many each had.
pub fn replay_all(targets: &[(&str, Check<'_>)]) {
    for (target, check) in targets {
        let n = replay(target, *check);
        eprintln!("{target}: {n} inputs");
    }
}

/// Runs `check` on every file of `testdata/fuzz/<target>/`; returns how many.
fn replay(target: &str, check: Check<'_>) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/fuzz")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let started = std::time::Instant::now();
        check(&data);
        // The fuzzer's -timeout is 10 s in a release build; a debug build is slower.
        assert!(
            started.elapsed().as_secs() < 60,
            "{} is slow again",
            path.display()
        );
        n += 1;
    }
    n
}
