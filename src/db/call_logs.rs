//! `call_logs`: a row per call, opened when the voice webhook answers (the
//! row is also the cross-instance registry of live calls, which is what
//! per-tenant limits count) and finished once, by whichever comes first: the
//! call's own end or Twilio's final status callback.

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::live::NOT_A_PLACEHOLDER;
pub use super::live::{HEARTBEAT_LOST_SECONDS, LIVE_CALL_STALE_SECONDS};
use super::DbError;

/// A new call, as the voice webhook knows it.
#[derive(Debug, Clone)]
pub struct NewCall<'a> {
    /// Twilio's CallSid.
    pub call_sid: &'a str,
    /// The tenant answering.
    pub tenant_id: Uuid,
    /// Who called.
    pub caller: Option<&'a str>,
    /// The number called.
    pub recipient: Option<&'a str>,
    /// `inbound` or `outbound`.
    pub direction: &'a str,
    /// This instance.
    pub instance_id: &'a str,
}

/// What opening a call came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A new live call (or the same call's webhook retried).
    Admitted,
    /// The tenant is at its limit of live calls.
    AtLimit {
        /// The limit.
        limit: i32,
    },
    /// The call already ended: the webhook is a replay (Twilio's signatures
    /// carry no timestamp, so a recorded request stays valid) or came after
    /// the call's end. Nothing may be opened for it.
    Ended,
}

#[derive(QueryableByName)]
struct Limit {
    #[diesel(sql_type = Integer)]
    max_concurrent_calls: i32,
}

#[derive(QueryableByName)]
struct Ended {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ended: bool,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Opens a call if its tenant is under its concurrency limit, atomically
/// across instances: the tenant's row is locked first, so concurrent webhooks
/// for one tenant count one after the other (each statement after the lock
/// sees the rows committed before it). A call whose row has ended is
/// [`Admission::Ended`], whatever the limit: an end is final.
pub async fn open(conn: &mut AsyncPgConnection, call: NewCall<'_>) -> Result<Admission, DbError> {
    open_on(conn, call, "pstn").await
}

/// [`open`] for a call on `channel` (`pstn`, `sip` or `whatsapp`): SIP and
/// WhatsApp calls answered through OpenAI count against the same limit.
pub async fn open_on(
    conn: &mut AsyncPgConnection,
    call: NewCall<'_>,
    channel: &str,
) -> Result<Admission, DbError> {
    let call = call.clone();
    let channel = channel.to_owned();
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
        {
            // Checked before the limit, so a replay hears a hang-up, not "busy".
            let ended: Ended = diesel::sql_query(
                "SELECT EXISTS (SELECT 1 FROM call_logs
                                WHERE call_sid = $1 AND ended_at IS NOT NULL) AS ended",
            )
            .bind::<Text, _>(call.call_sid)
            .get_result(&mut *conn)
            .await?;
            if ended.ended {
                return Ok(Admission::Ended);
            }
            let limit: Limit = diesel::sql_query(
                "SELECT max_concurrent_calls FROM profiles WHERE id = $1 FOR UPDATE",
            )
            .bind::<SqlUuid, _>(call.tenant_id)
            .get_result(&mut *conn)
            .await?;
            let live: Count = diesel::sql_query(
                "SELECT count(*) AS n FROM call_logs
                 WHERE user_id = $1 AND ended_at IS NULL AND call_sid <> $2
                   AND heartbeat_at > now() - make_interval(secs => $3)",
            )
            .bind::<SqlUuid, _>(call.tenant_id)
            .bind::<Text, _>(call.call_sid)
            .bind::<BigInt, _>(LIVE_CALL_STALE_SECONDS)
            .get_result(&mut *conn)
            .await?;
            if live.n >= i64::from(limit.max_concurrent_calls) {
                return Ok(Admission::AtLimit {
                    limit: limit.max_concurrent_calls,
                });
            }
            // A retried webhook for the same call finds its row and refreshes it;
            // a row that ended since the check above is left alone (0 rows).
            let written = diesel::sql_query(
                "INSERT INTO call_logs
                     (call_sid, user_id, caller_number, recipient_number, direction, channel,
                      status, instance_id, heartbeat_at)
                 VALUES ($1, $2, $3, $4, $5, $7, 'in-progress', $6, now())
                 ON CONFLICT (call_sid) DO UPDATE SET heartbeat_at = now()
                 WHERE call_logs.ended_at IS NULL",
            )
            .bind::<Text, _>(call.call_sid)
            .bind::<SqlUuid, _>(call.tenant_id)
            .bind::<Nullable<Text>, _>(call.caller)
            .bind::<Nullable<Text>, _>(call.recipient)
            .bind::<Text, _>(call.direction)
            .bind::<Text, _>(call.instance_id)
            .bind::<Text, _>(&channel)
            .execute(&mut *conn)
            .await?;
            Ok(if written == 0 {
                Admission::Ended
            } else {
                Admission::Admitted
            })
        }
    })
    .await
    .map_err(DbError::from)
}

/// A call [`finish`] found.
#[derive(Debug, Clone, QueryableByName)]
pub struct FinishedCall {
    /// Its tenant (`call_logs.user_id`), as text for log lines.
    #[diesel(sql_type = Nullable<Text>)]
    pub tenant: Option<String>,
}

/// How a call ended, for [`finish`].
#[derive(Debug, Clone)]
pub struct Finish<'a> {
    /// The call.
    pub call_sid: &'a str,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// Twilio's status (`completed`, `busy`, ...) when known.
    pub status: Option<&'a str>,
    /// Twilio's own duration (seconds) when known.
    pub duration_seconds: Option<i32>,
    /// Why (`twilio_stop`, `transferred`, ...), when ours.
    pub end_reason: Option<&'a str>,
    /// Where the call was transferred.
    pub transferred_to: Option<&'a str>,
    /// Queue the summary this many seconds from now (`None`: no summary).
    pub summary_after_seconds: Option<i64>,
}

/// Finishes a call: the first finish sets the end time and duration, later
/// ones keep them; the transcript is rebuilt from the stored segments every
/// time (so a late finish with more segments completes it); the summary job
/// is queued once. Returns false for an unknown CallSid.
pub async fn finish(
    conn: &mut AsyncPgConnection,
    f: Finish<'_>,
) -> Result<Option<FinishedCall>, DbError> {
    use diesel::OptionalExtension;
    let f = f.clone();
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
        {
            let finished: Option<FinishedCall> = diesel::sql_query(
                "UPDATE call_logs SET
                     ended_at = COALESCE(ended_at, GREATEST($2, started_at)),
                     duration_seconds = COALESCE($4, duration_seconds,
                         GREATEST(0, round(extract(epoch FROM (GREATEST($2, started_at) - started_at))))::int),
                     status = COALESCE($3, CASE WHEN ended_at IS NULL THEN 'completed' ELSE status END),
                     end_reason = COALESCE(end_reason, $5),
                     transferred_to = COALESCE(transferred_to, $6),
                     transferred_at = CASE WHEN transferred_to IS NULL AND $6 IS NOT NULL
                                           THEN $2 ELSE transferred_at END,
                     transcript = COALESCE(
                         (SELECT jsonb_agg(jsonb_build_object('role', s.role, 'text', s.text, 'at', s.spoken_at)
                                           ORDER BY s.seq)
                            FROM transcript_segments s WHERE s.call_sid = call_logs.call_sid),
                         '[]'::jsonb)
                 WHERE call_sid = $1
                 RETURNING user_id::text AS tenant",
            )
            .bind::<Text, _>(f.call_sid)
            .bind::<Timestamptz, _>(f.ended_at)
            .bind::<Nullable<Text>, _>(f.status)
            .bind::<Nullable<Integer>, _>(f.duration_seconds)
            .bind::<Nullable<Text>, _>(f.end_reason)
            .bind::<Nullable<Text>, _>(f.transferred_to)
            .get_result(&mut *conn)
            .await
            .optional()?;
            let Some(finished) = finished else {
                return Ok(None);
            };
            if let Some(after) = f.summary_after_seconds {
                super::outbox::enqueue(
                    &mut *conn,
                    super::outbox::CALL_SUMMARY,
                    &format!("call_summary:{}", f.call_sid),
                    serde_json::json!({ "call_sid": f.call_sid }),
                    after,
                )
                .await?;
            }
            Ok(Some(finished))
        }
    })
    .await
    .map_err(DbError::from)
}

/// A call finished by [`finish_heartbeat_lost`].
#[derive(Debug, Clone, QueryableByName)]
pub struct HeartbeatLost {
    /// Twilio's CallSid.
    #[diesel(sql_type = Text)]
    pub call_sid: String,
    /// The tenant.
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub tenant_id: Option<Uuid>,
    /// The instance that carried it last.
    #[diesel(sql_type = Nullable<Text>)]
    pub instance_id: Option<String>,
    /// Its last heartbeat: the latest moment it was known to be live.
    #[diesel(sql_type = Timestamptz)]
    pub heartbeat_at: DateTime<Utc>,
}

/// Finishes up to `limit` calls nobody has heart-beaten for
/// [`HEARTBEAT_LOST_SECONDS`]: their instance died (or a stream never
/// attached) and Twilio's final status callback never came, so nothing else
/// would ever end them. Each ends at its last heartbeat with `end_reason`
/// `heartbeat_lost`, its transcript rebuilt from the stored segments and, when
/// `summary_after_seconds` is given, its summary queued, like any call.
/// Campaign placeholders (`pending-…`) are not calls: campaign recovery owns
/// them. The rows are locked for the sweep (`SKIP LOCKED`), so instances
/// sweeping at once finish each call once; a status callback arriving later
/// still corrects status and duration.
pub async fn finish_heartbeat_lost(
    conn: &mut AsyncPgConnection,
    limit: i64,
    summary_after_seconds: Option<i64>,
) -> Result<Vec<HeartbeatLost>, DbError> {
    conn.transaction::<_, DbError, _>(async move |conn| {
        let lost: Vec<HeartbeatLost> = diesel::sql_query(format!(
            "SELECT call_sid, user_id AS tenant_id, instance_id, heartbeat_at FROM call_logs
             WHERE ended_at IS NULL AND heartbeat_at < now() - make_interval(secs => $1)
               AND {NOT_A_PLACEHOLDER}
             ORDER BY heartbeat_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED"
        ))
        .bind::<BigInt, _>(HEARTBEAT_LOST_SECONDS)
        .bind::<BigInt, _>(limit)
        .load(&mut *conn)
        .await?;
        for call in &lost {
            finish(
                &mut *conn,
                Finish {
                    call_sid: &call.call_sid,
                    ended_at: call.heartbeat_at,
                    status: None,
                    duration_seconds: None,
                    end_reason: Some(HEARTBEAT_LOST),
                    transferred_to: None,
                    summary_after_seconds,
                },
            )
            .await?;
        }
        Ok(lost)
    })
    .await
}

/// `end_reason` of a call finished by [`finish_heartbeat_lost`].
pub const HEARTBEAT_LOST: &str = "heartbeat_lost";

/// Renews the heartbeat of calls live on this instance.
pub async fn heartbeat(
    conn: &mut AsyncPgConnection,
    instance_id: &str,
    call_sids: &[String],
) -> Result<usize, DbError> {
    if call_sids.is_empty() {
        return Ok(0);
    }
    let n = diesel::sql_query(
        "UPDATE call_logs SET heartbeat_at = now(), instance_id = $1
         WHERE call_sid = ANY($2) AND ended_at IS NULL",
    )
    .bind::<Text, _>(instance_id)
    .bind::<diesel::sql_types::Array<Text>, _>(call_sids)
    .execute(conn)
    .await?;
    Ok(n)
}

/// The stored transcript and whether a summary exists, for the summary job.
#[derive(Debug, QueryableByName)]
pub struct SummaryInput {
    /// `call_logs.transcript`
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    pub transcript: serde_json::Value,
    /// `call_logs.user_id`, as text (for the log lines about this call).
    #[diesel(sql_type = Nullable<Text>)]
    pub tenant: Option<String>,
}

/// Reads a call's transcript.
pub async fn transcript(
    conn: &mut AsyncPgConnection,
    call_sid: &str,
) -> Result<Option<SummaryInput>, DbError> {
    use diesel::OptionalExtension;
    diesel::sql_query(
        "SELECT transcript, user_id::text AS tenant FROM call_logs WHERE call_sid = $1",
    )
    .bind::<Text, _>(call_sid)
    .get_result(conn)
    .await
    .optional()
    .map_err(DbError::from)
}

/// Stores a call's summary.
pub async fn set_summary(
    conn: &mut AsyncPgConnection,
    call_sid: &str,
    summary: &str,
) -> Result<(), DbError> {
    diesel::sql_query("UPDATE call_logs SET summary = $2 WHERE call_sid = $1")
        .bind::<Text, _>(call_sid)
        .bind::<Text, _>(summary)
        .execute(conn)
        .await?;
    Ok(())
}

/// Why [`claim_stream`] refused a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamClaimOutcome {
    /// Recorded: this stream carries the call, on this instance.
    Claimed,
    /// The call has ended.
    Ended,
    /// Another stream carries it, or this stream on another live instance.
    InUse,
    /// No row for this CallSid and tenant.
    NoRecord,
}

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ended: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    claimed: bool,
}

/// Admits a media stream for its call, atomically across instances: the
/// first stream is recorded on the row (with this instance and a fresh
/// heartbeat); afterwards only the same stream on the same instance (a
/// hand-over, which the live call itself then checks) or any stream once the
/// owner's heartbeat went stale (its instance died) is admitted. An ended
/// call admits nothing.
pub async fn claim_stream(
    conn: &mut AsyncPgConnection,
    call_sid: &str,
    tenant_id: Uuid,
    stream_sid: &str,
    instance_id: &str,
) -> Result<StreamClaimOutcome, DbError> {
    use diesel::OptionalExtension;
    // One statement: the UPDATE's row lock orders two claims racing for one call.
    let row: Option<Claimed> = diesel::sql_query(
        "WITH claim AS (
             UPDATE call_logs
                SET stream_sid = $3, instance_id = $4, heartbeat_at = now()
              WHERE call_sid = $1 AND user_id = $2 AND ended_at IS NULL
                AND (stream_sid IS NULL
                     OR (stream_sid = $3 AND instance_id = $4)
                     OR heartbeat_at IS NULL
                     OR heartbeat_at < now() - make_interval(secs => $5))
          RETURNING call_sid)
         SELECT ended_at IS NOT NULL AS ended,
                EXISTS (SELECT 1 FROM claim) AS claimed
           FROM call_logs WHERE call_sid = $1 AND user_id = $2",
    )
    .bind::<Text, _>(call_sid)
    .bind::<SqlUuid, _>(tenant_id)
    .bind::<Text, _>(stream_sid)
    .bind::<Text, _>(instance_id)
    .bind::<BigInt, _>(LIVE_CALL_STALE_SECONDS)
    .get_result(conn)
    .await
    .optional()?;
    Ok(match row {
        None => StreamClaimOutcome::NoRecord,
        Some(Claimed { claimed: true, .. }) => StreamClaimOutcome::Claimed,
        Some(Claimed { ended: true, .. }) => StreamClaimOutcome::Ended,
        Some(_) => StreamClaimOutcome::InUse,
    })
}
