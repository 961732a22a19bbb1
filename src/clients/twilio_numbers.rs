//! Twilio REST for the pool and campaigns: list, search, buy, re-point and
//! release the account's numbers (`IncomingPhoneNumbers`,
//! `AvailablePhoneNumbers`), and place outbound calls (`Calls.json`).
//!
//! Placing a call is not idempotent at Twilio (no request key), so
//! [`TwilioAccount::create_call`] says precisely what a failure means:
//! [`DialError::NotSent`] (the request never left: safe to retry),
//! [`DialError::Refused`] (Twilio answered no: nothing was placed), or
//! [`DialError::Unknown`] (timeout, broken connection, 5xx, unreadable
//! answer: a call may exist). Campaigns never retry the last kind.

use serde::Deserialize;

use super::twilio_account::TwilioAccount;
use super::{client, error_from, RestError};

/// Largest JSON answer read (a page of numbers is well under it).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// Numbers per page when listing the account's numbers.
const PAGE_SIZE: u32 = 1000;
/// Pages followed at most (a million numbers).
const MAX_PAGES: usize = 1000;

/// A number the account owns.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IncomingNumber {
    /// `PN…`
    pub sid: String,
    /// E.164.
    pub phone_number: String,
    /// Where its calls go.
    #[serde(default)]
    pub voice_url: Option<String>,
}

#[derive(Deserialize)]
struct NumberPage {
    #[serde(default)]
    incoming_phone_numbers: Vec<IncomingNumber>,
    #[serde(default)]
    next_page_uri: Option<String>,
}

#[derive(Deserialize)]
struct Available {
    phone_number: String,
}

#[derive(Deserialize)]
struct AvailablePage {
    #[serde(default)]
    available_phone_numbers: Vec<Available>,
}

#[derive(Deserialize)]
struct CreatedCall {
    sid: String,
}

/// An outbound call to place.
#[derive(Debug, Clone)]
pub struct NewCall<'a> {
    /// Who is called (E.164).
    pub to: &'a str,
    /// The caller ID: a pool number.
    pub from: &'a str,
    /// The voice webhook Twilio fetches once the call is answered.
    pub url: &'a str,
    /// Where Twilio posts status callbacks.
    pub status_callback: &'a str,
    /// Seconds to let it ring.
    pub timeout_seconds: u64,
}

/// Why a call was not placed, and whether it might have been.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DialError {
    /// The request never reached Twilio (no connection, bad URL): no call.
    #[error("request not sent: {0}")]
    NotSent(String),
    /// Twilio answered with a 4xx: no call was placed. 429 is worth retrying.
    #[error("refused: HTTP {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Twilio's error text, shortened.
        body: String,
    },
    /// The request may have placed a call (timeout, broken connection, 5xx,
    /// unreadable answer).
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

impl TwilioAccount {
    fn url(&self, resource: &str) -> String {
        format!("{}/Accounts/{}/{resource}", self.api_base, self.account_sid)
    }

    /// Twilio's paging links are paths from the API host: `scheme://host[:port]`.
    fn origin(&self) -> &str {
        let base = &*self.api_base;
        let after_scheme = base.find("://").map_or(0, |i| i + 3);
        match base.get(after_scheme..).and_then(|rest| rest.find('/')) {
            Some(i) => base.get(..after_scheme + i).unwrap_or(base),
            None => base,
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, RestError> {
        let mut response = client()
            .get(url)
            .basic_auth(&*self.account_sid, self.auth_token.expose())
            .send()
            .await
            .map_err(|e| RestError::Transport(e.to_string()))?;
        if !response.status().is_success() {
            return Err(error_from(response).await);
        }
        response
            .json::<T>()
            .limit(MAX_ANSWER_BYTES)
            .await
            .map_err(|e| RestError::Decode(e.to_string()))
    }

    async fn post_form<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        params: &[(&str, &str)],
    ) -> Result<T, RestError> {
        let mut response = client()
            .post(url)
            .basic_auth(&*self.account_sid, self.auth_token.expose())
            .send_form(&params)
            .await
            .map_err(|e| RestError::Transport(e.to_string()))?;
        if !response.status().is_success() {
            return Err(error_from(response).await);
        }
        response
            .json::<T>()
            .limit(MAX_ANSWER_BYTES)
            .await
            .map_err(|e| RestError::Decode(e.to_string()))
    }

    /// Every number the account owns (following Twilio's pages).
    pub async fn list_numbers(&self) -> Result<Vec<IncomingNumber>, RestError> {
        let mut url = format!(
            "{}?PageSize={PAGE_SIZE}",
            self.url("IncomingPhoneNumbers.json")
        );
        let mut numbers = Vec::new();
        for _ in 0..MAX_PAGES {
            let page: NumberPage = self.get_json(&url).await?;
            numbers.extend(page.incoming_phone_numbers);
            match page.next_page_uri.filter(|u| !u.is_empty()) {
                Some(next) if next.starts_with("http") => url = next,
                Some(next) => url = format!("{}{next}", self.origin()),
                None => return Ok(numbers),
            }
        }
        Ok(numbers)
    }

    /// The account's entry for one number, if it owns it.
    pub async fn find_number(
        &self,
        phone_number: &str,
    ) -> Result<Option<IncomingNumber>, RestError> {
        let url = format!(
            "{}?PhoneNumber={}",
            self.url("IncomingPhoneNumbers.json"),
            encode(phone_number)
        );
        let page: NumberPage = self.get_json(&url).await?;
        Ok(page
            .incoming_phone_numbers
            .into_iter()
            .find(|n| n.phone_number == phone_number))
    }

    /// One voice-capable local number on sale in `country` (and `area_code`).
    pub async fn search_available(
        &self,
        country: &str,
        area_code: Option<&str>,
    ) -> Result<Option<String>, RestError> {
        let mut url = format!(
            "{}?VoiceEnabled=true&PageSize=1",
            self.url(&format!(
                "AvailablePhoneNumbers/{}/Local.json",
                encode(country)
            ))
        );
        if let Some(area) = area_code {
            url.push_str(&format!("&AreaCode={}", encode(area)));
        }
        let page: AvailablePage = self.get_json(&url).await?;
        Ok(page
            .available_phone_numbers
            .into_iter()
            .next()
            .map(|n| n.phone_number))
    }

    /// Buys `phone_number`, its voice webhook set to `voice_url`.
    pub async fn buy(
        &self,
        phone_number: &str,
        voice_url: &str,
    ) -> Result<IncomingNumber, RestError> {
        self.post_form(
            &self.url("IncomingPhoneNumbers.json"),
            &[
                ("PhoneNumber", phone_number),
                ("VoiceUrl", voice_url),
                ("VoiceMethod", "POST"),
            ],
        )
        .await
    }

    /// Points a number's voice webhook and status callback at this deployment.
    pub async fn point(
        &self,
        sid: &str,
        voice_url: &str,
        status_callback: &str,
    ) -> Result<IncomingNumber, RestError> {
        self.post_form(
            &self.url(&format!("IncomingPhoneNumbers/{}.json", encode(sid))),
            &[
                ("VoiceUrl", voice_url),
                ("VoiceMethod", "POST"),
                ("StatusCallback", status_callback),
                ("StatusCallbackMethod", "POST"),
            ],
        )
        .await
    }

    /// Releases a number from the account (404: already gone, which is fine).
    pub async fn release(&self, sid: &str) -> Result<(), RestError> {
        let response = client()
            .delete(self.url(&format!("IncomingPhoneNumbers/{}.json", encode(sid))))
            .basic_auth(&*self.account_sid, self.auth_token.expose())
            .send()
            .await
            .map_err(|e| RestError::Transport(e.to_string()))?;
        if response.status().is_success() || response.status().as_u16() == 404 {
            Ok(())
        } else {
            Err(error_from(response).await)
        }
    }

    /// Places an outbound call; answers its CallSid.
    pub async fn create_call(&self, call: &NewCall<'_>) -> Result<String, DialError> {
        let timeout = call.timeout_seconds.to_string();
        let params: [(&str, &str); 11] = [
            ("To", call.to),
            ("From", call.from),
            ("Url", call.url),
            ("Method", "POST"),
            ("StatusCallback", call.status_callback),
            ("StatusCallbackMethod", "POST"),
            ("StatusCallbackEvent", "initiated"),
            ("StatusCallbackEvent", "ringing"),
            ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "completed"),
            ("Timeout", &timeout),
        ];
        let sent = client()
            .post(self.url("Calls.json"))
            .basic_auth(&*self.account_sid, self.auth_token.expose())
            .send_form(&params)
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(
                e @ (awc::error::SendRequestError::Connect(_)
                | awc::error::SendRequestError::Url(_)
                | awc::error::SendRequestError::Http(_)),
            ) => return Err(DialError::NotSent(e.to_string())),
            Err(e) => return Err(DialError::Unknown(e.to_string())),
        };
        let status = response.status();
        if status.is_client_error() {
            return match error_from(response).await {
                RestError::Status { status, body } => Err(DialError::Refused { status, body }),
                other => Err(DialError::Unknown(other.to_string())),
            };
        }
        if !status.is_success() {
            return Err(DialError::Unknown(error_from(response).await.to_string()));
        }
        response
            .json::<CreatedCall>()
            .limit(MAX_ANSWER_BYTES)
            .await
            .map(|c| c.sid)
            .map_err(|e| DialError::Unknown(format!("unreadable answer: {e}")))
    }
}

/// Percent-encodes a path segment or query value.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn paging_links_resolve_against_the_api_host() {
        let account = TwilioAccount::new(
            "https://api.twilio.com/2010-04-01/",
            "AC1",
            Secret::new("t"),
        );
        assert_eq!(account.origin(), "https://api.twilio.com");
        let local = TwilioAccount::new("http://127.0.0.1:9/2010-04-01", "AC1", Secret::new("t"));
        assert_eq!(local.origin(), "http://127.0.0.1:9");
        assert_eq!(
            local.url("Calls.json"),
            "http://127.0.0.1:9/2010-04-01/Accounts/AC1/Calls.json"
        );
    }

    #[test]
    fn values_are_percent_encoded() {
        assert_eq!(encode("+14155550100"), "%2B14155550100");
        assert_eq!(encode("PN12ab"), "PN12ab");
    }
}
