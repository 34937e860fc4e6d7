#![no_main]
//! Fuzz target `zstd_frame_header`: see `deltaapply_fuzz::format_checks`.

use deltaapply_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    format_checks::zstd_frame_header(data);
});
