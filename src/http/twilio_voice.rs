//! `POST /twilio/voice` (and the old engine's `/incoming-call-realtime`):
//! Twilio's voice webhook. Signature checked; tenant found by `To`; an unknown
//! number or an unsubscribed tenant gets a hang-up and **nothing** is opened
//! for it; a tenant at its concurrency limit (counted across all instances)
//! hears a short busy message; a call that already ended (a replayed webhook:
//! Twilio's signatures carry no timestamp) gets a hang-up and nothing opened;
//! otherwise the call is registered and answered with a media stream carrying
//! the tenant and a signed stream token. A signed request missing `CallSid`,
//! `To` or `From` is a 400.

use actix_web::{web, HttpRequest, HttpResponse};
use callvisor_actors::events;
use callvisor_actors::ids::{CallSid, TenantId, E164};
use callvisor_actors::redact::Masked;
use callvisor_actors::twilio_stream::{TENANT_PARAMETER, TOKEN_PARAMETER};

use super::error::ApiError;
use super::twilio_auth;
use crate::calls::plan;
use crate::campaigns;
use crate::db::call_logs::{self, Admission, NewCall};
use crate::db::tenants;
use crate::state::AppState;
use callvisor_wire::twiml;

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn twiml_response(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

fn reject(call_sid: &str, reason: &str, tenant: Option<&str>) -> HttpResponse {
    log::info!(
        "{} call_sid={call_sid} tenant={} reason={reason}",
        events::CALL_REJECTED,
        tenant.unwrap_or("-")
    );
    twiml_response(twiml::hang_up())
}

/// The voice webhook.
pub async fn voice(
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    query: web::Query<std::collections::HashMap<String, String>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = form.into_inner();
    twilio_auth::verify(&req, &params, &state)?;
    // A signed request without what every voice webhook carries is Twilio's
    // (or our) mistake, not a caller to hang up on: 400 shows in Twilio's debugger.
    let call_sid = param(&params, "CallSid")
        .and_then(|s| CallSid::parse(s).ok())
        .ok_or_else(|| ApiError::bad_request("bad_request", "CallSid is missing or malformed"))?;
    let to = param(&params, "To")
        .and_then(|t| E164::parse(t).ok())
        .ok_or_else(|| {
            ApiError::bad_request("bad_request", "To is missing or not an E.164 number")
        })?;
    // `From` may be a non-number ("anonymous" for a withheld caller ID): kept
    // as given; only its absence is malformed.
    let caller = param(&params, "From")
        .filter(|f| !f.is_empty())
        .map(|f| E164::parse(f).map_or_else(|_| f.to_owned(), |n| n.to_string()))
        .ok_or_else(|| ApiError::bad_request("bad_request", "From is missing"))?;
    if state.lifecycle.is_draining() {
        return Err(ApiError::unavailable("unavailable", "instance is draining"));
    }

    let mut conn =
        state.db.get().await.map_err(|e| {
            ApiError::unavailable("unavailable", "database unavailable").with_source(e)
        })?;
    // An answered campaign call names its campaign in the URL we gave Twilio:
    // the tenant is the campaign's, not `To`'s (`To` is the person called).
    let campaign = query.get("campaign");
    let found = match campaign {
        Some(campaign) => {
            let Ok(campaign) = uuid::Uuid::parse_str(campaign) else {
                return Ok(reject(call_sid.as_str(), "unknown_campaign", None));
            };
            let from = caller.as_str();
            let tenant = campaigns::tenant_for_call(
                &mut conn,
                campaign,
                call_sid.as_str(),
                to.as_str(),
                from,
            )
            .await
            .map_err(|e| {
                ApiError::unavailable("unavailable", "database unavailable").with_source(e)
            })?;
            match tenant {
                Some(id) => tenants::find_by_id(&mut conn, id).await.map_err(|e| {
                    ApiError::unavailable("unavailable", "database unavailable").with_source(e)
                })?,
                None => return Ok(reject(call_sid.as_str(), "unknown_campaign", None)),
            }
        }
        None => tenants::find_by_number(&mut conn, to.as_str())
            .await
            .map_err(|e| {
                ApiError::unavailable("unavailable", "database unavailable").with_source(e)
            })?,
    };
    let Some((tenant, prompt)) = found else {
        return Ok(reject(call_sid.as_str(), "unknown_number", None));
    };
    let tenant_id = tenant.id.to_string();
    if !tenant.is_subscribed {
        return Ok(reject(
            call_sid.as_str(),
            "not_subscribed",
            Some(&tenant_id),
        ));
    }

    let admission = call_logs::open(
        &mut conn,
        NewCall {
            call_sid: call_sid.as_str(),
            tenant_id: tenant.id,
            caller: Some(&caller),
            recipient: Some(to.as_str()),
            direction: if campaign.is_some() {
                "outbound"
            } else {
                "inbound"
            },
            instance_id: &state.instance_id,
        },
    )
    .await
    .map_err(|e| ApiError::unavailable("unavailable", "database unavailable").with_source(e))?;
    if admission == Admission::Ended {
        // A replayed (or late) webhook: no session, no token.
        return Ok(reject(call_sid.as_str(), "call_ended", Some(&tenant_id)));
    }
    if let Admission::AtLimit { limit } = admission {
        log::info!(
            "{} call_sid={call_sid} tenant={tenant_id} reason=concurrency_limit limit={limit}",
            events::CALL_REJECTED
        );
        let language = plan::language_for(&tenant, Some(&caller));
        let busy = busy_message(&language);
        return Ok(twiml_response(twiml::say_and_hang_up(
            busy,
            Some(&language),
        )));
    }

    if let Ok(tenant_key) = TenantId::parse(&tenant_id) {
        let plan = plan::build(
            call_sid.clone(),
            tenant_key.clone(),
            &tenant,
            &prompt,
            plan::CallNumbers {
                caller: Some(caller.clone()),
                recipient: Some(to.to_string()),
                caller_id: None,
            },
            &state.settings.openai,
        );
        state.calls.preopen(&call_sid, &tenant_key, plan.session);
    }

    let public_url = state
        .settings
        .server
        .public_url
        .as_deref()
        .unwrap_or_default();
    let token = state.calls.streams.issue(call_sid.as_str(), &tenant_id);
    log::info!(
        "{} call_sid={call_sid} tenant={tenant_id} from={} to={}",
        events::CALL_ANSWERED,
        Masked(&caller),
        Masked(to.as_str())
    );
    Ok(twiml_response(twiml::connect_stream(
        &twilio_auth::media_stream_url(public_url),
        &[(TENANT_PARAMETER, &tenant_id), (TOKEN_PARAMETER, &token)],
    )))
}

/// "All lines busy", in the tenant's language.
fn busy_message(language: &str) -> &'static str {
    match language.split('-').next().unwrap_or(language) {
        "fr" => "Toutes nos lignes sont occupées. Veuillez rappeler dans quelques instants.",
        "ja" => "ただいま回線が混み合っております。しばらくしてからおかけ直しください。",
        "rw" => "Imirongo yacu yose irahuze. Mwongere muhamagare mu kanya.",
        _ => "All our lines are busy right now. Please call again in a few minutes.",
    }
}
