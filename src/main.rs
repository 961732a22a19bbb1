//! The `callvisor` binary: parse the command line and hand over.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // One TLS crypto provider for the whole process, before any client exists.
    callvisor_actors::tls::install_provider();
    let code = callvisor::cli::run(callvisor::cli::Cli::parse());
    // The last lines (SHUTDOWN_COMPLETE among them) may still be queued.
    callvisor::logging::flush(std::time::Duration::from_secs(2));
    code
}
