//! A call's plan from its tenant's configuration: the agent's instructions,
//! greeting, voice, language and tools, and the apology in the caller's language.

use callvisor_actors::ids::{CallSid, TenantId};
use callvisor_actors::ports::CallPlan;
use callvisor_wire::protocol::realtime::{default_tools, SessionConfig};

use crate::config::OpenAiSettings;
use crate::db::tenants::{Prompt, Tenant};

/// Instructions used when a tenant has written none.
const DEFAULT_INSTRUCTIONS: &str = "You are the friendly phone receptionist of this business. \
Answer briefly, help the caller, take reservations with create_reservation, hand the caller to a \
human with transfer_to_human when they ask for one, and call end_call once the caller says goodbye.";

/// The Realtime API's documented voices; a tenant's other value would get the
/// whole `session.update` refused, so the default voice is used instead.
const VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar",
];

/// The tenant's voice if the API knows it (case-insensitively), else `default`.
fn voice(tenant: Option<&str>, default: &str) -> String {
    tenant
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| VOICES.contains(&v.as_str()))
        .unwrap_or_else(|| default.to_owned())
}

/// The language's English name, for the instructions.
fn language_name(tag: &str) -> &str {
    match tag.split('-').next().unwrap_or(tag) {
        "en" => "English",
        "fr" => "French",
        "rw" => "Kinyarwanda",
        "ja" => "Japanese",
        "es" => "Spanish",
        "de" => "German",
        other => other,
    }
}

/// What the caller hears when the agent cannot be reached.
pub fn apology(tag: &str) -> &'static str {
    match tag.split('-').next().unwrap_or(tag) {
        "fr" => "Nous sommes désolés, nous ne pouvons pas prendre votre appel pour le moment. Veuillez rappeler plus tard.",
        "rw" => "Tubabarira, ntidushobora kwakira umuhamagaro wanyu ubu. Mwongere muhamagare nyuma.",
        "ja" => "申し訳ございません。ただいまお電話をお受けできません。後ほどおかけ直しください。",
        _ => "We are sorry, we cannot take your call right now. Please call again later.",
    }
}

/// The language a country's callers are answered in, by calling code
/// (longest prefix first: none of these is a prefix of another).
const COUNTRY_LANGUAGES: &[(&str, &str)] = &[
    ("+250", "rw"),
    ("+33", "fr"),
    ("+81", "ja"),
    ("+1", "en"),
    ("+44", "en"),
];

/// The language of a call (SPEC §6): when the tenant allows several, the one
/// of the caller's country code if it is allowed, else the tenant's preferred
/// language (also when the caller's number is unknown or withheld).
pub fn language_for(tenant: &Tenant, caller: Option<&str>) -> String {
    if tenant.allowed_languages.is_empty() {
        return tenant.preferred_language.clone();
    }
    let by_country = caller.and_then(|number| {
        COUNTRY_LANGUAGES
            .iter()
            .find(|(code, _)| number.starts_with(code))
            .map(|(_, language)| *language)
    });
    let allowed = |tag: &str| {
        tenant
            .allowed_languages
            .iter()
            .find(|a| a.as_str() == tag || a.split('-').next() == Some(tag))
    };
    by_country
        .and_then(allowed)
        .cloned()
        .unwrap_or_else(|| tenant.preferred_language.clone())
}

/// The numbers of a call as the agent sees them: the customer on the line
/// and ours. Not the log's from/to: on an outbound (campaign) call the log's
/// caller is our pool number and the customer is the number called.
#[derive(Debug, Clone, Default)]
pub struct CallNumbers {
    /// The customer: who called (inbound) or who was called (outbound). A
    /// reservation's contact number defaults to it.
    pub caller: Option<String>,
    /// Ours: the number called (inbound) or the pool number called from (outbound).
    pub recipient: Option<String>,
    /// One of ours, shown on a transfer.
    pub caller_id: Option<String>,
}

impl CallNumbers {
    /// From a call's log row: `direction` (`inbound`/`outbound`), its
    /// `caller_number` (Twilio's `From`), `recipient_number` (`To`) and
    /// `number_used` (the pool number it went out on, if any).
    pub fn from_log(
        direction: &str,
        from: Option<String>,
        to: Option<String>,
        number_used: Option<String>,
    ) -> Self {
        let (customer, ours) = if direction == "outbound" {
            (to, number_used.clone().or(from))
        } else {
            (from, to)
        };
        Self {
            caller: customer,
            // A transfer shows one of our numbers: the pool number an outbound
            // call went out on, or the number an inbound call came in on.
            caller_id: number_used.or_else(|| ours.clone()),
            recipient: ours,
        }
    }
}

/// Builds the plan of `call_sid` for `tenant`.
pub fn build(
    call_sid: CallSid,
    tenant_id: TenantId,
    tenant: &Tenant,
    prompt: &Prompt,
    numbers: CallNumbers,
    openai: &OpenAiSettings,
) -> CallPlan {
    let language = language_for(tenant, numbers.caller.as_deref());
    let base = if prompt.system_prompt.trim().is_empty() {
        DEFAULT_INSTRUCTIONS
    } else {
        prompt.system_prompt.trim()
    };
    let instructions = format!(
        "{base}\n\nSpeak {} unless the caller speaks another language; then answer in theirs.",
        language_name(&language)
    );
    let greeting = prompt
        .config_metadata
        .get("greeting_message")
        .and_then(serde_json::Value::as_str)
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned);
    let session = SessionConfig {
        model: openai.realtime_model.clone(),
        instructions,
        voice: voice(tenant.voice.as_deref(), &openai.default_voice),
        language: language.clone(),
        greeting,
        tools: default_tools(),
        transcription_model: openai.transcription_model.clone(),
        ..SessionConfig::default()
    };
    CallPlan {
        call_sid,
        tenant_id,
        caller: numbers.caller,
        recipient: numbers.recipient,
        session,
        handoff_number: tenant.handoff_number.clone(),
        caller_id: numbers.caller_id,
        apology: apology(&language).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(preferred: &str, allowed: &[&str]) -> Tenant {
        Tenant {
            id: uuid::Uuid::nil(),
            phone_number: None,
            is_subscribed: true,
            plan: "standard".into(),
            max_concurrent_calls: 5,
            handoff_number: None,
            preferred_language: preferred.into(),
            voice: None,
            allowed_languages: allowed.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    #[test]
    fn the_country_code_picks_an_allowed_language() {
        let several = tenant("en", &["en", "fr", "rw", "ja"]);
        for (caller, want) in [
            ("+250788123456", "rw"),
            ("+33142000000", "fr"),
            ("+81312345678", "ja"),
            ("+15550123456", "en"),
            ("+4930123456", "en"),
        ] {
            assert_eq!(language_for(&several, Some(caller)), want, "{caller}");
        }
        assert_eq!(language_for(&several, None), "en");
        // Not allowed, or no choice at all: the preferred language.
        assert_eq!(
            language_for(&tenant("fr", &["fr", "en"]), Some("+81312345678")),
            "fr"
        );
        assert_eq!(
            language_for(&tenant("fr", &[]), Some("+250788123456")),
            "fr"
        );
        // A regional tag counts for its language.
        assert_eq!(
            language_for(&tenant("en", &["en", "fr-CA"]), Some("+33142000000")),
            "fr-CA"
        );
    }

    #[test]
    fn the_customer_is_who_called_in_and_who_was_called_out() {
        let n = |s: &str| Some(s.to_owned());
        let inbound = CallNumbers::from_log("inbound", n("+15550001111"), n("+15550100001"), None);
        assert_eq!(inbound.caller, n("+15550001111"));
        assert_eq!(inbound.caller_id, n("+15550100001"));
        // Outbound: Twilio's `From` is our pool number, `To` the customer.
        let outbound = CallNumbers::from_log(
            "outbound",
            n("+15550200000"),
            n("+15550802222"),
            n("+15550200000"),
        );
        assert_eq!(outbound.caller, n("+15550802222"));
        assert_eq!(outbound.recipient, n("+15550200000"));
        assert_eq!(outbound.caller_id, n("+15550200000"));
    }

    #[test]
    fn only_documented_voices_are_used() {
        assert_eq!(voice(Some("Cedar"), "marin"), "cedar");
        assert_eq!(voice(Some("Bob"), "marin"), "marin");
        assert_eq!(voice(None, "marin"), "marin");
    }
}
