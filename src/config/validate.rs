//! Start-up validation: every problem at once, each naming the variable to set,
//! and only what the enabled features need.

use super::load::LEGACY_NAMES;
use super::{AppEnv, Purpose, Settings};

/// One problem with one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The environment variable (or file) to fix.
    pub variable: String,
    /// What is wrong with it. Never contains a secret's value.
    pub problem: String,
}

impl ConfigIssue {
    pub(super) fn new(variable: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            variable: variable.into(),
            problem: problem.into(),
        }
    }
}

impl std::fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.variable, self.problem)
    }
}

/// The variable that sets `section.key`: the old engine's name where one exists.
pub fn variable_for(section: &str, key: &str) -> String {
    LEGACY_NAMES
        .iter()
        .find(|(_, s, k)| *s == section && *k == key)
        .map_or_else(
            || {
                format!(
                    "CALLVISOR__{}__{}",
                    section.to_ascii_uppercase(),
                    key.to_ascii_uppercase()
                )
            },
            |(var, _, _)| (*var).to_owned(),
        )
}

/// Collects the features that need a setting, so each missing one is reported once.
#[derive(Default)]
struct Requirements {
    needed: Vec<(&'static str, &'static str, Vec<&'static str>)>,
}

impl Requirements {
    fn need(&mut self, section: &'static str, key: &'static str, feature: &'static str) {
        match self
            .needed
            .iter_mut()
            .find(|(s, k, _)| *s == section && *k == key)
        {
            Some((_, _, features)) => features.push(feature),
            None => self.needed.push((section, key, vec![feature])),
        }
    }
}

/// Checks settings for a purpose; an empty result means they are usable.
pub fn validate(s: &Settings, purpose: Purpose) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    let mut req = Requirements::default();
    let production = s.app_env == AppEnv::Production;
    let serving = purpose == Purpose::Serve;

    req.need("database", "url", "the database");
    if serving && s.features.twilio_voice {
        req.need("server", "public_url", "twilio_voice");
        req.need("openai", "api_key", "twilio_voice");
        req.need("twilio", "account_sid", "twilio_voice");
        if s.server.verify_signatures || production {
            req.need("twilio", "auth_token", "twilio_voice");
        }
        if production {
            req.need("stream", "token_secret", "twilio_voice in production");
        }
    }
    if serving && s.features.openai_sip {
        req.need("openai", "api_key", "openai_sip");
        req.need("openai", "webhook_secret", "openai_sip");
    }
    if serving && s.features.summaries {
        req.need("openai", "api_key", "summaries");
    }
    if serving && s.features.admin {
        req.need("admin", "token", "admin");
    }
    if serving && s.features.billing {
        req.need("stripe", "secret_key", "billing");
        req.need("stripe", "webhook_secret", "billing");
    }
    for (section, key, features) in &req.needed {
        if !is_set(s, section, key) {
            issues.push(ConfigIssue::new(
                variable_for(section, key),
                format!("required by {}; not set", features.join(", ")),
            ));
        }
    }

    if let Some(url) = &s.database.url {
        let url = url.expose();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            issues.push(ConfigIssue::new(
                "DATABASE_URL",
                "expected a postgres:// or postgresql:// URL",
            ));
        }
    }
    if let Some(url) = &s.server.public_url {
        check_url(&mut issues, "server", "public_url", url, &["http", "https"]);
        if production && !url.starts_with("https://") {
            issues.push(ConfigIssue::new(
                "PUBLIC_URL",
                "must be an https:// URL in production (Twilio streams need wss://)",
            ));
        }
    }
    check_url(
        &mut issues,
        "openai",
        "base_url",
        &s.openai.base_url,
        &["http", "https"],
    );
    check_url(
        &mut issues,
        "openai",
        "realtime_url",
        &s.openai.realtime_url,
        &["ws", "wss"],
    );
    check_url(
        &mut issues,
        "twilio",
        "api_base",
        &s.twilio.api_base,
        &["http", "https"],
    );
    check_url(
        &mut issues,
        "stripe",
        "api_base",
        &s.stripe.api_base,
        &["http", "https"],
    );

    if production && !s.server.verify_signatures {
        issues.push(ConfigIssue::new(
            variable_for("server", "verify_signatures"),
            "signature checks cannot be switched off in production",
        ));
    }
    if let Some(token) = &s.admin.token {
        if token.expose().len() < 16 {
            issues.push(ConfigIssue::new(
                "ADMIN_TOKEN",
                "must be at least 16 characters",
            ));
        }
    }
    if let Some(secret) = &s.stream.token_secret {
        if secret.expose().len() < 32 {
            issues.push(ConfigIssue::new(
                "STREAM_TOKEN_SECRET",
                "must be at least 32 characters",
            ));
        }
    }
    let positive = [
        ("database", "pool_size", s.database.pool_size as u64),
        (
            "database",
            "sync_pool_size",
            u64::from(s.database.sync_pool_size),
        ),
        ("stream", "token_ttl_seconds", s.stream.token_ttl_seconds),
        (
            "calls",
            "persistence_batch_size",
            s.calls.persistence_batch_size as u64,
        ),
        (
            "calls",
            "persistence_flush_ms",
            s.calls.persistence_flush_ms,
        ),
        ("calls", "max_call_seconds", s.calls.max_call_seconds),
        ("server", "max_body_bytes", s.server.max_body_bytes as u64),
    ];
    for (section, key, value) in positive {
        if value == 0 {
            issues.push(ConfigIssue::new(
                variable_for(section, key),
                "must be at least 1",
            ));
        }
    }
    check_rate_limits(&mut issues, &s.rate_limits);
    issues
}

/// Each class's rate is 0 (off) or a sane positive number with a bucket of at least 1.
fn check_rate_limits(issues: &mut Vec<ConfigIssue>, r: &super::RateLimitSettings) {
    let classes = [
        ("twilio", r.twilio_per_second, r.twilio_burst),
        ("webhooks", r.webhooks_per_second, r.webhooks_burst),
        ("admin", r.admin_per_second, r.admin_burst),
        (
            "admin_failures",
            r.admin_failures_per_second,
            r.admin_failures_burst,
        ),
        ("probes", r.probes_per_second, r.probes_burst),
    ];
    for (class, rate, burst) in classes {
        if !(rate == 0.0 || (0.001..=1_000_000.0).contains(&rate)) {
            issues.push(ConfigIssue::new(
                variable_for("rate_limits", &format!("{class}_per_second")),
                format!("expected 0 (off) or a rate between 0.001 and 1000000, got {rate}"),
            ));
        }
        if rate > 0.0 && burst == 0 {
            issues.push(ConfigIssue::new(
                variable_for("rate_limits", &format!("{class}_burst")),
                "must be at least 1 while the class is on",
            ));
        }
    }
    if r.log_sample_seconds == 0 {
        issues.push(ConfigIssue::new(
            variable_for("rate_limits", "log_sample_seconds"),
            "must be at least 1",
        ));
    }
}

fn is_set(s: &Settings, section: &str, key: &str) -> bool {
    match (section, key) {
        ("database", "url") => s.database.url.is_some(),
        ("server", "public_url") => s.server.public_url.is_some(),
        ("openai", "api_key") => s.openai.api_key.is_some(),
        ("openai", "webhook_secret") => s.openai.webhook_secret.is_some(),
        ("twilio", "account_sid") => s.twilio.account_sid.is_some(),
        ("twilio", "auth_token") => s.twilio.auth_token.is_some(),
        ("stream", "token_secret") => s.stream.token_secret.is_some(),
        ("admin", "token") => s.admin.token.is_some(),
        ("stripe", "secret_key") => s.stripe.secret_key.is_some(),
        ("stripe", "webhook_secret") => s.stripe.webhook_secret.is_some(),
        _ => false,
    }
}

fn check_url(
    issues: &mut Vec<ConfigIssue>,
    section: &str,
    key: &str,
    value: &str,
    schemes: &[&str],
) {
    let ok = value.split_once("://").is_some_and(|(scheme, rest)| {
        schemes.contains(&scheme) && !rest.is_empty() && !rest.starts_with('/')
    });
    if !ok {
        issues.push(ConfigIssue::new(
            variable_for(section, key),
            format!("expected a {} URL, got {value:?}", schemes.join("/")),
        ));
    }
}
