//! Twilio REST: acting on live calls (apology, transfer, hang-up). Implements
//! the actors' [`CallControl`] port on the one [`TwilioAccount`] client.

use callvisor_actors::ids::CallSid;
use callvisor_actors::ports::{CallControl, PortError, PortFuture};

use super::twilio_account::TwilioAccount;
use super::{client, error_from, RestError};
use callvisor_wire::twiml;

impl TwilioAccount {
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

impl CallControl for TwilioAccount {
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
