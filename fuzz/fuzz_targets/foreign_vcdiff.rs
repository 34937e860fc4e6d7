#![no_main]
//! Fuzz target `foreign_vcdiff`: see `deltaapply_fuzz::apply_checks`.

use deltaapply_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    apply_checks::foreign_vcdiff(data);
});
