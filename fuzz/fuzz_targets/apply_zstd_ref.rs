#![no_main]
//! Fuzz target `apply_zstd_ref`: see `deltaapply_fuzz::apply_checks`.

use deltaapply_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    apply_checks::apply_method(data, deltaapply::Method::ZstdRef);
});
