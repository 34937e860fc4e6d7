#![no_main]
//! Fuzz target `signature_file`: see `deltaapply_fuzz::format_checks`.

use deltaapply_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    format_checks::signature_file(data);
});
