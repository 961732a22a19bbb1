//! `POST /twilio/status`: Twilio's call status callbacks. A final status
//! (`completed`, `busy`, `no-answer`, `failed`, `canceled`) finishes the call's
//! log if the call's own end has not already (whichever comes first; the
//! other changes nothing but the transcript, rebuilt from stored segments),
//! and ends the call's actors if it is live on this instance. A signed
//! callback without `CallSid` or `CallStatus` is a 400.

use actix_web::{web, HttpRequest, HttpResponse};
use callvisor_actors::error_chain::Chain;
use callvisor_actors::events;
use callvisor_actors::ids::CallSid;
use callvisor_actors::ports::EndReason;
use callvisor_actors::supervisor::messages::HangUp;

use super::error::ApiError;
use super::twilio_auth;
use crate::db::call_logs::{self, Finish};
use crate::state::AppState;
use crate::{campaigns, pool};

/// Twilio's final call statuses.
const FINAL: &[&str] = &["completed", "busy", "no-answer", "failed", "canceled"];

/// Seconds a summary queued here waits, so a call still live on another
/// instance can flush its last segments first.
const SUMMARY_GRACE_SECONDS: i64 = 15;

/// The status callback.
pub async fn status(
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    query: web::Query<std::collections::HashMap<String, String>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = form.into_inner();
    twilio_auth::verify(&req, &params, &state)?;
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let call_sid = get("CallSid")
        .and_then(|s| CallSid::parse(s).ok())
        .ok_or_else(|| ApiError::bad_request("bad_request", "CallSid is missing or malformed"))?;
    let status = get("CallStatus")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("bad_request", "CallStatus is missing"))?;
    // Progress callbacks (`ringing`, `in-progress`, ...) change nothing.
    if !FINAL.contains(&status) {
        return Ok(HttpResponse::NoContent().finish());
    }
    let duration = get("CallDuration")
        .and_then(|d| d.parse::<i32>().ok())
        .filter(|d| *d >= 0);
    // Campaign calls' callback URLs name their target (signed with the URL).
    // One that does not parse is not ours to refuse: the call is still finished.
    let target = query.get(campaigns::TARGET_PARAMETER).and_then(|raw| {
        let parsed = uuid::Uuid::parse_str(raw).ok();
        if parsed.is_none() {
            log::warn!(
                "{} call_sid={call_sid} task=status_target error=\"{}={raw:?} is not a target id\"",
                events::CAMPAIGN_RUNNER_FAILED,
                campaigns::TARGET_PARAMETER
            );
        }
        parsed
    });

    // Live here: end it the normal way (flush, record) as well.
    let _ = state
        .calls
        .supervisor
        .send(HangUp {
            call_sid: call_sid.clone(),
            reason: EndReason::HungUp,
        })
        .await;

    let mut conn =
        state.db.get().await.map_err(|e| {
            ApiError::unavailable("unavailable", "database unavailable").with_source(e)
        })?;
    let finished = call_logs::finish(
        &mut conn,
        Finish {
            call_sid: call_sid.as_str(),
            ended_at: chrono::Utc::now(),
            status: Some(status),
            duration_seconds: duration,
            end_reason: Some("status_callback"),
            transferred_to: None,
            summary_after_seconds: state
                .settings
                .features
                .summaries
                .then_some(SUMMARY_GRACE_SECONDS),
        },
    )
    .await
    .map_err(|e| ApiError::unavailable("unavailable", "database unavailable").with_source(e))?;
    // Outbound campaign calls: their outcome, and the pool number back (both idempotent).
    if let Err(e) =
        campaigns::record_outcome(&mut conn, call_sid.as_str(), target, status, duration).await
    {
        log::warn!(
            "{} call_sid={call_sid} task=record_outcome error={:?}",
            events::CAMPAIGN_RUNNER_FAILED,
            Chain(&e)
        );
    }
    if let Err(e) =
        pool::release_for_call(&mut conn, call_sid.as_str(), duration.map(i64::from)).await
    {
        log::warn!(
            "{} call_sid={call_sid} task=release_number error={:?}",
            events::DB_UNAVAILABLE,
            Chain(&e)
        );
    }
    let tenant = finished
        .as_ref()
        .and_then(|f| f.tenant.as_deref())
        .unwrap_or("-");
    log::info!(
        "{} call_sid={call_sid} tenant={tenant} status={status} duration_s={} known={}",
        events::CALL_STATUS,
        duration.map_or_else(|| "-".to_owned(), |d| d.to_string()),
        finished.is_some()
    );
    Ok(HttpResponse::NoContent().finish())
}
