use std::process::ExitCode;

use clap::Parser;
use domus::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(f) = cli::init_logging(&cli::state_dir(&cli)) {
        domus::cli::tell(&format!("domus: {}", f.msg));
        return ExitCode::from(f.code);
    }
    match &cli.command {
        Some(command) => cli::run(&cli, command),
        None => cli::run_tui(&cli),
    }
}
