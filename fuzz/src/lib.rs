//! The fuzz targets' checks (`fuzz_targets/*.rs` call one function each). They live
//! in two files the workspace's regression tests compile too (`#[path]`), so that an
//! input under `testdata/fuzz/<target>/` replays through exactly what the fuzzer ran:
//! `format_checks.rs` (the I/O-free parsers of `deltaapply-format`, replayed by
//! `deltaapply-format/tests/fuzz_regressions.rs`) and `apply_checks.rs` (the decoders
//! that read files, the state file and the HTTP range parser, replayed by
//! `deltaapply/tests/fuzz_regressions.rs`). Both tests replay with the one loop in
//! `replay.rs`.
//!
//! VCDIFF: its decoder is being written on another branch. When it lands, add a
//! `foreign_vcdiff` target here (`apply_checks::foreign_vcdiff`, input shaped like
//! `foreign_zstd`'s) and, for its parser in `deltaapply-format`, one in
//! `format_checks.rs`; `README.md` lists the targets.

pub mod apply_checks;
pub mod format_checks;
