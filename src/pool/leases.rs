//! The PhonePoolActor's [`NumberLeases`] port over PostgreSQL
//! ([`crate::db::numbers`]): each call is one statement or one transaction.

use std::time::Duration;

use callvisor_actors::pool_ports::{
    BoughtNumber, ClaimRequest, ExpiredLease, LeasedNumber, NumberLeases, PoolCensus,
    RetiringNumber,
};
use callvisor_actors::ports::{PortError, PortFuture};

use crate::db::{numbers, AsyncPool, DbError};

/// Leases in the `phone_numbers` table.
pub struct DbNumberLeases {
    pool: AsyncPool,
}

impl DbNumberLeases {
    /// Leases over `pool`.
    pub fn new(pool: AsyncPool) -> Self {
        Self { pool }
    }
}

fn db_error(e: impl Into<DbError>) -> PortError {
    PortError::with_source("database", e.into())
}

fn tenant_uuid(req: &ClaimRequest) -> Result<uuid::Uuid, PortError> {
    uuid::Uuid::parse_str(req.tenant_id.as_str())
        .map_err(|_| PortError::new("tenant id is not a UUID"))
}

fn leased(row: numbers::Leased) -> LeasedNumber {
    LeasedNumber {
        phone_number: row.phone_number,
        dedicated: row.dedicated,
        expires_at: row.lease_expires_at,
    }
}

fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

impl NumberLeases for DbNumberLeases {
    fn claim(&self, req: ClaimRequest) -> PortFuture<Result<Option<LeasedNumber>, PortError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let tenant_id = tenant_uuid(&req)?;
            let mut conn = pool.get().await.map_err(db_error)?;
            let claim = numbers::Claim {
                tenant_id,
                holder: &req.holder,
                instance_id: &req.instance_id,
                use_dedicated: req.use_dedicated,
                use_shared: req.use_shared,
                ttl_seconds: req.ttl.as_secs_f64(),
            };
            let row = numbers::claim(&mut conn, &claim).await.map_err(db_error)?;
            Ok(row.map(leased))
        })
    }

    fn renew(
        &self,
        instance_id: &str,
        holders: Vec<String>,
        ttl: Duration,
    ) -> PortFuture<Result<Vec<String>, PortError>> {
        let pool = self.pool.clone();
        let instance_id = instance_id.to_owned();
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(db_error)?;
            numbers::renew(&mut conn, &instance_id, &holders, ttl.as_secs_f64())
                .await
                .map_err(db_error)
        })
    }

    fn release(
        &self,
        holder: &str,
        call_seconds: Option<u64>,
    ) -> PortFuture<Result<Option<String>, PortError>> {
        let pool = self.pool.clone();
        let holder = holder.to_owned();
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(db_error)?;
            let seconds = call_seconds.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
            numbers::release(&mut conn, &holder, seconds)
                .await
                .map_err(db_error)
        })
    }

    fn reclaim_expired(&self) -> PortFuture<Result<Vec<ExpiredLease>, PortError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(db_error)?;
            let rows = numbers::reclaim_expired(&mut conn)
                .await
                .map_err(db_error)?;
            Ok(rows
                .into_iter()
                .map(|r| ExpiredLease {
                    phone_number: r.phone_number,
                    holder: r.holder,
                    instance_id: r.instance_id,
                })
                .collect())
        })
    }

    fn census(&self) -> PortFuture<Result<PoolCensus, PortError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(db_error)?;
            let census = numbers::census(&mut conn).await.map_err(db_error)?;
            Ok(PoolCensus {
                free_shared: count(census.free_shared),
                total: count(census.total),
            })
        })
    }

    fn lock_provisioning(
        &self,
        instance_id: &str,
        hold: Duration,
    ) -> PortFuture<Result<bool, PortError>> {
        let pool = self.pool.clone();
        let instance_id = instance_id.to_owned();
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(db_error)?;
            numbers::lock_provisioning(&mut conn, &instance_id, hold.as_secs_f64())
                .await
                .map_err(db_error)
        })
    }

    fn unlock_provisioning(&self, instance_id: &str) -> PortFuture<Result<(), PortError>> {
        let pool = self.pool.clone();
        let instance_id = instance_id.to_owned();
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(db_error)?;
            numbers::unlock_provisioning(&mut conn, &instance_id)
                .await
                .map_err(db_error)
        })
    }

    fn add_bought(
        &self,
        number: BoughtNumber,
        lease: Option<ClaimRequest>,
    ) -> PortFuture<Result<Option<LeasedNumber>, PortError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let tenant_id = lease.as_ref().map(tenant_uuid).transpose()?;
            let mut conn = pool.get().await.map_err(db_error)?;
            let claim = match (&lease, tenant_id) {
                (Some(req), Some(tenant_id)) => Some(numbers::Claim {
                    tenant_id,
                    holder: &req.holder,
                    instance_id: &req.instance_id,
                    use_dedicated: false,
                    use_shared: true,
                    ttl_seconds: req.ttl.as_secs_f64(),
                }),
                _ => None,
            };
            let row = numbers::add_bought(
                &mut conn,
                &number.phone_number,
                number.provider_sid.as_deref(),
                claim.as_ref(),
            )
            .await
            .map_err(db_error)?;
            Ok(row.map(leased))
        })
    }

    fn take_idle(
        &self,
        idle_for: Duration,
        keep_free: u32,
        limit: u32,
    ) -> PortFuture<Result<Vec<RetiringNumber>, PortError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(db_error)?;
            let rows = numbers::take_idle(
                &mut conn,
                idle_for.as_secs_f64(),
                i64::from(keep_free),
                i64::from(limit),
            )
            .await
            .map_err(db_error)?;
            Ok(rows
                .into_iter()
                .map(|r| RetiringNumber {
                    phone_number: r.phone_number,
                    provider_sid: r.provider_sid,
                })
                .collect())
        })
    }

    fn retire(&self, phone_number: &str) -> PortFuture<Result<(), PortError>> {
        let pool = self.pool.clone();
        let phone_number = phone_number.to_owned();
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(db_error)?;
            numbers::retire(&mut conn, &phone_number)
                .await
                .map_err(db_error)
        })
    }

    fn restore(&self, phone_number: &str) -> PortFuture<Result<(), PortError>> {
        let pool = self.pool.clone();
        let phone_number = phone_number.to_owned();
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(db_error)?;
            numbers::restore(&mut conn, &phone_number)
                .await
                .map_err(db_error)
        })
    }
}
