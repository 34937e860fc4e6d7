#![no_main]
//! Fuzz target `tree_index`: see `deltaapply_fuzz::format_checks`.

use deltaapply_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    format_checks::tree_index(data);
});
