//! The schema's migrations, embedded in the binary and applied at start-up and
//! by `callvisor migrate`, under an advisory lock so that instances starting
//! together do not race each other.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::{Connection, PgConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::DbError;
use callvisor_actors::error_chain::Chain;
use callvisor_actors::events;

/// Every migration under `migrations/`, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Advisory-lock key held while migrating ("callvisor" in ASCII, truncated).
const MIGRATION_LOCK_KEY: i64 = 0x6361_6c6c_7669_736f;

/// The versions of the embedded migrations, in order.
pub fn embedded_versions() -> Vec<String> {
    MigrationSource::<Pg>::migrations(&MIGRATIONS)
        .map(|all| all.iter().map(|m| m.name().version().to_string()).collect())
        .unwrap_or_default()
}

/// The newest embedded version: the database is current when it has this one.
pub fn latest_version() -> Option<String> {
    embedded_versions().into_iter().max()
}

/// Applies every pending migration; returns the versions applied.
pub fn run_pending(conn: &mut PgConnection) -> Result<Vec<String>, DbError> {
    with_lock(conn, |conn| {
        conn.run_pending_migrations(MIGRATIONS)
            .map(|applied| applied.iter().map(ToString::to_string).collect())
            .map_err(DbError::Migration)
    })
}

/// Reverts every applied migration (tests and `callvisor migrate --revert-all`).
pub fn revert_all(conn: &mut PgConnection) -> Result<Vec<String>, DbError> {
    with_lock(conn, |conn| {
        conn.revert_all_migrations(MIGRATIONS)
            .map(|reverted| reverted.iter().map(ToString::to_string).collect())
            .map_err(DbError::Migration)
    })
}

fn with_lock<T>(
    conn: &mut PgConnection,
    work: impl FnOnce(&mut PgConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
    let result = work(conn);
    let unlocked = conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"));
    let value = result?;
    unlocked?;
    Ok(value)
}

/// Connects, retrying with backoff until `patience` runs out: a database that
/// is briefly away at start-up is waited for and logged, not a crash loop.
/// Blocking: call it from a blocking thread.
pub fn connect_with_retry(url: &str, patience: Duration) -> Result<PgConnection, DbError> {
    let deadline = Instant::now() + patience;
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1u32;
    loop {
        match PgConnection::establish(url) {
            Ok(conn) => return Ok(conn),
            Err(e) => {
                let now = Instant::now();
                if now >= deadline {
                    let e = DbError::Connect(e);
                    log::error!(
                        "{} attempt={attempt} giving_up=true error={:?}",
                        events::DB_UNAVAILABLE,
                        Chain(&e)
                    );
                    return Err(e);
                }
                log::warn!(
                    "{} attempt={attempt} retry_in_ms={} error={:?}",
                    events::DB_UNAVAILABLE,
                    delay.as_millis(),
                    Chain(&e)
                );
                std::thread::sleep(delay.min(deadline - now));
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
        }
    }
}
