//! Link options for the size-optimised applier binary.
//!
//! With opt-level "z" (the `applier` profile) on x86_64 Linux, whose default linker is
//! rust-lld, identical functions are folded into one (`--icf=all`): about 37 KB less
//! stripped binary. Rust does not promise distinct addresses for distinct functions, so
//! nothing can tell. Other targets and profiles link as usual.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let opt_level = std::env::var("OPT_LEVEL").unwrap_or_default();
    if target == "x86_64-unknown-linux-gnu" && opt_level == "z" {
        println!("cargo:rustc-link-arg-bins=-Wl,--icf=all");
    }
}
