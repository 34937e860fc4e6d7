//! `deltapack inspect PATCH`: show a patch's header and check its signature.

use std::path::PathBuf;

use deltaapply::cli;

/// Show a patch's header (validated; the payload is not read) and check its signature
/// (against --key if given, else against the key the patch carries).
#[derive(clap::Args)]
pub struct Args {
    /// The patch file.
    patch: PathBuf,
    /// Check that the patch is signed by this key: an `ed25519:...` line or a public key
    /// file (repeat for several keys).
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> i32 {
    match cli::flag_keys(&args.keys) {
        Ok(trusted) => cli::inspect(&args.patch, trusted.as_ref(), args.json),
        Err(e) => cli::report_error(&e, deltaapply::exit::USAGE, args.json),
    }
}
