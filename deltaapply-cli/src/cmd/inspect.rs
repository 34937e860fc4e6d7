//! `deltaapply inspect PATCH`: show a patch's header and check its signature.

use std::path::PathBuf;

use crate as cli;

/// Show a patch's header (validated; the payload is not read) and check its signature
/// against the trusted keys, as `apply` would (exit 6 if `apply` would refuse it). A
/// patch in a foreign format (BSDIFF40, zstd frame) shows its format and header.
#[derive(clap::Args)]
pub struct Args {
    /// The patch file.
    patch: PathBuf,
    /// Trust this publisher key: an `ed25519:...` line or a public key file (repeat for
    /// several keys). Overrides DELTAAPPLY_KEY and the built-in keys.
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> i32 {
    match super::foreign::detect(&args.patch) {
        Some(deltaapply::foreign::Format::Deltapack) | None => {}
        Some(format) => return super::foreign::inspect(&args.patch, format, args.json),
    }
    match cli::trusted_keys(&args.keys) {
        Ok(trusted) => cli::inspect(&args.patch, trusted.as_ref().map(|(k, _)| k), args.json),
        Err(e) => cli::report_error(&e, crate::exit::USAGE, args.json),
    }
}
