//! Replays every input under `testdata/fuzz/<target>/` for the targets of the I/O-free
//! parsers through the very checks the fuzz targets run (`fuzz/src/format_checks.rs`,
//! compiled in here). An input the fuzzer found (a crash, or a slow input) is added
//! there with the fix; see `README.md`, "Fuzzing".

#[allow(dead_code, missing_docs)]
#[path = "../../fuzz/src/format_checks.rs"]
mod format_checks;

#[path = "../../fuzz/src/replay.rs"]
mod replay;

use std::path::Path;

use replay::{Check, replay_all};

#[test]
fn fuzz_inputs_replay() {
    let targets: [(&str, Check<'_>); 11] = [
        ("patch_header", &format_checks::patch_header),
        ("control_stream", &format_checks::control_stream),
        ("bsdiff40", &format_checks::bsdiff40),
        ("zstd_frame_header", &format_checks::zstd_frame_header),
        ("tree_index", &format_checks::tree_index),
        ("tree_listing", &format_checks::tree_listing),
        ("manifest", &format_checks::manifest),
        ("signature_file", &format_checks::signature_file),
        ("key_file", &format_checks::key_file),
        ("keys_document", &format_checks::keys_document),
        ("vcdiff", &|d| {
            let _ = format_checks::vcdiff(d);
        }),
    ];
    replay_all(&targets);
}

/// The checks themselves accept what the producer makes (so that a vector that
/// passes means something).
#[test]
fn the_checks_pass_on_valid_inputs() {
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/vectors");
    for name in [
        "bsdiff-valid.dpatch",
        "full-valid.dpatch",
        "zstd-valid.dpatch",
    ] {
        format_checks::patch_header(&std::fs::read(vectors.join(name)).unwrap());
    }
    format_checks::key_file(&std::fs::read(vectors.join("test-key.pub")).unwrap());
    format_checks::control_stream(b"\x01\x02\x03\x00\x05\x7f");
    format_checks::tree_listing(b"\x01\xed\x01\x03bin");
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/keys-vectors/chain");
    let doc = std::fs::read(keys.join("2.toml")).unwrap();
    let sig = std::fs::read(keys.join("2.toml.sig")).unwrap();
    assert!(deltaapply_format::rotation::verify_self_signed(&doc, &sig).is_ok());
    format_checks::keys_document(&[&doc[..], b"\0", &sig[..]].concat());
}
