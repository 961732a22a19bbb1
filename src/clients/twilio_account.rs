//! One Twilio account's REST client: the base URL and credentials every
//! Twilio request needs. Its requests live by purpose beside it:
//! `twilio_rest` (live calls: apology, transfer, hang-up) and
//! `twilio_numbers` (the account's numbers and outbound calls).

use std::sync::Arc;

use crate::secret::Secret;

/// A Twilio account's REST API (`…/2010-04-01`).
#[derive(Clone)]
pub struct TwilioAccount {
    pub(super) api_base: Arc<str>,
    pub(super) account_sid: Arc<str>,
    pub(super) auth_token: Secret,
}

impl std::fmt::Debug for TwilioAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioAccount")
            .field("api_base", &self.api_base)
            .field("account_sid", &self.account_sid)
            .finish_non_exhaustive()
    }
}

impl TwilioAccount {
    /// A client for `account_sid` at `api_base` (`…/2010-04-01`).
    pub fn new(api_base: &str, account_sid: &str, auth_token: Secret) -> Self {
        Self {
            api_base: Arc::from(api_base.trim_end_matches('/')),
            account_sid: Arc::from(account_sid),
            auth_token,
        }
    }
}
