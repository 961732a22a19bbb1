//! Pool operations from the command line:
//!
//! - `callvisor numbers import`: list the Twilio account's numbers and add the
//!   ones the pool does not have (existing ones keep their state and learn
//!   their provider id); tenants' business numbers are skipped, never shared.
//! - `callvisor numbers point --env development|production`: set the voice
//!   webhook and status callback of the account's numbers that callvisor
//!   answers (pool numbers and tenants' numbers; `--all`: every number) to
//!   that environment's `PUBLIC_URL`.
//!
//! Both need only `DATABASE_URL` and the Twilio account; both write an
//! `audit_log` row (actor `cli`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use diesel::sql_types::Text;
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use serde_json::json;

use callvisor_actors::error_chain::Chain;
use callvisor_actors::events;
use callvisor_actors::ids::E164;

use super::twilio_account;
use crate::clients::RestError;
use crate::config::ConfigError;
use crate::config::{self, AppEnv, Purpose, Settings};
use crate::db::numbers::ImportOutcome;
use crate::db::{self, audit, numbers, DbError};

/// Why a `callvisor numbers` command failed (printed with its chain).
#[derive(Debug, thiserror::Error)]
enum OpsError {
    /// Something the operator must set or fix first.
    #[error("{0}")]
    Usage(String),
    /// The other environment's settings do not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database failed.
    #[error("database")]
    Db(#[from] DbError),
    /// Twilio's REST API failed.
    #[error("twilio")]
    Twilio(#[source] RestError),
}

/// `callvisor numbers …`
#[derive(Debug, Clone, Subcommand)]
pub enum NumbersCommand {
    /// Add the Twilio account's numbers to the pool.
    Import,
    /// Point the numbers' voice webhooks at an environment's PUBLIC_URL.
    Point {
        /// Whose PUBLIC_URL (config/<env>.toml and the environment).
        #[arg(long, value_enum)]
        env: PointEnv,
        /// Every number of the account, not only pool and tenant numbers.
        #[arg(long)]
        all: bool,
    },
}

/// Environments numbers can be pointed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PointEnv {
    /// A developer's deployment (often a tunnel URL).
    Development,
    /// The real one (https required).
    Production,
}

/// Runs a `numbers` subcommand with already loaded `settings`.
pub fn run(command: NumbersCommand, settings: Settings) -> ExitCode {
    let system = actix_web::rt::System::new();
    let result = system.block_on(async move {
        match command {
            NumbersCommand::Import => import(&settings).await,
            NumbersCommand::Point { env, all } => {
                let target = match env {
                    PointEnv::Development => AppEnv::Development,
                    PointEnv::Production => AppEnv::Production,
                };
                let for_env = settings_for(target)?;
                point(&settings, &for_env, all).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{} {}", events::CONFIG_INVALID, Chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The settings another environment would load (for its `PUBLIC_URL`).
fn settings_for(env: AppEnv) -> Result<Settings, OpsError> {
    let mut vars: config::EnvVars = std::env::vars().collect();
    vars.insert("APP_ENV".to_owned(), env.as_str().to_owned());
    let dir = vars
        .get("CALLVISOR_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("config"));
    Ok(config::load_from(&dir, &vars, Purpose::Migrate)?)
}

fn require_twilio(settings: &Settings) -> Result<(), OpsError> {
    let mut missing = Vec::new();
    if settings.twilio.account_sid.is_none() {
        missing.push("TWILIO_ACCOUNT_SID");
    }
    if settings.twilio.auth_token.is_none() {
        missing.push("TWILIO_AUTH_TOKEN");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(OpsError::Usage(format!("{}: not set", missing.join(", "))))
    }
}

async fn connect(
    settings: &Settings,
) -> Result<
    diesel_async::pooled_connection::deadpool::Object<diesel_async::AsyncPgConnection>,
    OpsError,
> {
    let url = settings
        .database
        .url
        .as_ref()
        .ok_or_else(|| OpsError::Usage("DATABASE_URL: not set".to_owned()))?
        .expose()
        .to_owned();
    let timeout = Duration::from_secs(settings.database.connect_timeout_seconds.max(1));
    let pool = db::build_async_pool(&url, 1, timeout)?;
    Ok(pool.get().await.map_err(DbError::from)?)
}

async fn import(settings: &Settings) -> Result<(), OpsError> {
    require_twilio(settings)?;
    let owned = twilio_account(settings)
        .list_numbers()
        .await
        .map_err(OpsError::Twilio)?;
    let mut conn = connect(settings).await?;
    let (mut added, mut known, mut skipped) = (Vec::new(), 0usize, Vec::new());
    for n in &owned {
        let Ok(number) = E164::parse(&n.phone_number) else {
            println!("skipped {} (not E.164)", n.phone_number);
            continue;
        };
        match numbers::import(&mut conn, number.as_str(), Some(&n.sid)).await? {
            ImportOutcome::Added => {
                println!("added {number} ({})", n.sid);
                added.push(number.to_string());
            }
            ImportOutcome::AlreadyInPool => known += 1,
            ImportOutcome::TenantNumber => {
                println!("skipped {number} (a tenant's business number)");
                skipped.push(number.to_string());
            }
        }
    }
    audit::record(
        &mut conn,
        "cli",
        "pool.import",
        None,
        json!({ "added": added, "already_in_pool": known, "skipped_tenant_numbers": skipped }),
    )
    .await?;
    log::info!(
        "{} actor=cli action=pool.import added={} already_in_pool={known} skipped_tenant_numbers={}",
        events::ADMIN_ACTION,
        added.len(),
        skipped.len()
    );
    println!(
        "{} numbers on the account: {} added, {known} already in the pool, {} tenants' numbers skipped",
        owned.len(),
        added.len(),
        skipped.len()
    );
    Ok(())
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = Text)]
    phone_number: String,
}

async fn point(settings: &Settings, target: &Settings, all: bool) -> Result<(), OpsError> {
    require_twilio(settings)?;
    let base = target
        .server
        .public_url
        .as_deref()
        .ok_or_else(|| {
            OpsError::Usage(format!(
                "PUBLIC_URL: not set for APP_ENV={}",
                target.app_env.as_str()
            ))
        })?
        .trim_end_matches('/')
        .to_owned();
    if target.app_env == AppEnv::Production && !base.starts_with("https://") {
        return Err(OpsError::Usage(
            "PUBLIC_URL: must be https:// in production".to_owned(),
        ));
    }
    let voice_url = format!("{base}/twilio/voice");
    let status_callback = format!("{base}/twilio/status");
    let mut conn = connect(settings).await?;
    let ours: HashSet<String> = diesel::sql_query(
        "SELECT phone_number FROM phone_numbers
         UNION SELECT phone_number FROM profiles WHERE phone_number IS NOT NULL",
    )
    .load::<Number>(&mut conn)
    .await
    .map_err(DbError::from)?
    .into_iter()
    .map(|n| n.phone_number)
    .collect();
    let account = twilio_account(settings);
    let owned = account.list_numbers().await.map_err(OpsError::Twilio)?;
    let mut pointed = Vec::new();
    let mut failed = 0usize;
    for n in owned
        .iter()
        .filter(|n| all || ours.contains(&n.phone_number))
    {
        match account.point(&n.sid, &voice_url, &status_callback).await {
            Ok(_) => {
                println!("pointed {} -> {voice_url}", n.phone_number);
                pointed.push(n.phone_number.clone());
            }
            Err(e) => {
                failed += 1;
                eprintln!("failed {}: {}", n.phone_number, Chain(&e));
            }
        }
    }
    audit::record(
        &mut conn,
        "cli",
        "pool.point",
        Some(target.app_env.as_str()),
        json!({ "voice_url": voice_url, "pointed": pointed, "failed": failed }),
    )
    .await?;
    log::info!(
        "{} actor=cli action=pool.point env={} pointed={} failed={failed}",
        events::ADMIN_ACTION,
        target.app_env.as_str(),
        pointed.len()
    );
    println!(
        "{} numbers pointed at {voice_url}, {failed} failed",
        pointed.len()
    );
    if failed > 0 {
        return Err(OpsError::Usage(format!(
            "{failed} numbers could not be pointed"
        )));
    }
    Ok(())
}
