use std::process::ExitCode;

use clap::Parser;
use domus::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging(&cli::state_dir(&cli));
    match &cli.command {
        Some(command) => cli::run(&cli, command),
        None => cli::run_tui(&cli),
    }
}
