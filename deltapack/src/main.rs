//! `deltapack`: makes deltapack patches. Exit codes are listed in README.md.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use deltaapply_cli::output::Verbosity;

mod cmd;

/// Make compact binary patches for deltaapply.
#[derive(Parser)]
#[command(name = "deltapack", version, long_version = deltaapply_cli::LONG_VERSION, about)]
struct Cli {
    #[command(flatten)]
    verbosity: Verbosity,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Diff(cmd::diff::Args),
    Build(Box<cmd::build::Args>),
    Verify(cmd::verify::Args),
    Inspect(cmd::inspect::Args),
    Keygen(cmd::keygen::Args),
    Key(cmd::key::Args),
    Keys(cmd::keys::Args),
    Prune(cmd::prune::Args),
    Completions(cmd::docs::CompletionsArgs),
    Man(cmd::docs::ManArgs),
}

fn main() -> ExitCode {
    let cli: Cli = match deltaapply_cli::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    cli.verbosity.install();
    let code = match cli.command {
        Command::Diff(args) => cmd::diff::run(args),
        Command::Build(args) => cmd::build::run(*args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Keygen(args) => cmd::keygen::run(args),
        Command::Key(args) => cmd::key::run(args),
        Command::Keys(args) => cmd::keys::run(args),
        Command::Prune(args) => cmd::prune::run(args),
        Command::Completions(args) => cmd::docs::run_completions(args),
        Command::Man(args) => cmd::docs::run_man(args),
    };
    ExitCode::from(code as u8)
}
