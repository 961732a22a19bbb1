//! The `callvisor` binary: parse the command line and hand over.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    callvisor::cli::run(callvisor::cli::Cli::parse())
}
