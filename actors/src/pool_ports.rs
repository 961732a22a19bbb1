//! What the [`PhonePoolActor`] needs from the outside world: a lease store
//! (PostgreSQL in the service: the truth that every instance shares) and a
//! number provider (Twilio REST). Like [`crate::ports`], these are small
//! traits the service implements; the actor never names a database type.
//!
//! The store's operations are each atomic on their own (one statement or one
//! transaction), so that the actor's policy cannot be raced by another
//! instance's: a claim hands a number to exactly one holder, a renewal only
//! extends a lease its instance still holds, and a release only frees the
//! holder's own number.
//!
//! [`PhonePoolActor`]: crate::phone_pool::PhonePoolActor

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ids::TenantId;
use crate::ports::{PortError, PortFuture};

/// One atomic claim of a free number.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The tenant the number will serve.
    pub tenant_id: TenantId,
    /// Who holds the lease (a campaign target, a CallSid, an operator's allocation).
    pub holder: String,
    /// The instance that renews the lease.
    pub instance_id: String,
    /// Whether the tenant's dedicated numbers may be taken (they come first).
    pub use_dedicated: bool,
    /// Whether shared numbers may be taken (least used first).
    pub use_shared: bool,
    /// How long the lease lasts without renewal.
    pub ttl: Duration,
}

/// A number under lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedNumber {
    /// E.164.
    pub phone_number: String,
    /// Dedicated to the tenant (rather than shared).
    pub dedicated: bool,
    /// When the lease runs out unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// A lease that ran out and was taken back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredLease {
    /// The number, free again.
    pub phone_number: String,
    /// Who held it.
    pub holder: String,
    /// The instance that stopped renewing it.
    pub instance_id: String,
}

/// How full the pool is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCensus {
    /// Shared numbers free to hand out now.
    pub free_shared: u32,
    /// Numbers in the pool, whatever their status.
    pub total: u32,
}

/// A number the provider sold us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoughtNumber {
    /// E.164.
    pub phone_number: String,
    /// The provider's id (`PN…`).
    pub provider_sid: Option<String>,
}

/// A free shared number taken out of service to be released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiringNumber {
    /// E.164.
    pub phone_number: String,
    /// The provider's id (`PN…`), when known.
    pub provider_sid: Option<String>,
}

/// The pool's truth, shared by every instance.
pub trait NumberLeases: Send + Sync {
    /// Leases one free number to `req.holder` in one atomic step (the
    /// tenant's dedicated numbers first, then the least-used shared one), or
    /// `None` when none is free. A holder that already holds a number gets
    /// that lease back, renewed.
    fn claim(&self, req: ClaimRequest) -> PortFuture<Result<Option<LeasedNumber>, PortError>>;
    /// Extends the leases this instance holds for `holders`; answers the
    /// holders whose lease was still there (the others were released or lost).
    fn renew(
        &self,
        instance_id: &str,
        holders: Vec<String>,
        ttl: Duration,
    ) -> PortFuture<Result<Vec<String>, PortError>>;
    /// Frees the holder's number, adding a finished call's seconds to its
    /// usage when given; answers the number, `None` if the holder had none.
    fn release(
        &self,
        holder: &str,
        call_seconds: Option<u64>,
    ) -> PortFuture<Result<Option<String>, PortError>>;
    /// Frees numbers whose lease ran out (and that carry no live call).
    fn reclaim_expired(&self) -> PortFuture<Result<Vec<ExpiredLease>, PortError>>;
    /// Counts free shared numbers and all numbers.
    fn census(&self) -> PortFuture<Result<PoolCensus, PortError>>;
    /// Takes the pool-wide provisioning lock (buying, releasing) for `hold`;
    /// false when another instance has it.
    fn lock_provisioning(
        &self,
        instance_id: &str,
        hold: Duration,
    ) -> PortFuture<Result<bool, PortError>>;
    /// Gives the provisioning lock back.
    fn unlock_provisioning(&self, instance_id: &str) -> PortFuture<Result<(), PortError>>;
    /// Adds a bought number: free, or leased at once to `lease` (the request
    /// it was bought for), so nobody else can take it first.
    fn add_bought(
        &self,
        number: BoughtNumber,
        lease: Option<ClaimRequest>,
    ) -> PortFuture<Result<Option<LeasedNumber>, PortError>>;
    /// Takes up to `limit` free shared numbers idle longer than `idle_for`
    /// out of service (status `maintenance`), keeping `keep_free` free ones.
    fn take_idle(
        &self,
        idle_for: Duration,
        keep_free: u32,
        limit: u32,
    ) -> PortFuture<Result<Vec<RetiringNumber>, PortError>>;
    /// Deletes a number taken out by [`Self::take_idle`] once the provider released it.
    fn retire(&self, phone_number: &str) -> PortFuture<Result<(), PortError>>;
    /// Puts a number taken out by [`Self::take_idle`] back in service.
    fn restore(&self, phone_number: &str) -> PortFuture<Result<(), PortError>>;
}

/// Where numbers are bought and released (Twilio REST).
pub trait NumberProvider: Send + Sync {
    /// Buys one voice number, its webhook pointed at this deployment.
    fn buy(&self) -> PortFuture<Result<BoughtNumber, PortError>>;
    /// Gives a number back to the provider.
    fn release(&self, number: &RetiringNumber) -> PortFuture<Result<(), PortError>>;
}
