//! The command line: `serve` (the default), `migrate`, `check-config`.

use std::process::ExitCode;
use std::time::Duration;

use callvisor_actors::error_chain::Chain;
use callvisor_actors::events;
use clap::{Parser, Subcommand};

use crate::config::{self, Purpose};
use crate::db::migrate;
use crate::startup::Application;

/// callvisor: a call engine for AI phone agents.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate the database and serve HTTP until SIGTERM/SIGINT.
    Serve,
    /// Apply pending migrations (or revert them all) and exit.
    Migrate {
        /// Revert every migration instead (empties the schema).
        #[arg(long)]
        revert_all: bool,
    },
    /// Load and validate the configuration, print what is enabled, and exit.
    CheckConfig,
    /// Phone-number pool operations (`import`, `point --env ...`).
    Numbers {
        /// What to do with the numbers.
        #[command(subcommand)]
        command: crate::pool::ops::NumbersCommand,
    },
}

/// Runs the command line; the process exit code comes back.
pub fn run(cli: Cli) -> ExitCode {
    let purpose = match cli.command {
        Some(Command::Migrate { .. } | Command::Numbers { .. }) => Purpose::Migrate,
        _ => Purpose::Serve,
    };
    let settings = match config::load(purpose) {
        Ok(settings) => settings,
        Err(e) => {
            // The logger needs settings (LOG_DIR); this one line goes to stderr directly.
            eprintln!("{} {e}", events::CONFIG_INVALID);
            return ExitCode::from(2);
        }
    };
    if let Err(e) = crate::logging::init(settings.logging.dir.as_deref()) {
        eprintln!("{} LOG_DIR: {e}", events::CONFIG_INVALID);
        return ExitCode::from(2);
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            let f = &settings.features;
            println!(
                "configuration OK: APP_ENV={} twilio_voice={} admin={} billing={} openai_sip={} summaries={}",
                settings.app_env.as_str(),
                f.twilio_voice,
                f.admin,
                f.billing,
                f.openai_sip,
                f.summaries
            );
            ExitCode::SUCCESS
        }
        Command::Migrate { revert_all } => {
            let Some(url) = settings
                .database
                .url
                .as_ref()
                .map(|u| u.expose().to_owned())
            else {
                eprintln!("{} DATABASE_URL: not set", events::CONFIG_INVALID);
                return ExitCode::from(2);
            };
            let patience = Duration::from_secs(settings.database.startup_retry_seconds);
            let result = migrate::connect_with_retry(&url, patience).and_then(|mut conn| {
                if revert_all {
                    migrate::revert_all(&mut conn)
                } else {
                    migrate::run_pending(&mut conn)
                }
            });
            match result {
                Ok(versions) => {
                    let verb = if revert_all { "reverted" } else { "applied" };
                    log::info!(
                        "{} {verb}={} count={}",
                        events::MIGRATIONS_APPLIED,
                        versions.join(","),
                        versions.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    log::error!("{} error={:?}", events::SERVICE_FAILED, Chain(&e));
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve => serve(settings),
        Command::Numbers { command } => crate::pool::ops::run(command, settings),
    }
}

fn serve(settings: config::Settings) -> ExitCode {
    log::info!(
        "{} env={} version={}",
        events::SERVICE_STARTING,
        settings.app_env.as_str(),
        env!("CARGO_PKG_VERSION")
    );
    let system = actix_web::rt::System::new();
    let result = system.block_on(async move {
        let app = Application::build(settings).await?;
        app.run_until_stopped().await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{} error={:?}", events::SERVICE_FAILED, Chain(&*e));
            ExitCode::FAILURE
        }
    }
}
