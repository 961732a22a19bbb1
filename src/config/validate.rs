//! Start-up validation: every problem at once, each naming the variable to set,
//! and only what the enabled features need.

use super::names::variable_for;
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

/// A URL setting: section, key, value (if set), schemes allowed, and the
/// only scheme allowed in production.
type UrlRule<'a> = (&'a str, &'a str, Option<&'a str>, &'a [&'a str], &'a str);

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
    // SIP calls: the webhook is verified with its secret, calls are
    // accepted through the REST API with the key.
    if serving && s.features.openai_sip {
        req.need("openai", "webhook_secret", "openai_sip");
        req.need("openai", "api_key", "openai_sip");
    }
    // `billing` switches on nothing yet (no Stripe reporting is built): it
    // requires no secret until the feature exists, or an operator would be
    // made to provision credentials for code that never reads them.
    if serving && s.features.summaries {
        req.need("openai", "api_key", "summaries");
    }
    if serving && s.features.admin {
        req.need("admin", "token", "admin");
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
    // Every URL the service talks to or is reached at: (section, key, value,
    // schemes allowed, the only one allowed in production). In production a
    // plain http:// or ws:// URL would carry API keys, signed webhooks and
    // callers' audio in clear, so each is refused, all reported at once.
    let urls: [UrlRule; 5] = [
        (
            "server",
            "public_url",
            s.server.public_url.as_deref(),
            &["http", "https"],
            "https",
        ),
        (
            "openai",
            "base_url",
            Some(&s.openai.base_url),
            &["http", "https"],
            "https",
        ),
        (
            "openai",
            "realtime_url",
            Some(&s.openai.realtime_url),
            &["ws", "wss"],
            "wss",
        ),
        (
            "twilio",
            "api_base",
            Some(&s.twilio.api_base),
            &["http", "https"],
            "https",
        ),
        (
            "stripe",
            "api_base",
            Some(&s.stripe.api_base),
            &["http", "https"],
            "https",
        ),
    ];
    for (section, key, value, schemes, secure) in urls {
        let Some(value) = value else { continue };
        if let Some(problem) = url_problem(value, schemes, production.then_some(secure)) {
            issues.push(ConfigIssue::new(variable_for(section, key), problem));
        }
    }

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
        // 0 would refuse every media socket (no time, or no room, for `start`).
        (
            "calls",
            "stream_start_timeout_ms",
            s.calls.stream_start_timeout_ms,
        ),
        (
            "calls",
            "stream_max_awaiting_start",
            s.calls.stream_max_awaiting_start as u64,
        ),
        (
            "calls",
            "stream_max_held_bytes",
            s.calls.stream_max_held_bytes as u64,
        ),
        ("calls", "max_held_audio_ms", s.calls.max_held_audio_ms),
        (
            "calls",
            "max_held_audio_bytes",
            s.calls.max_held_audio_bytes as u64,
        ),
        (
            "calls",
            "max_agent_audio_bytes",
            s.calls.max_agent_audio_bytes as u64,
        ),
        (
            "calls",
            "max_upstream_queued_bytes",
            s.calls.max_upstream_queued_bytes as u64,
        ),
        (
            "calls",
            "shutdown_flush_seconds",
            s.calls.shutdown_flush_seconds,
        ),
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

/// What is wrong with a URL, if anything: not `scheme://host…` with one of
/// `schemes`, or, in production (`secure` set), not that secure scheme.
fn url_problem(value: &str, schemes: &[&str], secure: Option<&str>) -> Option<String> {
    let scheme = value.split_once("://").and_then(|(scheme, rest)| {
        (schemes.contains(&scheme) && !rest.is_empty() && !rest.starts_with('/')).then_some(scheme)
    });
    match (scheme, secure) {
        (None, _) => Some(format!(
            "expected a {} URL, got {value:?}",
            schemes.join("/")
        )),
        (Some(scheme), Some(secure)) if scheme != secure => Some(format!(
            "must use {secure}:// in production, not {scheme}:// (it would carry \
             credentials and calls in clear)"
        )),
        _ => None,
    }
}

/// Why a process that did not set `APP_ENV` looks like a live deployment;
/// empty when it does not. The rule (README, "Configuration"): a live Stripe
/// key (`sk_live_`/`rk_live_`), a Twilio auth token of a real one's shape (32
/// hex digits), or a `PUBLIC_URL` that is not loopback while any vendor
/// credential (OpenAI key, Twilio token, Stripe key) is set. Such a process
/// must say which environment it is rather than be taken for development.
pub(super) fn production_signs(s: &Settings) -> Vec<&'static str> {
    let mut signs = Vec::new();
    let stripe_key = s.stripe.secret_key.as_ref().map(|k| k.expose());
    if stripe_key.is_some_and(|k| k.starts_with("sk_live_") || k.starts_with("rk_live_")) {
        signs.push("STRIPE_SECRET_KEY is a live key");
    }
    let twilio_token = s.twilio.auth_token.as_ref().map(|t| t.expose());
    if twilio_token.is_some_and(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit())) {
        signs.push("TWILIO_AUTH_TOKEN has the shape of a real one");
    }
    let credentials = s.openai.api_key.is_some() || twilio_token.is_some() || stripe_key.is_some();
    let public = s
        .server
        .public_url
        .as_deref()
        .is_some_and(|url| !is_loopback_url(url));
    if public && credentials {
        signs.push("PUBLIC_URL is not a loopback address and vendor credentials are set");
    }
    signs
}

/// True when `url`'s host is `localhost` (or `*.localhost`) or a loopback IP.
fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = match host_port.strip_prefix('[') {
        // [v6]:port
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host_port.split(':').next().unwrap_or(host_port),
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_from_public_ones() {
        for local in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "https://api.localhost/x",
            "http://[::1]:9000/",
            "http://127.5.0.1",
        ] {
            assert!(is_loopback_url(local), "{local}");
        }
        for public in [
            "https://engine.example.com",
            "https://127.0.0.1.example.com",
            "http://10.0.0.1",
            "https://localhost.example.com:443",
        ] {
            assert!(!is_loopback_url(public), "{public}");
        }
    }

    #[test]
    fn production_takes_only_the_secure_scheme() {
        assert_eq!(
            url_problem("https://a.b", &["http", "https"], Some("https")),
            None
        );
        assert!(url_problem("http://a.b", &["http", "https"], Some("https")).is_some());
        assert_eq!(url_problem("http://a.b", &["http", "https"], None), None);
        assert!(url_problem("ftp://a.b", &["http", "https"], None).is_some());
    }
}
