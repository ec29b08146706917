//! The `treaty` binary: parse arguments, run the command, map errors to an
//! exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = treaty::Cli::parse();
    treaty::run(cli)
}
