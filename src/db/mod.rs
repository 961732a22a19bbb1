//! PostgreSQL access: a diesel-async pool for the service's runtime and an
//! r2d2 pool for migrations and blocking admin work. `DATABASE_URL` is the
//! only way in.
//!
//! Sync and async query code live in separate modules: both diesel preludes in
//! one scope make `RunQueryDsl` ambiguous.

pub mod audit;
pub mod call_logs;
pub mod campaigns;
pub mod live;
pub mod live_calls;
pub mod migrate;
pub mod numbers;
pub mod outbox;
pub mod readiness;
#[rustfmt::skip]
pub mod schema;
pub mod tenants;
pub mod transcripts;
pub mod usage;
pub mod webhook_events;

use std::time::Duration;

use diesel::r2d2::ConnectionManager;
use diesel::PgConnection;
use diesel_async::pooled_connection::{deadpool, AsyncDieselConnectionManager};
use diesel_async::AsyncPgConnection;

/// The runtime pool (async, tokio-postgres underneath; no libpq).
pub type AsyncPool = deadpool::Pool<AsyncPgConnection>;
/// The blocking pool (libpq): migrations and admin work inside `web::block`.
pub type SyncPool = r2d2::Pool<ConnectionManager<PgConnection>>;

/// Why the database could not be used. Each variant keeps its cause as the
/// error's `source()`, so a log line shows the whole chain; the Display says
/// only what failed and never holds the `DATABASE_URL`.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Could not connect.
    #[error("cannot connect to the database")]
    Connect(#[source] diesel::ConnectionError),
    /// The runtime pool could not be built.
    #[error("cannot build the database pool")]
    PoolBuild(#[from] deadpool::BuildError),
    /// No connection could be taken from the runtime pool.
    #[error("no database connection from the pool")]
    Pool(#[from] deadpool::PoolError),
    /// A query failed.
    #[error("database query failed")]
    Query(#[from] diesel::result::Error),
    /// Applying or reverting the migrations failed.
    #[error("database migration failed")]
    Migration(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The blocking thread that held the connection could not run the work.
    #[error("blocking database work did not run")]
    Blocking(#[from] actix_web::error::BlockingError),
    /// Too slow.
    #[error("database did not answer within {0:?}")]
    Timeout(Duration),
}

/// Builds the runtime pool. Connections are opened lazily, so an unreachable
/// database does not fail here; every checkout is bounded by `timeout`.
pub fn build_async_pool(url: &str, size: usize, timeout: Duration) -> Result<AsyncPool, DbError> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
    deadpool::Pool::builder(manager)
        .max_size(size)
        .runtime(::deadpool::Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .map_err(DbError::from)
}

/// Builds the blocking pool, also lazily (`build_unchecked`): start-up decides
/// how long to wait for the database, not the pool.
pub fn build_sync_pool(url: &str, size: u32, timeout: Duration) -> SyncPool {
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(0))
        .connection_timeout(timeout)
        .build_unchecked(ConnectionManager::new(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_db_error_keeps_its_source() {
        let e = DbError::from(diesel::result::Error::NotFound);
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("Record not found"));
        assert_eq!(
            callvisor_actors::error_chain::Chain(&e).to_string(),
            "database query failed: Record not found"
        );
    }

    #[test]
    fn a_connect_error_names_no_url() {
        let url = "postgres://u:secret@127.0.0.1:1/db";
        let e = DbError::Connect(diesel::ConnectionError::InvalidConnectionUrl(
            url.to_owned(),
        ));
        assert!(std::error::Error::source(&e).is_some());
        assert!(!e.to_string().contains("secret"));
    }
}
