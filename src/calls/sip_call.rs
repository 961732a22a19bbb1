//! One accepted SIP/WhatsApp call: the accept request (after the webhook's
//! answer) and, once OpenAI took it, the call's actors on its sideband socket.

use std::time::Instant;

use actix_web::web;
use callvisor_actors::events;
use callvisor_actors::ports::CallPlan;

use super::sip::{self, Channel};
use crate::db::call_logs::{self, Finish};
use crate::http::openai_webhook::calls_client;
use crate::startup::AppState;

/// Accepts the call with its plan's session; a failed accept finishes its record.
pub async fn accept(
    state: &web::Data<AppState>,
    plan: CallPlan,
    channel: Channel,
    received: Instant,
) {
    let body = sip::accept_body(&plan.session);
    let client = calls_client(state);
    let call_sid = plan.call_sid.clone();
    let tenant = plan.tenant_id.clone();
    let queued_ms = received.elapsed().as_millis();
    match client.accept(call_sid.as_str(), &body).await {
        Ok(()) => {
            log::info!(
                "{} call_sid={call_sid} tenant={tenant} channel={} queued_ms={queued_ms} latency_ms={}",
                events::SIP_CALL_ACCEPTED,
                channel.as_str(),
                received.elapsed().as_millis()
            );
        }
        Err(e) => {
            log::error!(
                "{} call_sid={call_sid} tenant={tenant} action=accept error={:?}",
                events::SIP_CONTROL_FAILED,
                e.to_string()
            );
            if let Ok(mut conn) = state.db.get().await {
                let _ = call_logs::finish(
                    &mut conn,
                    Finish {
                        call_sid: call_sid.as_str(),
                        ended_at: chrono::Utc::now(),
                        status: Some("failed"),
                        duration_seconds: Some(0),
                        end_reason: Some("accept_failed"),
                        transferred_to: None,
                        summary_after_seconds: None,
                    },
                )
                .await;
            }
        }
    }
}
