//! The PhonePoolActor's [`NumberProvider`] port over Twilio REST: buy a
//! voice number (searching one on sale unless an area code is configured)
//! with its webhook pointed at this deployment; release a number.

use callvisor_actors::pool_ports::{BoughtNumber, NumberProvider, RetiringNumber};
use callvisor_actors::ports::{PortError, PortFuture};

use crate::clients::twilio_account::TwilioAccount;

/// Buys and releases numbers of one Twilio account.
pub struct TwilioProvider {
    account: TwilioAccount,
    country: String,
    area_code: Option<String>,
    voice_url: String,
}

impl TwilioProvider {
    /// Numbers from `country` (and `area_code`), calls sent to `voice_url`.
    pub fn new(
        account: TwilioAccount,
        country: &str,
        area_code: Option<&str>,
        voice_url: String,
    ) -> Self {
        Self {
            account,
            country: country.to_owned(),
            area_code: area_code.map(str::to_owned),
            voice_url,
        }
    }
}

fn twilio_error(e: impl std::error::Error + Send + Sync + 'static) -> PortError {
    PortError::with_source("twilio", e)
}

impl NumberProvider for TwilioProvider {
    fn buy(&self) -> PortFuture<Result<BoughtNumber, PortError>> {
        let account = self.account.clone();
        let (country, area_code) = (self.country.clone(), self.area_code.clone());
        let voice_url = self.voice_url.clone();
        Box::pin(async move {
            let candidate = account
                .search_available(&country, area_code.as_deref())
                .await
                .map_err(twilio_error)?
                .ok_or_else(|| {
                    PortError::new(format!(
                        "twilio: no number on sale in {country}{}",
                        area_code
                            .as_deref()
                            .map(|a| format!(" area code {a}"))
                            .unwrap_or_default()
                    ))
                })?;
            let bought = account
                .buy(&candidate, &voice_url)
                .await
                .map_err(twilio_error)?;
            Ok(BoughtNumber {
                phone_number: bought.phone_number,
                provider_sid: Some(bought.sid),
            })
        })
    }

    fn release(&self, number: &RetiringNumber) -> PortFuture<Result<(), PortError>> {
        let account = self.account.clone();
        let number = number.clone();
        Box::pin(async move {
            let sid = match number.provider_sid {
                Some(sid) => sid,
                // Added by hand: find its id at the provider first.
                None => match account
                    .find_number(&number.phone_number)
                    .await
                    .map_err(twilio_error)?
                {
                    Some(found) => found.sid,
                    // The account does not own it: nothing to release there.
                    None => return Ok(()),
                },
            };
            account.release(&sid).await.map_err(twilio_error)
        })
    }
}
