//! What every request handler can reach: the shared state of one instance
//! (settings, pools, the call and pool systems, rate limits) and its
//! lifecycle. Its own module, so handlers depend on it and `startup` (which
//! registers the handlers) depends on both, never a circle through `startup`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::calls::CallSystem;
use crate::config::Settings;
use crate::db::{AsyncPool, SyncPool};

/// Whether this instance still takes new work.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
}

impl Lifecycle {
    /// True once shutdown began: `/readyz` answers 503, new calls are refused.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Marks the instance as draining; returns false if it already was.
    pub fn start_draining(&self) -> bool {
        !self.draining.swap(true, Ordering::AcqRel)
    }
}

/// What every request handler can reach.
pub struct AppState {
    /// The loaded settings.
    pub settings: Arc<Settings>,
    /// The runtime pool.
    pub db: AsyncPool,
    /// The blocking pool (admin work, inside `web::block`).
    pub sync_db: SyncPool,
    /// Draining flag.
    pub lifecycle: Arc<Lifecycle>,
    /// This instance's name in the database and the logs.
    pub instance_id: String,
    /// The newest migration this binary carries; `/readyz` wants the database at it.
    pub expected_migration: Option<String>,
    /// The actors of live calls and what they need.
    pub calls: CallSystem,
    /// The phone-number pool (PhonePoolActor) and the campaign runner.
    pub pool: crate::pool::PoolSystem,
    /// Per-source token buckets of every endpoint class (one set per instance).
    pub rate_limits: Arc<crate::http::rate_limit::RateLimits>,
    /// `/readyz`'s cached database answer.
    pub readiness: crate::http::readiness::ReadinessCache,
}
