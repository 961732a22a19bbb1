//! The environment variables that set configuration keys: the old engine's
//! names (one list, on purpose) and the generic `CALLVISOR__<SECTION>__<KEY>`.
//! The loader reads them; validation names them in its messages. Both
//! depend on this module, not on each other.

/// Prefix of the generic override `CALLVISOR__<SECTION>__<KEY>`.
pub const GENERIC_PREFIX: &str = "CALLVISOR__";

/// The old engine's variable names and the keys they set. One place, on purpose.
pub const LEGACY_NAMES: &[(&str, &str, &str)] = &[
    ("PORT", "server", "port"),
    ("PUBLIC_URL", "server", "public_url"),
    ("DATABASE_URL", "database", "url"),
    ("OPENAI_API_KEY", "openai", "api_key"),
    ("OPENAI_BASE_URL", "openai", "base_url"),
    ("OPENAI_REALTIME_URL", "openai", "realtime_url"),
    ("OPENAI_REALTIME_MODEL", "openai", "realtime_model"),
    ("OPENAI_MODEL_MINI", "openai", "model_mini"),
    ("OPENAI_WEBHOOK_SECRET", "openai", "webhook_secret"),
    ("TWILIO_ACCOUNT_SID", "twilio", "account_sid"),
    ("TWILIO_AUTH_TOKEN", "twilio", "auth_token"),
    ("TWILIO_API_BASE", "twilio", "api_base"),
    ("STRIPE_SECRET_KEY", "stripe", "secret_key"),
    ("STRIPE_WEBHOOK_SECRET", "stripe", "webhook_secret"),
    ("STRIPE_USAGE_PRICE_ID", "stripe", "usage_price_id"),
    ("STRIPE_API_BASE", "stripe", "api_base"),
    ("ADMIN_TOKEN", "admin", "token"),
    ("STREAM_TOKEN_SECRET", "stream", "token_secret"),
    ("LOG_DIR", "logging", "dir"),
];

/// The variable that sets `section.key`: the old engine's name where one exists.
pub fn variable_for(section: &str, key: &str) -> String {
    LEGACY_NAMES
        .iter()
        .find(|(_, s, k)| *s == section && *k == key)
        .map_or_else(
            || {
                format!(
                    "{GENERIC_PREFIX}{}__{}",
                    section.to_ascii_uppercase(),
                    key.to_ascii_uppercase()
                )
            },
            |(var, _, _)| (*var).to_owned(),
        )
}
