//! Stable event names: the first word of every log line, the monitoring feed's
//! vocabulary. Operators alert on these strings, so they never change meaning;
//! new ones are added, old ones are not renamed.

/// The service is starting (settings loaded).
pub const SERVICE_STARTING: &str = "SERVICE_STARTING";
/// The HTTP server is listening.
pub const SERVICE_LISTENING: &str = "SERVICE_LISTENING";
/// Start-up failed; the process exits.
pub const SERVICE_FAILED: &str = "SERVICE_FAILED";
/// Configuration is missing or malformed.
pub const CONFIG_INVALID: &str = "CONFIG_INVALID";
/// A check that production cannot skip is off (development only).
pub const SIGNATURE_CHECKS_OFF: &str = "SIGNATURE_CHECKS_OFF";
/// The database could not be reached (start-up retries, readiness).
pub const DB_UNAVAILABLE: &str = "DB_UNAVAILABLE";
/// Migrations were applied.
pub const MIGRATIONS_APPLIED: &str = "MIGRATIONS_APPLIED";
/// A stop signal arrived; the instance stops taking calls.
pub const SHUTDOWN_STARTED: &str = "SHUTDOWN_STARTED";
/// Everything is flushed; the process exits.
pub const SHUTDOWN_COMPLETE: &str = "SHUTDOWN_COMPLETE";
