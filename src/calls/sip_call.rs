//! One accepted SIP/WhatsApp call: the accept request (after the webhook's
//! answer) and, once OpenAI took it, the call's actors on its sideband socket.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix_web::web;
use callvisor_actors::events;
use callvisor_actors::ids::CallSid;
use callvisor_actors::ports::{CallControl, CallPlan, PortError, PortFuture};
use callvisor_actors::supervisor::sideband::AttachSideband;

use crate::clients::openai_calls::OpenAiCalls;

use super::sip::{self, Channel};
use crate::db::call_logs::{self, Finish};
use crate::http::openai_webhook::calls_client;
use crate::state::AppState;

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
            follow(state, &plan, client).await;
        }
        Err(e) => {
            log::error!(
                "{} call_sid={call_sid} tenant={tenant} action=accept error={:?}",
                events::SIP_CONTROL_FAILED,
                e.to_string()
            );
            give_up(state, &call_sid, "accept_failed").await;
        }
    }
}

/// Starts the call's actors on its sideband socket, on this worker thread.
async fn follow(state: &web::Data<AppState>, plan: &CallPlan, client: OpenAiCalls) {
    let mut deps = state.calls.deps.clone();
    deps.control = Arc::new(SipControl {
        client,
        hung_up: Arc::new(AtomicBool::new(false)),
    });
    deps.realtime.url =
        sip::sideband_url(&state.settings.openai.realtime_url, plan.call_sid.as_str());
    let attached = state
        .calls
        .supervisor
        .send(AttachSideband {
            call_sid: plan.call_sid.clone(),
            tenant_id: plan.tenant_id.clone(),
            deps,
            arbiter: actix::Arbiter::current(),
        })
        .await;
    if !matches!(attached, Ok(Ok(_))) {
        // Draining (or the registry is gone): the call cannot be followed here.
        log::warn!(
            "{} call_sid={} tenant={} reason=not_attached",
            events::SIP_CALL_REJECTED,
            plan.call_sid,
            plan.tenant_id
        );
        let _ = calls_client(state).hangup(plan.call_sid.as_str()).await;
        give_up(state, &plan.call_sid, "not_attached").await;
    }
}

/// Finishes the record of a call that never got its actors.
async fn give_up(state: &AppState, call_sid: &CallSid, reason: &str) {
    if let Ok(mut conn) = state.db.get().await {
        let _ = call_logs::finish(
            &mut conn,
            Finish {
                call_sid: call_sid.as_str(),
                ended_at: chrono::Utc::now(),
                status: Some("failed"),
                duration_seconds: Some(0),
                end_reason: Some(reason),
                transferred_to: None,
                summary_after_seconds: None,
            },
        )
        .await;
    }
}

/// One call's controls: OpenAI's, with the hang-up asked at most once (the
/// agent's failure and the end of the call both hang up); a failed hang-up
/// may be asked again.
struct SipControl {
    client: OpenAiCalls,
    hung_up: Arc<AtomicBool>,
}

impl SipControl {
    /// Runs the hang-up `hang_up` makes unless one was already asked for.
    fn once(
        &self,
        hang_up: impl FnOnce() -> PortFuture<Result<(), PortError>>,
    ) -> PortFuture<Result<(), PortError>> {
        if self.hung_up.swap(true, Ordering::AcqRel) {
            return Box::pin(async { Ok(()) });
        }
        let hang_up = hang_up();
        let flag = self.hung_up.clone();
        Box::pin(async move {
            let result = hang_up.await;
            if result.is_err() {
                flag.store(false, Ordering::Release);
            }
            result
        })
    }
}

impl CallControl for SipControl {
    fn say_and_hang_up(
        &self,
        call_sid: &CallSid,
        text: &str,
        language: Option<&str>,
    ) -> PortFuture<Result<(), PortError>> {
        self.once(|| self.client.say_and_hang_up(call_sid, text, language))
    }

    fn transfer(
        &self,
        call_sid: &CallSid,
        to: &str,
        caller_id: Option<&str>,
    ) -> PortFuture<Result<(), PortError>> {
        self.client.transfer(call_sid, to, caller_id)
    }

    fn hang_up(&self, call_sid: &CallSid) -> PortFuture<Result<(), PortError>> {
        self.once(|| self.client.hang_up(call_sid))
    }
}
