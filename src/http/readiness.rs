//! `/readyz`'s database answer, cached for a second: a flood of probes must
//! not take a database connection each. One check runs at a time; while it
//! runs, other probes read the previous answer (or, before the first answer,
//! wait for it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use callvisor_actors::error_chain::Chain;
use callvisor_actors::events;

use crate::db::{readiness, AsyncPool};

/// How long an answer is reused.
pub const READINESS_CACHE: Duration = Duration::from_secs(1);

/// How long one check waits for the database before calling it down.
const READINESS_DB_TIMEOUT: Duration = Duration::from_secs(2);

/// What the database said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbReadiness {
    /// It answered, at this newest migration.
    Answered {
        /// The newest applied migration.
        applied: Option<String>,
    },
    /// It did not answer in time.
    Unreachable,
}

/// The cached answer and the single check in flight.
#[derive(Debug)]
pub struct ReadinessCache {
    answer: Mutex<Option<(Instant, DbReadiness)>>,
    refresh: tokio::sync::Mutex<()>,
    checks: AtomicU64,
    ttl: Duration,
}

impl Default for ReadinessCache {
    fn default() -> Self {
        Self::new(READINESS_CACHE)
    }
}

impl ReadinessCache {
    /// A cache reusing answers for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            answer: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            checks: AtomicU64::new(0),
            ttl,
        }
    }

    /// Database checks made so far (tests, `/metrics`).
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    fn cached(&self, fresh_only: bool) -> Option<DbReadiness> {
        let answer = self
            .answer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        answer
            .as_ref()
            .filter(|(at, _)| !fresh_only || at.elapsed() < self.ttl)
            .map(|(_, a)| a.clone())
    }

    /// The database's readiness, at most `ttl` old.
    pub async fn get(&self, db: &AsyncPool) -> DbReadiness {
        if let Some(fresh) = self.cached(true) {
            return fresh;
        }
        let _guard = match self.refresh.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // A check is in flight: the previous answer will do.
                if let Some(previous) = self.cached(false) {
                    return previous;
                }
                self.refresh.lock().await
            }
        };
        // The check we waited for may have just answered.
        if let Some(fresh) = self.cached(true) {
            return fresh;
        }
        self.checks.fetch_add(1, Ordering::Relaxed);
        let answer = match readiness::check(db, READINESS_DB_TIMEOUT).await {
            Ok(status) => DbReadiness::Answered {
                applied: status.applied,
            },
            Err(e) => {
                log::warn!(
                    "{} check=readyz error={:?}",
                    events::DB_UNAVAILABLE,
                    Chain(&e)
                );
                DbReadiness::Unreachable
            }
        };
        *self
            .answer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some((Instant::now(), answer.clone()));
        answer
    }
}
