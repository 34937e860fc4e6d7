//! `deltapack key show --secret-key FILE`: the public half of an existing secret key.

use std::path::PathBuf;

use deltaapply_cli as cli;
use deltapack::keys::{self, SecretKey};

/// Work with an existing signing key.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(clap::Subcommand)]
enum KeyCommand {
    /// Print the public key and key id of a secret key (never the secret itself), and
    /// optionally write its public key file again.
    Show(ShowArgs),
}

#[derive(clap::Args)]
struct ShowArgs {
    /// The secret key (PKCS#8 PEM, as `deltapack keygen` writes it).
    #[arg(long, value_name = "FILE")]
    secret_key: PathBuf,
    /// Also write the public key file here.
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
    /// Replace an existing public key file.
    #[arg(long, requires = "public_key")]
    force: bool,
    /// Print the result as one line of JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> i32 {
    let KeyCommand::Show(args) = args.command;
    let json = args.json;
    match show(&args) {
        Ok(()) => deltaapply_cli::exit::OK,
        Err(e) => cli::report_error(&e, deltaapply_cli::exit::FAILURE, json),
    }
}

fn show(args: &ShowArgs) -> anyhow::Result<()> {
    let key = SecretKey::load(&args.secret_key)?;
    let public = key.public_key();
    if let Some(path) = &args.public_key {
        keys::write_public_key_file(path, &public, args.force)?;
    }
    super::keygen::print_key(
        &public,
        Some(&args.secret_key),
        args.public_key.as_deref(),
        args.json,
    )
}
