//! Outbound campaigns ("bulk calls"): validation of a submitted list, the
//! runner every instance runs ([`runner`]), and the hooks the Twilio webhooks
//! call: [`record_outcome`] from the status callback and [`tenant_for_call`]
//! from the voice webhook (`/twilio/voice?campaign=<id>`).
//!
//! The state is in the database (`campaigns`, `campaign_targets`; see
//! [`crate::db::campaigns`] for the target life cycle and why a target whose
//! fate is unknown is never dialled again), so a campaign survives the
//! restart of the instance running it, and several instances share the work
//! without calling anyone twice.

pub mod runner;

use diesel_async::AsyncPgConnection;
use serde::Serialize;
use uuid::Uuid;

use callvisor_actors::events;
use callvisor_actors::ids::E164;
use callvisor_actors::redact::Masked;

use crate::db::campaigns::{self as store, Outcome, OUTCOMES};
use crate::db::DbError;

/// The status callback URL's query parameter naming a campaign call's target.
pub const TARGET_PARAMETER: &str = "target";

/// An entry of a submitted list that was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// Position in the submitted list (from 0).
    pub index: usize,
    /// What was submitted.
    pub input: serde_json::Value,
    /// `not_a_string`, `invalid_phone_number` or `duplicate`.
    pub reason: &'static str,
}

/// A submitted list, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckedList {
    /// Normalised E.164 numbers, in order, each once.
    pub accepted: Vec<String>,
    /// Everything else, with the reason.
    pub rejected: Vec<Rejected>,
}

/// Normalises and checks a submitted list of numbers: every entry is either
/// accepted (E.164, first occurrence) or reported with a reason.
pub fn check_numbers(inputs: &[serde_json::Value]) -> CheckedList {
    let mut list = CheckedList::default();
    let mut seen = std::collections::HashSet::new();
    for (index, input) in inputs.iter().enumerate() {
        let reason = match input.as_str() {
            None => Some("not_a_string"),
            Some(raw) => match E164::parse(raw) {
                Err(_) => Some("invalid_phone_number"),
                Ok(number) if !seen.insert(number.to_string()) => Some("duplicate"),
                Ok(number) => {
                    list.accepted.push(number.to_string());
                    None
                }
            },
        };
        if let Some(reason) = reason {
            list.rejected.push(Rejected {
                index,
                input: input.clone(),
                reason,
            });
        }
    }
    list
}

/// Records a campaign call's final status (from `POST /twilio/status`, whose
/// URL names the `target`): target outcome, pool number released with the
/// call's usage, call record finished, campaign completed when nothing is
/// left. Statuses that are not final, CallSids that are no campaign call and
/// retried callbacks change nothing (`Ok(None)`).
pub async fn record_outcome(
    conn: &mut AsyncPgConnection,
    call_sid: &str,
    target: Option<Uuid>,
    status: &str,
    duration_seconds: Option<i32>,
) -> Result<Option<Outcome>, DbError> {
    if !OUTCOMES.contains(&status) {
        return Ok(None);
    }
    let outcome = store::record_outcome(conn, call_sid, target, status, duration_seconds).await?;
    if let Some(o) = &outcome {
        log::info!(
            "{} call_sid={call_sid} campaign={} target={} status={status} duration_s={} to={} number={}",
            events::CAMPAIGN_CALL_OUTCOME,
            o.campaign_id,
            o.target_id,
            duration_seconds.map_or_else(|| "-".to_owned(), |d| d.to_string()),
            Masked(&o.to_number),
            o.from_number.as_deref().unwrap_or("-")
        );
        if let Some(number) = &o.from_number {
            log::info!(
                "{} number={number} holder={} call_sid={call_sid} reason=call_ended",
                events::NUMBER_RELEASED,
                store::holder_for(o.target_id)
            );
        }
    }
    Ok(outcome)
}

/// The tenant an outbound campaign call belongs to, for the voice webhook
/// (`/twilio/voice?campaign=<id>`; `to`/`from` are the webhook's `To` and
/// `From`). `None` when the call is not one of that campaign's.
pub async fn tenant_for_call(
    conn: &mut AsyncPgConnection,
    campaign: Uuid,
    call_sid: &str,
    to: &str,
    from: &str,
) -> Result<Option<Uuid>, DbError> {
    store::tenant_for_call(conn, campaign, call_sid, to, from).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_entry_is_accepted_or_reported() {
        let list = check_numbers(&[
            json!("+1 (415) 555-0100"),
            json!("+14155550100"),
            json!("12"),
            json!(42),
            json!("+442071838750"),
        ]);
        assert_eq!(list.accepted, ["+14155550100", "+442071838750"]);
        let reasons: Vec<(usize, &str)> =
            list.rejected.iter().map(|r| (r.index, r.reason)).collect();
        assert_eq!(
            reasons,
            [
                (1, "duplicate"),
                (2, "invalid_phone_number"),
                (3, "not_a_string")
            ]
        );
    }
}
