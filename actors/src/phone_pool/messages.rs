//! What the PhonePoolActor answers to.

use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::ids::TenantId;
use crate::ports::PortError;

/// Lease a number for one outbound call (from the campaign runner, the admin
/// API). The same `holder` asking again gets its lease back.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Allocation, PoolError>")]
pub struct Allocate {
    /// The tenant the call is for.
    pub tenant_id: TenantId,
    /// The tenant's plan (`standard`, `enterprise`): decides which numbers it may use.
    pub plan: String,
    /// Who will hold the lease: 1 to 64 letters, digits, `_`, `-`, `:` or `.`.
    pub holder: String,
}

/// A number leased to a holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// E.164.
    pub phone_number: String,
    /// The holder.
    pub holder: String,
    /// Dedicated to the tenant rather than shared.
    pub dedicated: bool,
    /// Bought for this request.
    pub bought: bool,
    /// When the lease runs out unless renewed (this instance renews it).
    pub expires_at: DateTime<Utc>,
}

/// Why no number was handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// No number is free for this tenant and none could be bought.
    #[error("no phone number is free for this tenant")]
    Exhausted,
    /// The holder name is empty, too long or has characters outside the allowed set.
    #[error("holder must be 1 to 64 letters, digits, '_', '-', ':' or '.'")]
    InvalidHolder,
    /// The pool's store could not be reached.
    #[error("phone-number pool unavailable")]
    Unavailable(#[source] PortError),
}

/// Give a holder's number back (its call ended, or it was never placed).
/// Answers the number freed, `None` if the holder held none.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<String>, PoolError>")]
pub struct Release {
    /// The holder.
    pub holder: String,
    /// Seconds of the call made with the number, added to its usage; `None`
    /// when no call was made.
    pub call_seconds: Option<u64>,
}

/// The leases this instance renews (tests, metrics).
#[derive(Debug, Message)]
#[rtype(result = "Vec<HeldLease>")]
pub struct ListHeld;

/// One lease this instance renews.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLease {
    /// The holder.
    pub holder: String,
    /// The number.
    pub phone_number: String,
    /// The tenant it serves.
    pub tenant_id: TenantId,
    /// Since when.
    pub held_for: Duration,
}

/// Run a background round now (expired leases, top-up, idle release) instead
/// of waiting for the next one; skipped when one is already running.
#[derive(Debug, Message)]
#[rtype(result = "MaintenanceReport")]
pub struct RunMaintenance;

/// What a background round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Another round was running; this one did nothing.
    pub skipped: bool,
    /// Leases that ran out and were taken back.
    pub expired: usize,
    /// Numbers bought to keep the minimum free.
    pub bought: usize,
    /// Idle numbers released to the carrier.
    pub idle_released: usize,
}
