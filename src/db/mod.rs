//! PostgreSQL access: a diesel-async pool for the service's runtime and an
//! r2d2 pool for migrations and blocking admin work. `DATABASE_URL` is the
//! only way in.
//!
//! Sync and async query code live in separate modules: both diesel preludes in
//! one scope make `RunQueryDsl` ambiguous.

pub mod audit;
pub mod call_logs;
pub mod campaigns;
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

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Could not connect.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// A pool could not be built or a connection taken from it.
    #[error("database pool: {0}")]
    Pool(String),
    /// A query or migration failed.
    #[error("database query: {0}")]
    Query(String),
    /// Too slow.
    #[error("database did not answer within {0:?}")]
    Timeout(Duration),
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Query(e.to_string())
    }
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
        .map_err(|e| DbError::Pool(e.to_string()))
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
