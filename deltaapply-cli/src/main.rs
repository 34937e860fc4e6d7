//! `deltaapply`: applies deltapack patches. Exit codes are listed in README.md and in
//! `deltaapply_cli::exit`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// Apply deltapack patches: every byte verified, bounded memory, atomic replacement.
#[derive(Parser)]
#[command(name = "deltaapply", version, about)]
struct Cli {
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

fn main() -> ExitCode {
    let cli: Cli = match deltaapply_cli::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let code = match cli.command {
        Command::Apply(args) => cmd::apply::run(args),
        Command::Check(args) => cmd::update::run_check(args),
        Command::Update(args) => cmd::update::run_update(args),
        Command::Inspect(args) => cmd::inspect::run(args),
    };
    ExitCode::from(code as u8)
}
