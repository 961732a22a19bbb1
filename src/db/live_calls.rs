//! Live calls across every instance, read from `call_logs` (each instance
//! registers its calls there and heart-beats them), for the admin API; and
//! the call facts a hang-up or a transfer needs.

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::live::{LIVE_CALL_STALE_SECONDS, NOT_A_PLACEHOLDER};
use super::DbError;

/// One call as the admin API shows it.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct CallRow {
    /// Twilio's CallSid.
    #[diesel(sql_type = Text)]
    pub call_sid: String,
    /// The tenant.
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub tenant_id: Option<Uuid>,
    /// `inbound` or `outbound`.
    #[diesel(sql_type = Text)]
    pub direction: String,
    /// `pstn`, `sip`, `whatsapp`.
    #[diesel(sql_type = Text)]
    pub channel: String,
    /// Who called (inbound) or our caller ID (outbound).
    #[diesel(sql_type = Nullable<Text>)]
    pub caller_number: Option<String>,
    /// The number called.
    #[diesel(sql_type = Nullable<Text>)]
    pub recipient_number: Option<String>,
    /// The pool number used.
    #[diesel(sql_type = Nullable<Text>)]
    pub number_used: Option<String>,
    /// Twilio's status.
    #[diesel(sql_type = Text)]
    pub status: String,
    /// When it started.
    #[diesel(sql_type = Timestamptz)]
    pub started_at: DateTime<Utc>,
    /// When it ended (`None`: live).
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub ended_at: Option<DateTime<Utc>>,
    /// The instance carrying it.
    #[diesel(sql_type = Nullable<Text>)]
    pub instance_id: Option<String>,
    /// Its last heartbeat.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Where it was transferred.
    #[diesel(sql_type = Nullable<Text>)]
    pub transferred_to: Option<String>,
}

const COLUMNS: &str = "call_sid, user_id AS tenant_id, direction, channel, caller_number, \
     recipient_number, number_used, status, started_at, ended_at, instance_id, heartbeat_at, \
     transferred_to";

/// Calls live on any instance (fresh heartbeat, not ended), of one tenant
/// when given; calls still being admitted (no CallSid yet) are left out.
pub async fn live(
    conn: &mut AsyncPgConnection,
    tenant: Option<Uuid>,
) -> Result<Vec<CallRow>, DbError> {
    Ok(diesel::sql_query(format!(
        "SELECT {COLUMNS} FROM call_logs
         WHERE ended_at IS NULL AND heartbeat_at > now() - make_interval(secs => $2)
           AND {NOT_A_PLACEHOLDER}
           AND ($1::uuid IS NULL OR user_id = $1)
         ORDER BY started_at, call_sid"
    ))
    .bind::<Nullable<SqlUuid>, _>(tenant)
    .bind::<BigInt, _>(LIVE_CALL_STALE_SECONDS)
    .load(conn)
    .await?)
}

/// One call, live or not.
pub async fn find(
    conn: &mut AsyncPgConnection,
    call_sid: &str,
) -> Result<Option<CallRow>, DbError> {
    Ok(diesel::sql_query(format!(
        "SELECT {COLUMNS} FROM call_logs WHERE call_sid = $1"
    ))
    .bind::<Text, _>(call_sid)
    .get_result(conn)
    .await
    .optional()?)
}

/// Records a transfer asked for by an operator (the first one wins).
pub async fn record_transfer(
    conn: &mut AsyncPgConnection,
    call_sid: &str,
    to: &str,
) -> Result<(), DbError> {
    diesel::sql_query(
        "UPDATE call_logs SET transferred_to = $2, transferred_at = now()
         WHERE call_sid = $1 AND transferred_to IS NULL",
    )
    .bind::<Text, _>(call_sid)
    .bind::<Text, _>(to)
    .execute(conn)
    .await?;
    Ok(())
}
