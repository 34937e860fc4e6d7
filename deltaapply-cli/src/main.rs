//! `deltaapply`: applies deltapack patches. Exit codes are listed in README.md and in
//! `deltaapply_cli::exit`; the command line is `deltaapply_cli::app`.

fn main() -> std::process::ExitCode {
    deltaapply_cli::app::main()
}
