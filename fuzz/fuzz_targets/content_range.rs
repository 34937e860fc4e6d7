#![no_main]
//! Fuzz target `content_range`: see `deltaapply_fuzz::apply_checks`.

use deltaapply_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    apply_checks::content_range(data);
});
