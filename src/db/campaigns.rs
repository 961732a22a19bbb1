//! `campaigns` and `campaign_targets`: outbound campaigns, all their state in
//! the database so that any instance carries on what another started.
//!
//! A target moves `pending → claimed → dialing → calling → <outcome>`, each
//! step a conditional UPDATE that only the step's rightful owner can make:
//!
//! - **claimed**: admitted in one transaction that locks the tenant's
//!   `profiles` row (as the voice webhook does), counts the tenant's live
//!   calls across instances, and inserts a placeholder `call_logs` row, so the
//!   call counts against the tenant's limit from this moment on.
//! - **dialing**: written *before* the REST request that places the call,
//!   only if the target is still claimed by this instance.
//! - **calling**: the CallSid Twilio returned; the placeholder row becomes
//!   the call's real row.
//! - **outcome**: Twilio's final status from the status callback, whose URL
//!   names the target, so a status that overtakes the REST answer (a number
//!   busy at once) goes from `dialing` straight to its outcome.
//!
//! Recovery after a crash: a target left `claimed` had no request sent, so it
//! goes back to `pending`; a target left `dialing` may have been called (the
//! request may have reached Twilio before the crash), so it becomes
//! `uncertain` and is never dialled again. Calling someone twice is worse
//! than missing them once; operators see the uncertain ones.

use chrono::{DateTime, Utc};
use diesel::sql_types::{
    Array, BigInt, Double, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::call_logs::{self, Finish};
use super::live::{placeholder_sid, LIVE_CALL_STALE_SECONDS};
use super::{numbers, DbError};

/// Target statuses that are still open (not an outcome).
pub const OPEN_STATUSES: &[&str] = &["pending", "claimed", "dialing", "calling"];

/// Twilio's final call statuses a target can end with.
pub const OUTCOMES: &[&str] = &["completed", "busy", "no-answer", "failed", "canceled"];

/// The pool lease holder of a target's call.
pub fn holder_for(target: Uuid) -> String {
    format!("ct:{}", target.simple())
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// Creates a running campaign with its targets (already validated E.164, no
/// duplicates) in the caller's transaction; returns its id.
pub async fn create(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    name: Option<&str>,
    max_concurrency: i32,
    created_by: &str,
    targets: &[String],
) -> Result<Uuid, DbError> {
    let campaign: Id = diesel::sql_query(
        "INSERT INTO campaigns (user_id, name, max_concurrency, created_by)
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind::<SqlUuid, _>(tenant)
    .bind::<Nullable<Text>, _>(name)
    .bind::<Integer, _>(max_concurrency)
    .bind::<Text, _>(created_by)
    .get_result(&mut *conn)
    .await?;
    diesel::sql_query(
        "INSERT INTO campaign_targets (campaign_id, position, to_number)
         SELECT $1, (t.ord - 1)::int, t.number
         FROM unnest($2::text[]) WITH ORDINALITY AS t(number, ord)",
    )
    .bind::<SqlUuid, _>(campaign.id)
    .bind::<Array<Text>, _>(targets)
    .execute(&mut *conn)
    .await?;
    Ok(campaign.id)
}

/// Running campaigns, oldest first.
pub async fn running(conn: &mut AsyncPgConnection, limit: i64) -> Result<Vec<Uuid>, DbError> {
    let rows: Vec<Id> = diesel::sql_query(
        "SELECT id FROM campaigns WHERE status = 'running' ORDER BY created_at, id LIMIT $1",
    )
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// A target admitted for dialling by this instance.
#[derive(Debug, Clone, QueryableByName)]
pub struct Admitted {
    /// The target.
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    /// Its campaign.
    #[diesel(sql_type = SqlUuid)]
    pub campaign_id: Uuid,
    /// Who to call.
    #[diesel(sql_type = Text)]
    pub to_number: String,
    /// Attempts so far, this one included.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
}

/// What admitting the next target came to.
#[derive(Debug, Clone)]
pub enum Admission {
    /// A target is this instance's to dial.
    Admitted {
        /// The target.
        target: Admitted,
        /// The campaign's tenant.
        tenant_id: Uuid,
        /// The tenant's plan.
        plan: String,
    },
    /// The tenant is at its limit of live calls (across instances).
    TenantAtLimit,
    /// The campaign has its maximum of calls under way.
    CampaignFull,
    /// No target is due now (all under way, done, or waiting to retry).
    NothingDue,
    /// The campaign is not running any more.
    NotRunning,
    /// The tenant is no longer subscribed: the campaign was canceled.
    Unsubscribed {
        /// The tenant.
        tenant_id: Uuid,
    },
}

#[derive(QueryableByName)]
struct CampaignTenant {
    #[diesel(sql_type = SqlUuid)]
    user_id: Uuid,
    #[diesel(sql_type = Integer)]
    max_concurrency: i32,
    #[diesel(sql_type = Integer)]
    max_concurrent_calls: i32,
    #[diesel(sql_type = Text)]
    plan: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    is_subscribed: bool,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Admits the campaign's next due target for `instance_id`, atomically with
/// the tenant's live-call count (inbound calls included) and the campaign's
/// own concurrency.
pub async fn admit_next(
    conn: &mut AsyncPgConnection,
    campaign: Uuid,
    instance_id: &str,
) -> Result<Admission, DbError> {
    let instance_id = instance_id.to_owned();
    conn.transaction::<_, DbError, _>(async move |conn| {
        // The tenant's row is the lock inbound admissions take too.
        let found: Option<CampaignTenant> = diesel::sql_query(
            "SELECT c.user_id, c.max_concurrency, p.max_concurrent_calls, p.plan, p.is_subscribed
             FROM campaigns c JOIN profiles p ON p.id = c.user_id
             WHERE c.id = $1 AND c.status = 'running'
             FOR UPDATE OF p",
        )
        .bind::<SqlUuid, _>(campaign)
        .get_result(&mut *conn)
        .await
        .optional()?;
        let Some(tenant) = found else {
            return Ok(Admission::NotRunning);
        };
        if !tenant.is_subscribed {
            diesel::sql_query(
                "UPDATE campaigns SET status = 'canceled', finished_at = now()
                 WHERE id = $1 AND status = 'running'",
            )
            .bind::<SqlUuid, _>(campaign)
            .execute(&mut *conn)
            .await?;
            cancel_pending(&mut *conn, campaign, "tenant is not subscribed").await?;
            return Ok(Admission::Unsubscribed {
                tenant_id: tenant.user_id,
            });
        }
        let live: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM call_logs
             WHERE user_id = $1 AND ended_at IS NULL
               AND heartbeat_at > now() - make_interval(secs => $2)",
        )
        .bind::<SqlUuid, _>(tenant.user_id)
        .bind::<BigInt, _>(LIVE_CALL_STALE_SECONDS)
        .get_result(&mut *conn)
        .await?;
        if live.n >= i64::from(tenant.max_concurrent_calls) {
            return Ok(Admission::TenantAtLimit);
        }
        let under_way: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM campaign_targets
             WHERE campaign_id = $1 AND status IN ('claimed', 'dialing', 'calling')",
        )
        .bind::<SqlUuid, _>(campaign)
        .get_result(&mut *conn)
        .await?;
        if under_way.n >= i64::from(tenant.max_concurrency) {
            return Ok(Admission::CampaignFull);
        }
        let target: Option<Admitted> = diesel::sql_query(
            "UPDATE campaign_targets AS t SET
                 status = 'claimed', instance_id = $2, claimed_at = now(),
                 attempts = t.attempts + 1, error = NULL
             WHERE t.id = (
                 SELECT id FROM campaign_targets
                 WHERE campaign_id = $1 AND status = 'pending' AND next_attempt_at <= now()
                 ORDER BY position
                 LIMIT 1
                 FOR UPDATE SKIP LOCKED
             ) AND t.status = 'pending'
             RETURNING t.id, t.campaign_id, t.to_number, t.attempts",
        )
        .bind::<SqlUuid, _>(campaign)
        .bind::<Text, _>(&instance_id)
        .get_result(&mut *conn)
        .await
        .optional()?;
        let Some(target) = target else {
            return Ok(Admission::NothingDue);
        };
        // The call counts as live from now on, on every instance.
        diesel::sql_query(
            "INSERT INTO call_logs
                 (call_sid, user_id, recipient_number, direction, channel, status,
                  instance_id, heartbeat_at)
             VALUES ($1, $2, $3, 'outbound', 'pstn', 'queued', $4, now())
             ON CONFLICT (call_sid) DO UPDATE SET
                 heartbeat_at = now(), instance_id = EXCLUDED.instance_id,
                 ended_at = NULL, duration_seconds = NULL, status = 'queued'",
        )
        .bind::<Text, _>(placeholder_sid(target.id))
        .bind::<SqlUuid, _>(tenant.user_id)
        .bind::<Text, _>(&target.to_number)
        .bind::<Text, _>(&instance_id)
        .execute(&mut *conn)
        .await?;
        Ok(Admission::Admitted {
            target,
            tenant_id: tenant.user_id,
            plan: tenant.plan,
        })
    })
    .await
}

/// Marks an admitted target `dialing` from `from_number`, just before the
/// REST request; false when it is no longer this instance's (recovered by
/// another), in which case nothing may be sent.
pub async fn mark_dialing(
    conn: &mut AsyncPgConnection,
    target: Uuid,
    instance_id: &str,
    from_number: &str,
) -> Result<bool, DbError> {
    let (instance_id, from_number) = (instance_id.to_owned(), from_number.to_owned());
    conn.transaction::<_, DbError, _>(async move |conn| {
        let n = diesel::sql_query(
            "UPDATE campaign_targets SET status = 'dialing', from_number = $3, dial_started_at = now()
             WHERE id = $1 AND status = 'claimed' AND instance_id = $2",
        )
        .bind::<SqlUuid, _>(target)
        .bind::<Text, _>(&instance_id)
        .bind::<Text, _>(&from_number)
        .execute(&mut *conn)
        .await?;
        if n == 1 {
            diesel::sql_query(
                "UPDATE call_logs SET caller_number = $2, number_used = $2, heartbeat_at = now()
                 WHERE call_sid = $1 AND ended_at IS NULL",
            )
            .bind::<Text, _>(placeholder_sid(target))
            .bind::<Text, _>(&from_number)
            .execute(&mut *conn)
            .await?;
        }
        Ok(n == 1)
    })
    .await
}

/// Records the CallSid Twilio gave a target's call; its placeholder
/// `call_logs` row becomes the call's row (merged into the row the voice
/// webhook made if the call was answered first).
pub async fn mark_calling(
    conn: &mut AsyncPgConnection,
    target: Uuid,
    call_sid: &str,
) -> Result<bool, DbError> {
    let call_sid = call_sid.to_owned();
    conn.transaction::<_, DbError, _>(async move |conn| {
        // Not when the call's final status came first (its outcome is recorded).
        let n = diesel::sql_query(
            "UPDATE campaign_targets SET status = 'calling', call_sid = $2, ended_at = NULL, error = NULL
             WHERE id = $1 AND status IN ('dialing', 'uncertain')",
        )
        .bind::<SqlUuid, _>(target)
        .bind::<Text, _>(&call_sid)
        .execute(&mut *conn)
        .await?;
        if n == 0 {
            return Ok(false);
        }
        adopt_placeholder(conn, target, &call_sid).await?;
        Ok(true)
    })
    .await
}

/// Turns a target's placeholder `call_logs` row into the row of its call
/// `call_sid` (keeping when the call was admitted); a no-op when that row
/// already exists.
async fn adopt_placeholder(
    conn: &mut AsyncPgConnection,
    target: Uuid,
    call_sid: &str,
) -> Result<(), DbError> {
    diesel::sql_query(
        "WITH gone AS (DELETE FROM call_logs WHERE call_sid = $1 RETURNING started_at)
         INSERT INTO call_logs
             (call_sid, user_id, caller_number, recipient_number, direction, channel, status,
              number_used, instance_id, heartbeat_at, started_at)
         SELECT $2, c.user_id, t.from_number, t.to_number, 'outbound', 'pstn', 'queued',
                t.from_number, t.instance_id, now(), COALESCE((SELECT started_at FROM gone), now())
         FROM campaign_targets t JOIN campaigns c ON c.id = t.campaign_id
         WHERE t.id = $3
         ON CONFLICT (call_sid) DO UPDATE SET
             number_used = COALESCE(call_logs.number_used, EXCLUDED.number_used),
             caller_number = COALESCE(call_logs.caller_number, EXCLUDED.caller_number),
             user_id = COALESCE(call_logs.user_id, EXCLUDED.user_id)",
    )
    .bind::<Text, _>(placeholder_sid(target))
    .bind::<Text, _>(call_sid)
    .bind::<SqlUuid, _>(target)
    .execute(conn)
    .await?;
    Ok(())
}

async fn drop_placeholder(conn: &mut AsyncPgConnection, target: Uuid) -> Result<(), DbError> {
    diesel::sql_query("DELETE FROM call_logs WHERE call_sid = $1")
        .bind::<Text, _>(placeholder_sid(target))
        .execute(conn)
        .await?;
    Ok(())
}

/// Puts a target this instance holds back to `pending` (nothing was sent):
/// the pool was exhausted (`count_attempt` false) or Twilio refused the
/// request without placing a call. After `max_attempts` counted attempts it
/// fails instead.
pub async fn put_back(
    conn: &mut AsyncPgConnection,
    target: Uuid,
    instance_id: &str,
    retry_after_seconds: f64,
    count_attempt: bool,
    max_attempts: i32,
    error: &str,
) -> Result<(), DbError> {
    let (instance_id, error) = (instance_id.to_owned(), error.to_owned());
    conn.transaction::<_, DbError, _>(async move |conn| {
        diesel::sql_query(
            "UPDATE campaign_targets SET
                 attempts = CASE WHEN $4 THEN attempts ELSE GREATEST(attempts - 1, 0) END,
                 status = CASE WHEN $4 AND attempts >= $5 THEN 'failed' ELSE 'pending' END,
                 ended_at = CASE WHEN $4 AND attempts >= $5 THEN now() END,
                 instance_id = CASE WHEN $4 AND attempts >= $5 THEN instance_id END,
                 from_number = NULL,
                 dial_started_at = NULL,
                 next_attempt_at = now() + make_interval(secs => $3),
                 error = $6
             WHERE id = $1 AND status IN ('claimed', 'dialing') AND instance_id = $2",
        )
        .bind::<SqlUuid, _>(target)
        .bind::<Text, _>(&instance_id)
        .bind::<Double, _>(retry_after_seconds)
        .bind::<diesel::sql_types::Bool, _>(count_attempt)
        .bind::<Integer, _>(max_attempts)
        .bind::<Text, _>(&error)
        .execute(&mut *conn)
        .await?;
        drop_placeholder(conn, target).await
    })
    .await
}

/// Ends a target this instance dialled without a call: `failed` (Twilio
/// refused it for good) or `uncertain` (the request's fate is unknown).
pub async fn end_without_call(
    conn: &mut AsyncPgConnection,
    target: Uuid,
    status: &str,
    error: &str,
) -> Result<(), DbError> {
    let (status, error) = (status.to_owned(), error.to_owned());
    conn.transaction::<_, DbError, _>(async move |conn| {
        diesel::sql_query(
            "UPDATE campaign_targets SET status = $2, ended_at = now(), error = $3
             WHERE id = $1 AND status IN ('claimed', 'dialing')",
        )
        .bind::<SqlUuid, _>(target)
        .bind::<Text, _>(&status)
        .bind::<Text, _>(&error)
        .execute(&mut *conn)
        .await?;
        drop_placeholder(conn, target).await
    })
    .await
}

/// A target touched by recovery.
#[derive(Debug, Clone, QueryableByName)]
pub struct Recovered {
    /// The target.
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    /// Its campaign.
    #[diesel(sql_type = SqlUuid)]
    pub campaign_id: Uuid,
    /// Who it calls.
    #[diesel(sql_type = Text)]
    pub to_number: String,
    /// The instance that left it.
    #[diesel(sql_type = Nullable<Text>)]
    pub instance_id: Option<String>,
}

/// What recovery did.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Claimed but never dialled: back to `pending`.
    pub put_back: Vec<Recovered>,
    /// Dialling without a CallSid for too long: `uncertain`, never re-dialled.
    pub uncertain: Vec<Recovered>,
    /// Placed calls without an outcome for too long: `uncertain`, number freed.
    pub abandoned: Vec<Recovered>,
}

/// Recovers targets left behind by dead (or stuck) instances.
pub async fn recover_stale(
    conn: &mut AsyncPgConnection,
    claim_timeout_seconds: f64,
    dial_timeout_seconds: f64,
    max_call_seconds: f64,
) -> Result<Recovery, DbError> {
    conn.transaction::<_, DbError, _>(async move |conn| {
        let put_back: Vec<Recovered> = diesel::sql_query(
            "WITH old AS MATERIALIZED (
                 SELECT id, instance_id FROM campaign_targets
                 WHERE status = 'claimed' AND claimed_at < now() - make_interval(secs => $1)
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE campaign_targets AS t SET
                 status = 'pending', instance_id = NULL, from_number = NULL,
                 attempts = GREATEST(t.attempts - 1, 0), next_attempt_at = now(),
                 error = 'put back: admitted but never dialled by ' || COALESCE(old.instance_id, '?')
             FROM old
             WHERE t.id = old.id AND t.status = 'claimed'
             RETURNING t.id, t.campaign_id, t.to_number, old.instance_id",
        )
        .bind::<Double, _>(claim_timeout_seconds)
        .load(&mut *conn)
        .await?;
        let uncertain = mark_uncertain(
            &mut *conn,
            "dialing",
            "no CallSid recorded within the dial timeout: the call may have been placed",
            dial_timeout_seconds,
        )
        .await?;
        let abandoned = mark_uncertain(
            &mut *conn,
            "calling",
            "no outcome received for the placed call",
            max_call_seconds,
        )
        .await?;
        let placeholders: Vec<String> = put_back
            .iter()
            .chain(&uncertain)
            .map(|t| placeholder_sid(t.id))
            .collect();
        if !placeholders.is_empty() {
            diesel::sql_query("DELETE FROM call_logs WHERE call_sid = ANY($1)")
                .bind::<Array<Text>, _>(&placeholders)
                .execute(&mut *conn)
                .await?;
        }
        for target in &abandoned {
            numbers::release(&mut *conn, &holder_for(target.id), None).await?;
        }
        Ok(Recovery {
            put_back,
            uncertain,
            abandoned,
        })
    })
    .await
}

/// Marks targets stuck in `status` for longer than `seconds` (since their dial
/// began) as `uncertain`: the call may have been placed, so it is never re-dialled.
async fn mark_uncertain(
    conn: &mut AsyncPgConnection,
    status: &str,
    error: &str,
    seconds: f64,
) -> Result<Vec<Recovered>, diesel::result::Error> {
    diesel::sql_query(
        "UPDATE campaign_targets SET status = 'uncertain', ended_at = now(), error = $2
         WHERE id IN (SELECT id FROM campaign_targets
                      WHERE status = $1 AND dial_started_at < now() - make_interval(secs => $3)
                      FOR UPDATE SKIP LOCKED)
           AND status = $1
         RETURNING id, campaign_id, to_number, instance_id",
    )
    .bind::<Text, _>(status)
    .bind::<Text, _>(error)
    .bind::<Double, _>(seconds)
    .load(conn)
    .await
}

/// Keeps this instance's placed calls counted as live while they ring (once
/// answered, the instance carrying the media stream heart-beats them too).
pub async fn heartbeat_calling(
    conn: &mut AsyncPgConnection,
    instance_id: &str,
) -> Result<usize, DbError> {
    Ok(diesel::sql_query(
        "UPDATE call_logs SET heartbeat_at = now()
         WHERE ended_at IS NULL AND call_sid IN
             (SELECT call_sid FROM campaign_targets WHERE status = 'calling' AND instance_id = $1)",
    )
    .bind::<Text, _>(instance_id)
    .execute(conn)
    .await?)
}

/// A recorded outcome.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct Outcome {
    /// The target.
    #[diesel(sql_type = SqlUuid)]
    pub target_id: Uuid,
    /// Its campaign.
    #[diesel(sql_type = SqlUuid)]
    pub campaign_id: Uuid,
    /// Who was called.
    #[diesel(sql_type = Text)]
    pub to_number: String,
    /// From which pool number.
    #[diesel(sql_type = Nullable<Text>)]
    pub from_number: Option<String>,
    /// The outcome.
    #[diesel(sql_type = Text)]
    pub status: String,
}

#[derive(QueryableByName)]
struct Matched {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    /// The CallSid was not recorded yet: the status came before the runner
    /// stored what Twilio's REST answer said.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    early: bool,
}

/// Records a campaign call's final status: the target's outcome, its pool
/// number released (with the call's usage), the call's record finished, and
/// the campaign completed when nothing is left open. `target` is the target
/// named in the status callback's URL: with it, a status that arrives before
/// the runner recorded the CallSid (a call busy at once, the REST answer
/// slower than the callback) still finds its target. `None` when `call_sid`
/// is no campaign call or its outcome is already recorded (retried callback).
pub async fn record_outcome(
    conn: &mut AsyncPgConnection,
    call_sid: &str,
    target: Option<Uuid>,
    status: &str,
    duration_seconds: Option<i32>,
) -> Result<Option<Outcome>, DbError> {
    let (call_sid, status) = (call_sid.to_owned(), status.to_owned());
    conn.transaction::<_, DbError, _>(async move |conn| {
        // The target the URL names (the CallSid, when recorded, must be this
        // call's), else the CallSid alone. The row lock orders this against
        // the runner's `mark_calling`; whichever waits re-checks the row.
        let which = if target.is_some() {
            "id = $2 AND ((call_sid = $1 AND status IN ('calling', 'uncertain'))
                          OR (call_sid IS NULL AND status IN ('dialing', 'uncertain')))"
        } else {
            "call_sid = $1 AND status IN ('calling', 'uncertain') AND $2::uuid IS NULL"
        };
        let matched: Option<Matched> = diesel::sql_query(format!(
            "SELECT id, call_sid IS NULL AS early FROM campaign_targets WHERE {which} FOR UPDATE"
        ))
        .bind::<Text, _>(&call_sid)
        .bind::<Nullable<SqlUuid>, _>(target)
        .get_result(&mut *conn)
        .await
        .optional()?;
        let Some(matched) = matched else {
            return Ok(None);
        };
        if matched.early {
            adopt_placeholder(conn, matched.id, &call_sid).await?;
        }
        let outcome: Outcome = diesel::sql_query(
            "UPDATE campaign_targets SET status = $2, duration_seconds = $3, ended_at = now(),
                 error = NULL, call_sid = $4
             WHERE id = $1
             RETURNING id AS target_id, campaign_id, to_number, from_number, status",
        )
        .bind::<SqlUuid, _>(matched.id)
        .bind::<Text, _>(&status)
        .bind::<Nullable<Integer>, _>(duration_seconds)
        .bind::<Text, _>(&call_sid)
        .get_result(&mut *conn)
        .await?;
        let seconds = i64::from(duration_seconds.unwrap_or(0).max(0));
        numbers::release(&mut *conn, &holder_for(outcome.target_id), Some(seconds)).await?;
        call_logs::finish(
            &mut *conn,
            Finish {
                call_sid: &call_sid,
                ended_at: Utc::now(),
                status: Some(&status),
                duration_seconds,
                end_reason: Some("status_callback"),
                transferred_to: None,
                summary_after_seconds: None,
            },
        )
        .await?;
        complete_if_done(&mut *conn, outcome.campaign_id).await?;
        Ok(Some(outcome))
    })
    .await
}

/// Completes a running campaign with no open target; true when it did.
pub async fn complete_if_done(
    conn: &mut AsyncPgConnection,
    campaign: Uuid,
) -> Result<bool, DbError> {
    let n = diesel::sql_query(
        "UPDATE campaigns SET status = 'completed', finished_at = now()
         WHERE id = $1 AND status = 'running'
           AND NOT EXISTS (SELECT 1 FROM campaign_targets
                           WHERE campaign_id = $1
                             AND status IN ('pending', 'claimed', 'dialing', 'calling'))",
    )
    .bind::<SqlUuid, _>(campaign)
    .execute(conn)
    .await?;
    Ok(n == 1)
}

async fn cancel_pending(
    conn: &mut AsyncPgConnection,
    campaign: Uuid,
    reason: &str,
) -> Result<usize, DbError> {
    Ok(diesel::sql_query(
        "UPDATE campaign_targets SET status = 'canceled', ended_at = now(), error = $2
         WHERE campaign_id = $1 AND status = 'pending'",
    )
    .bind::<SqlUuid, _>(campaign)
    .bind::<Text, _>(reason)
    .execute(conn)
    .await?)
}

/// What [`retry_uncertain`] came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// The target is `pending` again (the campaign running again if it had completed).
    Queued,
    /// No such target in that campaign.
    NotFound,
    /// The target is not `uncertain` (its status is given).
    NotUncertain(String),
    /// The campaign was canceled.
    CampaignCanceled,
}

#[derive(QueryableByName)]
struct TargetState {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Text)]
    campaign_status: String,
}

/// An operator's decision to dial an `uncertain` target again (the engine
/// never does on its own: the first request may have placed a call). The
/// target goes back to `pending` with its old CallSid kept in `error`; a
/// completed campaign runs again for it. One transaction, the rows locked.
pub async fn retry_uncertain(
    conn: &mut AsyncPgConnection,
    campaign: Uuid,
    target: Uuid,
    actor: &str,
) -> Result<Retry, DbError> {
    let actor = actor.to_owned();
    conn.transaction::<_, DbError, _>(async move |conn| {
        let state: Option<TargetState> = diesel::sql_query(
            "SELECT t.status, c.status AS campaign_status
             FROM campaign_targets t JOIN campaigns c ON c.id = t.campaign_id
             WHERE t.id = $1 AND t.campaign_id = $2
             FOR UPDATE",
        )
        .bind::<SqlUuid, _>(target)
        .bind::<SqlUuid, _>(campaign)
        .get_result(&mut *conn)
        .await
        .optional()?;
        let Some(state) = state else {
            return Ok(Retry::NotFound);
        };
        if state.status != "uncertain" {
            return Ok(Retry::NotUncertain(state.status));
        }
        if state.campaign_status == "canceled" {
            return Ok(Retry::CampaignCanceled);
        }
        diesel::sql_query(
            "UPDATE campaign_targets SET
                 status = 'pending', instance_id = NULL, from_number = NULL, call_sid = NULL,
                 claimed_at = NULL, dial_started_at = NULL, ended_at = NULL, duration_seconds = NULL,
                 next_attempt_at = now(),
                 error = 'retried by ' || $2 || ' after: ' || COALESCE(error, 'uncertain')
                         || COALESCE(' (CallSid ' || call_sid || ')', '')
             WHERE id = $1",
        )
        .bind::<SqlUuid, _>(target)
        .bind::<Text, _>(&actor)
        .execute(&mut *conn)
        .await?;
        diesel::sql_query(
            "UPDATE campaigns SET status = 'running', finished_at = NULL
             WHERE id = $1 AND status = 'completed'",
        )
        .bind::<SqlUuid, _>(campaign)
        .execute(&mut *conn)
        .await?;
        Ok(Retry::Queued)
    })
    .await
}

/// Cancels a running campaign: targets not yet under way are canceled, calls
/// under way finish normally. False when it was not running.
pub async fn cancel(conn: &mut AsyncPgConnection, campaign: Uuid) -> Result<bool, DbError> {
    conn.transaction::<_, DbError, _>(async move |conn| {
        let n = diesel::sql_query(
            "UPDATE campaigns SET status = 'canceled', finished_at = now()
             WHERE id = $1 AND status = 'running'",
        )
        .bind::<SqlUuid, _>(campaign)
        .execute(&mut *conn)
        .await?;
        if n == 1 {
            cancel_pending(conn, campaign, "campaign canceled").await?;
        }
        Ok(n == 1)
    })
    .await
}

/// A campaign as the admin API shows it.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct CampaignRow {
    /// Id.
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    /// Tenant.
    #[diesel(sql_type = SqlUuid)]
    pub tenant_id: Uuid,
    /// Name.
    #[diesel(sql_type = Nullable<Text>)]
    pub name: Option<String>,
    /// `running`, `completed`, `canceled`.
    #[diesel(sql_type = Text)]
    pub status: String,
    /// Calls at once.
    #[diesel(sql_type = Integer)]
    pub max_concurrency: i32,
    /// Who created it.
    #[diesel(sql_type = Text)]
    pub created_by: String,
    /// When.
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    /// When it finished.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub finished_at: Option<DateTime<Utc>>,
}

/// One target as the admin API shows it.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct TargetRow {
    /// The target (for `…/targets/{id}/retry`).
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    /// Order in the list.
    #[diesel(sql_type = Integer)]
    pub position: i32,
    /// Who.
    #[diesel(sql_type = Text)]
    pub to_number: String,
    /// Where it stands.
    #[diesel(sql_type = Text)]
    pub status: String,
    /// Attempts.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    /// The pool number used.
    #[diesel(sql_type = Nullable<Text>)]
    pub from_number: Option<String>,
    /// Twilio's CallSid.
    #[diesel(sql_type = Nullable<Text>)]
    pub call_sid: Option<String>,
    /// Call length.
    #[diesel(sql_type = Nullable<Integer>)]
    pub duration_seconds: Option<i32>,
    /// Why it failed or was put back.
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
    /// When it ended.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub ended_at: Option<DateTime<Utc>>,
}

/// A campaign, if it exists (and belongs to `tenant` when one is given).
pub async fn find(
    conn: &mut AsyncPgConnection,
    campaign: Uuid,
    tenant: Option<Uuid>,
) -> Result<Option<CampaignRow>, DbError> {
    Ok(diesel::sql_query(
        "SELECT id, user_id AS tenant_id, name, status, max_concurrency, created_by, created_at,
                finished_at
         FROM campaigns WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)",
    )
    .bind::<SqlUuid, _>(campaign)
    .bind::<Nullable<SqlUuid>, _>(tenant)
    .get_result(conn)
    .await
    .optional()?)
}

/// Campaigns, newest first (of one tenant when given).
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CampaignRow>, DbError> {
    Ok(diesel::sql_query(
        "SELECT id, user_id AS tenant_id, name, status, max_concurrency, created_by, created_at,
                finished_at
         FROM campaigns WHERE $1::uuid IS NULL OR user_id = $1
         ORDER BY created_at DESC, id LIMIT $2",
    )
    .bind::<Nullable<SqlUuid>, _>(tenant)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

/// A campaign's targets in list order.
pub async fn targets(
    conn: &mut AsyncPgConnection,
    campaign: Uuid,
) -> Result<Vec<TargetRow>, DbError> {
    Ok(diesel::sql_query(
        "SELECT id, position, to_number, status, attempts, from_number, call_sid,
                duration_seconds, error, ended_at
         FROM campaign_targets WHERE campaign_id = $1 ORDER BY position",
    )
    .bind::<SqlUuid, _>(campaign)
    .load(conn)
    .await?)
}

#[derive(QueryableByName)]
struct TenantRow {
    #[diesel(sql_type = SqlUuid)]
    user_id: Uuid,
}

/// The tenant of an outbound campaign call reaching the voice webhook
/// (`/twilio/voice?campaign=<id>`): the campaign's tenant if this call is one
/// of its targets, by CallSid, or, when the call was answered before its
/// CallSid was recorded, by the `To`/`From` pair of a target being dialled.
pub async fn tenant_for_call(
    conn: &mut AsyncPgConnection,
    campaign: Uuid,
    call_sid: &str,
    to: &str,
    from: &str,
) -> Result<Option<Uuid>, DbError> {
    let row: Option<TenantRow> = diesel::sql_query(
        "SELECT c.user_id FROM campaigns c
         WHERE c.id = $1 AND EXISTS (
             SELECT 1 FROM campaign_targets t
             WHERE t.campaign_id = c.id
               AND (t.call_sid = $2
                    OR (t.call_sid IS NULL AND t.status = 'dialing'
                        AND t.to_number = $3 AND t.from_number = $4)))",
    )
    .bind::<SqlUuid, _>(campaign)
    .bind::<Text, _>(call_sid)
    .bind::<Text, _>(to)
    .bind::<Text, _>(from)
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|r| r.user_id))
}

/// The campaign target a CallSid belongs to.
pub async fn target_of_call(
    conn: &mut AsyncPgConnection,
    call_sid: &str,
) -> Result<Option<Uuid>, DbError> {
    let row: Option<Id> = diesel::sql_query("SELECT id FROM campaign_targets WHERE call_sid = $1")
        .bind::<Text, _>(call_sid)
        .get_result(conn)
        .await
        .optional()?;
    Ok(row.map(|r| r.id))
}
