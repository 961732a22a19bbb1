//! `/admin/calls`: live calls across all instances (from the database, where
//! every instance registers and heart-beats its calls), hang-up and transfer.
//! Both act through Twilio REST (a call update), which works from any
//! instance whichever one carries the call's media; the instance that carries
//! it then sees the stream end.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use serde_json::json;

use callvisor_actors::error_chain::Chain;
use callvisor_actors::events;
use callvisor_actors::ids::CallSid;
use callvisor_actors::ports::EndReason;
use callvisor_actors::redact::Masked;
use callvisor_actors::supervisor::messages::{HangUp, ListCalls};

use super::{connection, log_action, tenant_scope, ApiError, Operator};
use crate::db::live::PLACEHOLDER_PREFIX;
use crate::db::live_calls::{self, CallRow};
use crate::db::{audit, tenants};
use crate::state::AppState;

/// `GET /admin/calls[?tenant=]`
pub async fn live(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = connection(&state).await?;
    let tenant = tenant_scope(&mut conn, &query).await?;
    let calls = live_calls::live(&mut conn, tenant).await?;
    let here: Vec<String> = state
        .calls
        .supervisor
        .send(ListCalls)
        .await
        .map(|calls| calls.iter().map(|c| c.call_sid.to_string()).collect())
        .unwrap_or_default();
    let calls: Vec<serde_json::Value> = calls
        .iter()
        .map(|c| {
            let mut value = json!(c);
            value["on_this_instance"] = json!(here.contains(&c.call_sid));
            value
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "tenant_id": tenant,
        "count": calls.len(),
        "instance": state.instance_id,
        "calls": calls,
    })))
}

/// The live call an operator acts on, within the optional tenant scope.
async fn live_call(
    state: &AppState,
    raw_sid: &str,
    query: &HashMap<String, String>,
) -> Result<(CallSid, CallRow), ApiError> {
    let call_sid = CallSid::parse(raw_sid)
        .map_err(|e| ApiError::bad_request("invalid_call_sid", format!("{raw_sid:?}: {e}")))?;
    let mut conn = connection(state).await?;
    let tenant = tenant_scope(&mut conn, query).await?;
    let call = live_calls::find(&mut conn, call_sid.as_str())
        .await?
        // A campaign call still being placed has no Twilio call yet.
        .filter(|c| !c.call_sid.starts_with(PLACEHOLDER_PREFIX))
        .filter(|c| tenant.is_none() || c.tenant_id == tenant)
        .ok_or_else(|| ApiError::not_found("call_not_found", format!("no call {call_sid}")))?;
    if call.ended_at.is_some() {
        return Err(ApiError::conflict(
            "call_ended",
            format!("call {call_sid} has already ended"),
        ));
    }
    Ok((call_sid, call))
}

/// `POST /admin/calls/{call_sid}/hangup`
pub async fn hang_up(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (call_sid, call) = live_call(&state, &path, &query).await?;
    let result = state.calls.deps.control.hang_up(&call_sid).await;
    let mut conn = connection(&state).await?;
    audit::record(
        &mut conn,
        &operator.0,
        "call.hangup",
        Some(call_sid.as_str()),
        json!({ "tenant_id": call.tenant_id, "ok": result.is_ok(),
                "error": result.as_ref().err().map(ToString::to_string) }),
    )
    .await?;
    if let Err(e) = result {
        log_action(&operator, "call.hangup", call_sid.as_str(), "twilio_failed");
        return Err(
            ApiError::unavailable("twilio_unavailable", "Twilio did not hang the call up")
                .with_source(e),
        );
    }
    // Live here: end it the normal way at once (flush, record).
    let _ = state
        .calls
        .supervisor
        .send(HangUp {
            call_sid: call_sid.clone(),
            reason: EndReason::HungUp,
        })
        .await;
    log::info!(
        "{} call_sid={call_sid} tenant={} actor={} action=hangup",
        events::ADMIN_ACTION,
        call.tenant_id
            .map_or_else(|| "-".to_owned(), |t| t.to_string()),
        operator.0
    );
    Ok(HttpResponse::Ok().json(json!({ "call_sid": call_sid.as_str(), "status": "hanging_up" })))
}

/// `POST /admin/calls/{call_sid}/transfer`: to the tenant's hand-off number
/// (never one fixed in code), caller ID from the pool number the call uses
/// (or the tenant number it came in on).
pub async fn transfer(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (call_sid, call) = live_call(&state, &path, &query).await?;
    let mut conn = connection(&state).await?;
    let tenant = match call.tenant_id {
        Some(id) => tenants::find_by_id(&mut conn, id).await?.map(|(t, _)| t),
        None => None,
    };
    let Some(tenant) = tenant else {
        return Err(ApiError::unprocessable(
            "tenant_not_found",
            format!("call {call_sid} belongs to no tenant"),
        ));
    };
    let Some(to) = tenant.handoff_number.clone() else {
        return Err(ApiError::unprocessable(
            "no_handoff_number",
            format!("tenant {} has no hand-off number", tenant.id),
        ));
    };
    let caller_id = match call.direction.as_str() {
        "outbound" => call.number_used.clone().or(call.caller_number.clone()),
        _ => call.number_used.clone().or(call.recipient_number.clone()),
    };
    let result = state
        .calls
        .deps
        .control
        .transfer(&call_sid, &to, caller_id.as_deref())
        .await;
    if result.is_ok() {
        live_calls::record_transfer(&mut conn, call_sid.as_str(), &to).await?;
        // Live on this instance: its actor stops the agent and ends as transferred.
        let _ = state
            .calls
            .supervisor
            .send(callvisor_actors::supervisor::messages::Transferred {
                call_sid: call_sid.clone(),
                to: to.clone(),
            })
            .await;
    }
    audit::record(
        &mut conn,
        &operator.0,
        "call.transfer",
        Some(call_sid.as_str()),
        json!({ "tenant_id": tenant.id, "to": to, "caller_id": caller_id, "ok": result.is_ok(),
                "error": result.as_ref().err().map(ToString::to_string) }),
    )
    .await?;
    match result {
        Ok(()) => {
            log::info!(
                "{} call_sid={call_sid} tenant={} to={} source=admin actor={}",
                events::CALL_TRANSFERRED,
                tenant.id,
                Masked(&to),
                operator.0
            );
            log_action(&operator, "call.transfer", call_sid.as_str(), "ok");
            Ok(HttpResponse::Ok().json(json!({
                "call_sid": call_sid.as_str(),
                "status": "transferring",
                "to": to,
                "caller_id": caller_id,
            })))
        }
        Err(e) => {
            log::error!(
                "{} call_sid={call_sid} tenant={} source=admin error={:?}",
                events::CALL_TRANSFER_FAILED,
                tenant.id,
                Chain(&e)
            );
            // Logged above with its cause: the answer does not carry it again.
            Err(ApiError::unavailable(
                "twilio_unavailable",
                "Twilio did not transfer the call",
            ))
        }
    }
}
