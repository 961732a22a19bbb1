//! The `callvisor` binary: parse the command line and hand over.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // One TLS crypto provider for the whole process, before any client exists.
    callvisor_actors::tls::install_provider();
    callvisor::cli::run(callvisor::cli::Cli::parse())
}
