use std::process::ExitCode;

use clap::Parser;
use domus::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging(&cli::state_dir(&cli));
    let command = cli
        .command
        .as_ref()
        .unwrap_or(&Command::List { json: false });
    cli::run(&cli, command)
}
