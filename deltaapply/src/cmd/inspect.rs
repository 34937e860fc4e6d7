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
    match deltaapply::Patch::open(&args.patch) {
        Ok(p) => {
            if args.json {
                cli::print_json(&cli::header_json(p.header()));
            } else {
                print!("{}", cli::header_text(p.header()));
            }
            0
        }
        Err(e) => {
            let code = e.exit_code();
            cli::report_error(&e.into(), code, args.json)
        }
    }
}
