//! OpenAI's Realtime call controls for SIP calls (`/v1/realtime/calls/{call_id}/…`):
//! accept with a session, reject with a SIP status, refer (blind transfer) and
//! hang up. Every one answers 200 with an empty body.

use std::sync::Arc;

use callvisor_actors::ids::CallSid;
use callvisor_actors::ports::{CallControl, PortError, PortFuture};
use serde_json::{json, Value};

use super::{client, error_from, RestError};
use crate::secret::Secret;

/// The call-control client (base URL `…/v1` from `openai.base_url`).
#[derive(Clone)]
pub struct OpenAiCalls {
    base_url: Arc<str>,
    api_key: Secret,
}

impl OpenAiCalls {
    /// A client of `base_url` (`…/v1`).
    pub fn new(base_url: &str, api_key: Secret) -> Self {
        Self {
            base_url: Arc::from(base_url.trim_end_matches('/')),
            api_key,
        }
    }

    /// Answers the call with `session` (a GA session object: `type`, `model`, ...).
    pub async fn accept(&self, call_id: &str, session: &Value) -> Result<(), RestError> {
        self.post(call_id, "accept", Some(session)).await
    }

    /// Declines the call with SIP `status_code` (603 Decline, 486 Busy Here, ...).
    pub async fn reject(&self, call_id: &str, status_code: u16) -> Result<(), RestError> {
        self.post(
            call_id,
            "reject",
            Some(&json!({ "status_code": status_code })),
        )
        .await
    }

    /// Transfers the caller to `target_uri` (`tel:+1…` or `sip:…`) with a SIP REFER.
    pub async fn refer(&self, call_id: &str, target_uri: &str) -> Result<(), RestError> {
        self.post(call_id, "refer", Some(&json!({ "target_uri": target_uri })))
            .await
    }

    /// Ends the call.
    pub async fn hangup(&self, call_id: &str) -> Result<(), RestError> {
        self.post(call_id, "hangup", None).await
    }

    async fn post(
        &self,
        call_id: &str,
        action: &str,
        body: Option<&Value>,
    ) -> Result<(), RestError> {
        // Call ids are checked at the edge ([A-Za-z0-9_-]), so they need no escaping.
        let request = client()
            .post(format!(
                "{}/realtime/calls/{call_id}/{action}",
                self.base_url
            ))
            .bearer_auth(self.api_key.expose());
        let sent = match body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        };
        let response = sent.map_err(|e| RestError::Transport(e.to_string()))?;
        if !response.status().is_success() {
            return Err(error_from(response).await);
        }
        Ok(())
    }
}

fn port_error(e: RestError) -> PortError {
    PortError::with_source("openai call control", e)
}

/// A SIP call's controls, for its CallActor: a transfer is a SIP REFER to the
/// number as a `tel:` URI; hanging up is `…/hangup`. The apology cannot be
/// spoken by anyone but the agent, whose session is what failed, so the call
/// is hung up (the caller hears the line close, as on a failed SIP call).
impl CallControl for OpenAiCalls {
    fn say_and_hang_up(
        &self,
        call_sid: &CallSid,
        _text: &str,
        _language: Option<&str>,
    ) -> PortFuture<Result<(), PortError>> {
        self.hang_up(call_sid)
    }

    fn transfer(
        &self,
        call_sid: &CallSid,
        to: &str,
        _caller_id: Option<&str>,
    ) -> PortFuture<Result<(), PortError>> {
        let client = self.clone();
        let call_sid = call_sid.to_string();
        let target = format!("tel:{to}");
        Box::pin(async move { client.refer(&call_sid, &target).await.map_err(port_error) })
    }

    fn hang_up(&self, call_sid: &CallSid) -> PortFuture<Result<(), PortError>> {
        let client = self.clone();
        let call_sid = call_sid.to_string();
        Box::pin(async move {
            match client.hangup(&call_sid).await {
                // 404: the call is already over, which is what was asked.
                Err(RestError::Status { status: 404, .. }) => Ok(()),
                other => other.map_err(port_error),
            }
        })
    }
}
