//! OpenAI's Realtime call controls for SIP calls (`/v1/realtime/calls/{call_id}/…`):
//! accept with a session, reject with a SIP status, refer (blind transfer) and
//! hang up. Every one answers 200 with an empty body.

use std::sync::Arc;

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
