//! The `enclave-builder` binary: parse arguments, run, map the error to an exit code.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = builder::cli::Cli::parse();
    let stdout = std::io::stdout();
    let progress = |line: &str| eprintln!("enclave-builder: {line}");
    match builder::run(cli, &mut stdout.lock(), &progress) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(builder::exit_code(&err))
        }
    }
}
