//! `deltapack completions SHELL` and `deltapack man DIR`: shell completions and man
//! pages for both tools, made from the same argument definitions the tools parse with,
//! so they never drift. Packagers run them at packaging time; the applier binary
//! carries none of this.

use std::path::PathBuf;

use anyhow::Context;
use clap::CommandFactory;
use deltaapply_cli as cli;

/// Which tool's documentation to make.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Tool {
    /// The producer.
    Deltapack,
    /// The applier.
    Deltaapply,
}

/// Print shell completions for deltapack or deltaapply on stdout.
#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
    /// The tool the completions are for.
    #[arg(long, value_enum, default_value = "deltapack")]
    tool: Tool,
}

/// Write man pages for deltapack and deltaapply (one per command and subcommand).
#[derive(clap::Args)]
pub struct ManArgs {
    /// The directory to write the pages to (created if missing).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

fn command_of(tool: Tool) -> clap::Command {
    match tool {
        Tool::Deltapack => crate::Cli::command(),
        Tool::Deltaapply => cli::app::command(),
    }
}

/// Runs `completions`; returns the exit code.
pub fn run_completions(args: CompletionsArgs) -> i32 {
    let mut command = command_of(args.tool);
    let name = command.get_name().to_string();
    clap_complete::generate(args.shell, &mut command, name, &mut std::io::stdout());
    cli::exit::OK
}

/// Runs `man`; returns the exit code.
pub fn run_man(args: ManArgs) -> i32 {
    match man(&args) {
        Ok(()) => cli::exit::OK,
        Err(e) => cli::report_error(&e, cli::exit::FAILURE, false),
    }
}

fn man(args: &ManArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    for tool in [Tool::Deltapack, Tool::Deltaapply] {
        clap_mangen::generate_to(command_of(tool), &args.dir)
            .with_context(|| format!("cannot write man pages to {}", args.dir.display()))?;
    }
    cli::output::info(format_args!(
        "wrote the man pages of deltapack and deltaapply to {}",
        args.dir.display()
    ));
    Ok(())
}
