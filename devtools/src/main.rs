//! `callvisor-dev`: the tools around the service, kept out of its binary.
//!
//! - `demo`: the whole call path on a laptop (stand-ins, seeded tenants, a
//!   few simulated calls printed from PostgreSQL); `scripts/run` runs it.
//! - `bench`: the audio path and transcript persistence under load, against
//!   a real `callvisor serve` started from the same target directory;
//!   `scripts/bench` runs it.
//!
//! The production binary (`callvisor`) links none of this, nor the stand-ins
//! (`scripts/test` proves it with `cargo tree`).

mod bench;
mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tools around callvisor: demo and benchmark.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve with local stand-ins for OpenAI and Twilio, place a few simulated
    /// calls, print their transcripts and summaries from PostgreSQL.
    Demo {
        /// Stop once the simulated calls are printed (otherwise serve until Ctrl-C).
        #[arg(long)]
        exit_after_calls: bool,
    },
    /// Benchmarks: the audio path under N concurrent calls (`audio`), transcript
    /// persistence into PostgreSQL (`persistence`). README, "Benchmark".
    Bench {
        /// What to measure.
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

fn main() -> ExitCode {
    // One TLS crypto provider for the whole process, before any client exists.
    callvisor_actors::tls::install_provider();
    let code = match Cli::parse().command {
        Command::Demo { exit_after_calls } => demo::run(exit_after_calls),
        Command::Bench { command } => bench::run(command),
    };
    // The last lines may still be queued for the log writer.
    callvisor::logging::flush(std::time::Duration::from_secs(2));
    code
}
