//! Replays every input under `testdata/fuzz/<target>/` for the targets of the
//! decoders that read files (apply and foreign), the state file and the HTTP range
//! parser, through the very checks the fuzz targets run (`fuzz/src/apply_checks.rs`
//! and the `format_checks.rs` it uses, compiled in here). See `README.md`, "Fuzzing".

#[allow(dead_code, missing_docs)]
#[path = "../../fuzz/src/format_checks.rs"]
mod format_checks;

#[allow(dead_code, missing_docs)]
#[path = "../../fuzz/src/apply_checks.rs"]
mod apply_checks;

#[path = "../../fuzz/src/replay.rs"]
mod replay;

use std::path::Path;

use deltaapply::Method;
use replay::{Check, replay_all};

#[test]
fn fuzz_inputs_replay() {
    let targets: [(&str, Check<'_>); 8] = [
        ("apply_bsdiff", &|d| {
            apply_checks::apply_method(d, Method::Bsdiff)
        }),
        ("apply_zstd_ref", &|d| {
            apply_checks::apply_method(d, Method::ZstdRef)
        }),
        ("apply_full", &|d| {
            apply_checks::apply_method(d, Method::Full)
        }),
        ("foreign_bsdiff40", &apply_checks::foreign_bsdiff40),
        ("foreign_zstd", &apply_checks::foreign_zstd),
        ("state_file", &apply_checks::state_file),
        ("foreign_vcdiff", &apply_checks::foreign_vcdiff),
        ("content_range", &apply_checks::content_range),
    ];
    replay_all(&targets);
}

/// The apply checks run on valid vectors too (a successful apply is compared with
/// the in-memory decoders).
#[test]
fn the_checks_pass_on_valid_inputs() {
    let v = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/vectors");
    let with_old = |old: &str, patch: &str| {
        let old = if old.is_empty() {
            Vec::new()
        } else {
            std::fs::read(v.join(old)).unwrap()
        };
        let mut data = (old.len() as u32).to_le_bytes().to_vec();
        data.extend_from_slice(&old);
        data.extend_from_slice(&std::fs::read(v.join(patch)).unwrap());
        data
    };
    apply_checks::apply_method(&with_old("exe.old", "bsdiff-valid.dpatch"), Method::Bsdiff);
    apply_checks::apply_method(&with_old("", "full-valid.dpatch"), Method::Full);
    apply_checks::foreign_bsdiff40(&with_old("exe.old", "foreign/bsdiff40-debian.bsdiff"));
    apply_checks::foreign_zstd(&with_old("exe.old", "foreign/zstd-cli.zst"));
    for vcdiff in [
        "vcdiff-xdelta3",
        "vcdiff-deltapack-windows",
        "vcdiff-target-window",
    ] {
        let patch = format!("foreign/{vcdiff}.vcdiff");
        let declared = format_checks::vcdiff(&std::fs::read(v.join(&patch)).unwrap());
        assert!(declared.is_some_and(|d| d > 0), "{patch}");
        apply_checks::foreign_vcdiff(&with_old("exe.old", &patch));
    }
    apply_checks::state_file(b"deltaapply-state v1\naccepted app stable 1\n");
    apply_checks::content_range(b"bytes 5-9/10");
}
