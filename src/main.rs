//! `trace`: datasets → Parquet traces → replay → results.
//!
//! `main` parses the command line, runs one subcommand and maps the result
//! to an exit code: 0 success, 1 a runtime failure, 2 a usage error.

mod alloc;
mod cli;
mod commands;
mod mock;
mod replay;
mod tokenize;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    alloc::keep_freed_memory();
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return ExitCode::SUCCESS;
            }
            if let Some(status) = err.downcast_ref::<replay::ExitStatus>() {
                eprintln!("{status}");
                return ExitCode::from(status.0);
            }
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
