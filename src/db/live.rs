//! What makes a `call_logs` row a live call, named once for every store that
//! asks (call logs, live calls, campaigns, the number pool): the heartbeat
//! rule, and the placeholder rows campaigns write before Twilio names a call.
//! The stores depend on this module, never on each other for it.

use uuid::Uuid;

/// A call whose heartbeat is older than this no longer counts as live
/// (its instance died); instances renew their calls' heartbeats well within it.
pub const LIVE_CALL_STALE_SECONDS: i64 = 90;

/// A call whose heartbeat is older than this is finished by any instance
/// ([`finish_heartbeat_lost`]). Far longer than [`LIVE_CALL_STALE_SECONDS`]:
/// finishing cannot be undone, so a database outage that delayed a live
/// call's heartbeats must not look like a dead instance.
pub const HEARTBEAT_LOST_SECONDS: i64 = 300;

/// How the placeholder CallSid of a target's call begins.
pub const PLACEHOLDER_PREFIX: &str = "pending-";

/// SQL: a `call_logs` row that is a call, not a campaign placeholder.
pub const NOT_A_PLACEHOLDER: &str = "call_sid NOT LIKE 'pending-%'";

/// The placeholder CallSid of a target's call before Twilio gave one.
pub fn placeholder_sid(target: Uuid) -> String {
    format!("{PLACEHOLDER_PREFIX}{}", target.simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_filter_and_the_prefix_name_the_same_placeholders() {
        let sid = placeholder_sid(Uuid::nil());
        assert!(sid.starts_with(PLACEHOLDER_PREFIX));
        assert!(NOT_A_PLACEHOLDER.contains(&format!("'{PLACEHOLDER_PREFIX}%'")));
    }
}
