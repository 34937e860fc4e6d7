#![no_main]
//! Fuzz target `vcdiff`: see `deltaapply_fuzz::format_checks`.

use deltaapply_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = format_checks::vcdiff(data);
});
