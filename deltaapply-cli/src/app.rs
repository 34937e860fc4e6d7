//! The `deltaapply` command line: its arguments and subcommands, and the entry point
//! `main.rs` calls. [`command`] is the same definition for generators of shell
//! completions and man pages (`deltapack completions --tool deltaapply`).

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::cmd;
use crate::output::Verbosity;

/// Apply deltapack patches: every byte verified, bounded memory, atomic replacement.
#[derive(Parser)]
#[command(name = "deltaapply", version, long_version = crate::LONG_VERSION, about)]
struct Cli {
    #[command(flatten)]
    verbosity: Verbosity,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Apply(cmd::apply::Args),
    Check(cmd::update::CheckArgs),
    Update(cmd::update::UpdateArgs),
    Inspect(cmd::inspect::Args),
}

/// The command-line definition of `deltaapply`.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Parses the arguments, runs the subcommand, returns the exit code.
pub fn main() -> ExitCode {
    let cli: Cli = match crate::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    cli.verbosity.install();
    let code = match cli.command {
        Command::Apply(args) => cmd::apply::run(args),
        Command::Check(args) => cmd::update::run_check(args),
        Command::Update(args) => cmd::update::run_update(args),
        Command::Inspect(args) => cmd::inspect::run(args),
    };
    ExitCode::from(code as u8)
}
