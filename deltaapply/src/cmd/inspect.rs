//! `deltaapply inspect PATCH`: show a patch's header.

use std::path::PathBuf;

use deltaapply::cli;

/// Show a patch's header (validated; the payload is not read).
#[derive(clap::Args)]
pub struct Args {
    /// The patch file.
    patch: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> i32 {
    cli::inspect(&args.patch, args.json)
}
