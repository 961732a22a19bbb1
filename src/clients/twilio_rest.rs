//! Twilio REST: acting on live calls (apology, transfer, hang-up). Implements
//! the actors' [`CallControl`] port.

use std::sync::Arc;

use callvisor_actors::ids::CallSid;
use callvisor_actors::ports::{CallControl, PortError, PortFuture};

use super::{client, error_from, RestError};
use crate::secret::Secret;
use callvisor_wire::twiml;

/// Twilio's REST API for one account.
#[derive(Clone)]
pub struct TwilioRest {
    api_base: Arc<str>,
    account_sid: Arc<str>,
    auth_token: Secret,
}

impl std::fmt::Debug for TwilioRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioRest")
            .field("api_base", &self.api_base)
            .field("account_sid", &self.account_sid)
            .finish_non_exhaustive()
    }
}

impl TwilioRest {
    /// A client for `account_sid` at `api_base` (`…/2010-04-01`).
    pub fn new(api_base: &str, account_sid: &str, auth_token: Secret) -> Self {
        Self {
            api_base: Arc::from(api_base.trim_end_matches('/')),
            account_sid: Arc::from(account_sid),
            auth_token,
        }
    }

    /// `POST /Accounts/{AC}/Calls/{CA}.json` with form `params`.
    pub async fn update_call(
        &self,
        call_sid: &str,
        params: &[(&str, &str)],
    ) -> Result<(), RestError> {
        let url = format!(
            "{}/Accounts/{}/Calls/{}.json",
            self.api_base, self.account_sid, call_sid
        );
        let response = client()
            .post(url)
            .basic_auth(&*self.account_sid, self.auth_token.expose())
            .send_form(&params)
            .await
            .map_err(|e| RestError::Transport(e.to_string()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(error_from(response).await)
        }
    }
}

fn port_error(e: RestError) -> PortError {
    PortError::with_source("twilio", e)
}

impl CallControl for TwilioRest {
    fn say_and_hang_up(
        &self,
        call_sid: &CallSid,
        text: &str,
        language: Option<&str>,
    ) -> PortFuture<Result<(), PortError>> {
        let rest = self.clone();
        let call_sid = call_sid.to_string();
        let twiml = twiml::say_and_hang_up(text, language);
        Box::pin(async move {
            rest.update_call(&call_sid, &[("Twiml", &twiml)])
                .await
                .map_err(port_error)
        })
    }

    fn transfer(
        &self,
        call_sid: &CallSid,
        to: &str,
        caller_id: Option<&str>,
    ) -> PortFuture<Result<(), PortError>> {
        let rest = self.clone();
        let call_sid = call_sid.to_string();
        let twiml = twiml::dial(to, caller_id);
        Box::pin(async move {
            rest.update_call(&call_sid, &[("Twiml", &twiml)])
                .await
                .map_err(port_error)
        })
    }

    fn hang_up(&self, call_sid: &CallSid) -> PortFuture<Result<(), PortError>> {
        let rest = self.clone();
        let call_sid = call_sid.to_string();
        Box::pin(async move {
            match rest
                .update_call(&call_sid, &[("Status", "completed")])
                .await
            {
                // 404: the call is already over, which is what was asked.
                Err(RestError::Status { status: 404, .. }) => Ok(()),
                other => other.map_err(port_error),
            }
        })
    }
}
