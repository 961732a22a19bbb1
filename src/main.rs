//! The `callvisor` binary: parse the command line and hand over.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // One TLS crypto provider for the whole process (rustls refuses to guess
    // when more than one is compiled in).
    let _ = rustls::crypto::ring::default_provider().install_default();
    callvisor::cli::run(callvisor::cli::Cli::parse())
}
