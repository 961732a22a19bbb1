//! `POST /openai/webhook`: OpenAI's project webhook (Standard Webhooks signed),
//! the way in for calls from SIP trunks and WhatsApp (`features.openai_sip`).
//!
//! The signature is checked on the raw body before anything else; a bad or
//! stale one is a 400 and nothing is written. Each `webhook-id` is handled
//! once (`webhook_events`). `realtime.call.incoming` is decided here, while
//! OpenAI waits (tenant from the SIP `To` header, subscription, the
//! cross-instance concurrency limit, the `call_logs` row), then answered 200 at
//! once; the accept or reject request to OpenAI runs right after the answer,
//! so the webhook's own deadline never waits on it. `realtime.call.ended`
//! finishes the call like a Twilio status callback.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use callvisor_actors::events;
use callvisor_actors::ids::{CallSid, TenantId};
use callvisor_actors::ports::EndReason;
use callvisor_actors::redact::Masked;
use callvisor_actors::supervisor::messages::HangUp;
use callvisor_wire::signing::standard_webhooks::{
    self, WebhookError, DEFAULT_TOLERANCE_SECS, ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use serde::Deserialize;

use super::error::ApiError;
use crate::calls::plan;
use crate::calls::sip::{self, SipHeader};
use crate::calls::sip_call;
use crate::clients::openai_calls::OpenAiCalls;
use crate::db::call_logs::{self, Admission, Finish, NewCall};
use crate::db::{tenants, webhook_events};
use crate::secret::Secret;
use crate::state::AppState;

/// SIP final response for a number we do not serve or an unsubscribed tenant.
const DECLINE: u16 = 603;
/// SIP final response for a tenant at its concurrency limit.
const BUSY_HERE: u16 = 486;

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: EventData,
}

#[derive(Deserialize, Default)]
struct EventData {
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    sip_headers: Vec<SipHeader>,
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The REST client of the call controls.
pub fn calls_client(state: &AppState) -> OpenAiCalls {
    let key = state
        .settings
        .openai
        .api_key
        .clone()
        .unwrap_or_else(|| Secret::new(""));
    OpenAiCalls::new(&state.settings.openai.base_url, key)
}

/// The webhook.
pub async fn webhook(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let received = Instant::now();
    if !state.settings.features.openai_sip {
        return Err(ApiError::not_found("not_found", "no such route"));
    }
    let Some(secret) = state.settings.openai.webhook_secret.as_ref() else {
        return Err(ApiError::unavailable(
            "unavailable",
            "the webhook secret is not configured",
        ));
    };
    let webhook_id = header(&req, ID_HEADER);
    let verified = standard_webhooks::verify(
        secret.expose(),
        webhook_id,
        header(&req, TIMESTAMP_HEADER),
        &body,
        header(&req, SIGNATURE_HEADER),
        chrono::Utc::now().timestamp(),
        DEFAULT_TOLERANCE_SECS,
    );
    if let Err(e) = verified {
        let reason = match e {
            WebhookError::MissingHeader => "missing_headers",
            WebhookError::BadTimestamp => "bad_timestamp",
            WebhookError::TimestampOutOfTolerance => "stale_timestamp",
            WebhookError::BadSignature => "bad_signature",
            WebhookError::BadSecret => "bad_secret",
        };
        log::warn!("{} reason={reason}", events::SIP_WEBHOOK_REFUSED);
        if e == WebhookError::BadSecret {
            return Err(ApiError::unavailable(
                "unavailable",
                "the webhook secret is unusable",
            ));
        }
        return Err(ApiError::bad_request("bad_request", e.to_string()));
    }
    let event: Event = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_request", format!("not an OpenAI event: {e}")))?;
    let incoming = event.kind == "realtime.call.incoming";
    if incoming && state.lifecycle.is_draining() {
        // Not claimed: OpenAI's retry may reach an instance that takes calls.
        return Err(ApiError::unavailable("unavailable", "instance is draining"));
    }

    let mut conn =
        state.db.get().await.map_err(|e| {
            ApiError::unavailable("unavailable", "database unavailable").with_source(e)
        })?;
    let first = webhook_events::claim(&mut conn, webhook_events::OPENAI, webhook_id)
        .await
        .map_err(|e| ApiError::unavailable("unavailable", "database unavailable").with_source(e))?;
    if !first {
        log::info!(
            "{} webhook_id={webhook_id} type={}",
            events::SIP_WEBHOOK_DUPLICATE,
            event.kind
        );
        return Ok(HttpResponse::Ok().finish());
    }
    let handled = match event.kind.as_str() {
        "realtime.call.incoming" => incoming_call(&state, &mut conn, event.data, received).await,
        "realtime.call.ended" => call_ended(&state, &mut conn, event.data).await,
        // Other project events (responses, batches, ...) are not ours.
        _ => Ok(()),
    };
    if let Err(e) = handled {
        // Not handled: let OpenAI's retry be handled.
        let _ = webhook_events::release(&mut conn, webhook_events::OPENAI, webhook_id).await;
        return Err(e);
    }
    Ok(HttpResponse::Ok().finish())
}

fn call_sid_of(data: &EventData) -> Result<CallSid, ApiError> {
    data.call_id
        .as_deref()
        .and_then(|id| CallSid::parse(id).ok())
        .ok_or_else(|| ApiError::bad_request("bad_request", "data.call_id is missing or malformed"))
}

/// Rejects the call after the answer; nothing was opened for it.
fn reject(state: &AppState, call_sid: CallSid, status: u16, reason: &str, tenant: Option<&str>) {
    log::info!(
        "{} call_sid={call_sid} tenant={} reason={reason} sip_status={status}",
        events::SIP_CALL_REJECTED,
        tenant.unwrap_or("-")
    );
    let client = calls_client(state);
    actix_web::rt::spawn(async move {
        if let Err(e) = client.reject(call_sid.as_str(), status).await {
            log::error!(
                "{} call_sid={call_sid} tenant=- action=reject error={:?}",
                events::SIP_CONTROL_FAILED,
                e.to_string()
            );
        }
    });
}

async fn incoming_call(
    state: &web::Data<AppState>,
    conn: &mut diesel_async::AsyncPgConnection,
    data: EventData,
    received: Instant,
) -> Result<(), ApiError> {
    let call_sid = call_sid_of(&data)?;
    let headers = data.sip_headers;
    let Some(to) = sip::header(&headers, "To").and_then(sip::number_from_uri) else {
        reject(state, call_sid, DECLINE, "unknown_number", None);
        return Ok(());
    };
    let caller = sip::header(&headers, "From")
        .and_then(sip::number_from_uri)
        .map(|n| n.to_string());
    let channel = sip::channel(&headers);
    let found = tenants::find_by_number(conn, to.as_str())
        .await
        .map_err(|e| ApiError::unavailable("unavailable", "database unavailable").with_source(e))?;
    let Some((tenant, prompt)) = found else {
        reject(state, call_sid, DECLINE, "unknown_number", None);
        return Ok(());
    };
    let tenant_id = tenant.id.to_string();
    if !tenant.is_subscribed {
        reject(state, call_sid, DECLINE, "not_subscribed", Some(&tenant_id));
        return Ok(());
    }
    let Ok(tenant_key) = TenantId::parse(&tenant_id) else {
        return Err(ApiError::internal("tenant id does not parse"));
    };
    let admission = call_logs::open_on(
        conn,
        NewCall {
            call_sid: call_sid.as_str(),
            tenant_id: tenant.id,
            caller: caller.as_deref(),
            recipient: Some(to.as_str()),
            direction: "inbound",
            instance_id: &state.instance_id,
        },
        channel.as_str(),
    )
    .await
    .map_err(|e| ApiError::unavailable("unavailable", "database unavailable").with_source(e))?;
    if admission == Admission::Ended {
        // A call that already ended (a replayed or late event): nothing opens.
        reject(state, call_sid, DECLINE, "call_ended", Some(&tenant_id));
        return Ok(());
    }
    if let Admission::AtLimit { limit } = admission {
        log::info!(
            "{} call_sid={call_sid} tenant={tenant_id} limit={limit}",
            events::CALL_REJECTED
        );
        reject(
            state,
            call_sid,
            BUSY_HERE,
            "concurrency_limit",
            Some(&tenant_id),
        );
        return Ok(());
    }
    let plan = plan::build(
        call_sid.clone(),
        tenant_key,
        &tenant,
        &prompt,
        plan::CallNumbers {
            caller: caller.clone(),
            recipient: Some(to.to_string()),
            caller_id: Some(to.to_string()),
        },
        &state.settings.openai,
    );
    log::info!(
        "{} call_sid={call_sid} tenant={tenant_id} channel={} from={} to={}",
        events::CALL_ANSWERED,
        channel.as_str(),
        Masked(caller.as_deref().unwrap_or_default()),
        Masked(to.as_str())
    );
    let state = state.clone();
    actix_web::rt::spawn(async move {
        sip_call::accept(&state, plan, channel, received).await;
    });
    Ok(())
}

async fn call_ended(
    state: &web::Data<AppState>,
    conn: &mut diesel_async::AsyncPgConnection,
    data: EventData,
) -> Result<(), ApiError> {
    let call_sid = call_sid_of(&data)?;
    // Live here: end it the normal way (flush, record) first.
    let _ = state
        .calls
        .supervisor
        .send(HangUp {
            call_sid: call_sid.clone(),
            reason: EndReason::HungUp,
        })
        .await;
    let finished = call_logs::finish(
        conn,
        Finish {
            call_sid: call_sid.as_str(),
            ended_at: chrono::Utc::now(),
            status: Some("completed"),
            duration_seconds: None,
            end_reason: Some("sip_ended"),
            transferred_to: None,
            summary_after_seconds: state.settings.features.summaries.then_some(15),
        },
    )
    .await
    .map_err(|e| ApiError::unavailable("unavailable", "database unavailable").with_source(e))?;
    let tenant = finished
        .as_ref()
        .and_then(|f| f.tenant.as_deref())
        .unwrap_or("-");
    log::info!(
        "{} call_sid={call_sid} tenant={tenant} known={}",
        events::SIP_CALL_ENDED,
        finished.is_some()
    );
    Ok(())
}
