#![no_main]
//! Fuzz target `keys_document`: see `deltaapply_fuzz::format_checks`.

use deltaapply_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    format_checks::keys_document(data);
});
