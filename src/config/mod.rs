//! Typed settings, loaded in layers and validated all at once.
//!
//! `config/default.toml` lists every key with its default; `config/$APP_ENV.toml`
//! overrides some; `.env` and the environment override those (see [`load`]).
//! [`Settings::validate`] then reports every missing or malformed setting that
//! the *enabled* features need, in one message.

mod load;
mod names;
mod validate;

pub use load::{load, load_from, ConfigError, EnvVars};
pub use validate::ConfigIssue;

use serde::Deserialize;

use crate::secret::{self, Secret};

/// What the settings are loaded for: only its needs are required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Serving calls: every enabled feature's settings are required.
    Serve,
    /// Migrating or checking the database: only `DATABASE_URL` is.
    Migrate,
}

/// Which deployment this is; picks `config/<env>.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppEnv {
    /// A laptop: signature checks may be switched off, secrets may be generated.
    Development,
    /// The real thing: every check on, every secret required.
    Production,
    /// The test suite.
    Test,
}

impl AppEnv {
    /// Parses `APP_ENV`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "development" => Some(Self::Development),
            "production" => Some(Self::Production),
            "test" => Some(Self::Test),
            _ => None,
        }
    }

    /// The name used in file names and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
            Self::Test => "test",
        }
    }
}

/// All settings. Field docs live in `config/default.toml`, which is the reference.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Set from `APP_ENV`, not from the files.
    #[serde(skip_deserializing, default = "default_env")]
    pub app_env: AppEnv,
    pub features: Features,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub openai: OpenAiSettings,
    pub twilio: TwilioSettings,
    pub stripe: StripeSettings,
    pub admin: AdminSettings,
    pub stream: StreamSettings,
    pub calls: CallSettings,
    pub pool: PoolSettings,
    pub campaigns: CampaignSettings,
    pub logging: LoggingSettings,
    pub rate_limits: RateLimitSettings,
}

fn default_env() -> AppEnv {
    AppEnv::Development
}

/// Which parts of the service are switched on; validation requires only their settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    pub twilio_voice: bool,
    pub admin: bool,
    pub billing: bool,
    pub openai_sip: bool,
    pub summaries: bool,
}

/// The HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    #[serde(deserialize_with = "non_empty")]
    pub public_url: Option<String>,
    pub verify_signatures: bool,
    pub workers: usize,
    pub max_body_bytes: usize,
    pub shutdown_timeout_seconds: u64,
    /// Load balancers whose `X-Forwarded-For` names the client (IPs or CIDRs).
    #[serde(deserialize_with = "network_list")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// PostgreSQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Holds credentials, hence a secret.
    #[serde(deserialize_with = "secret::optional")]
    pub url: Option<Secret>,
    pub pool_size: usize,
    pub sync_pool_size: u32,
    pub startup_retry_seconds: u64,
    pub connect_timeout_seconds: u64,
}

/// OpenAI: Realtime, the text model, the SIP webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiSettings {
    #[serde(deserialize_with = "secret::optional")]
    pub api_key: Option<Secret>,
    pub base_url: String,
    pub realtime_url: String,
    pub realtime_model: String,
    pub model_mini: String,
    pub default_voice: String,
    pub transcription_model: String,
    #[serde(deserialize_with = "secret::optional")]
    pub webhook_secret: Option<Secret>,
}

/// Twilio REST and webhook signing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettings {
    #[serde(deserialize_with = "non_empty")]
    pub account_sid: Option<String>,
    #[serde(deserialize_with = "secret::optional")]
    pub auth_token: Option<Secret>,
    pub api_base: String,
}

/// Stripe billing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeSettings {
    #[serde(deserialize_with = "secret::optional")]
    pub secret_key: Option<Secret>,
    #[serde(deserialize_with = "secret::optional")]
    pub webhook_secret: Option<Secret>,
    #[serde(deserialize_with = "non_empty")]
    pub usage_price_id: Option<String>,
    pub api_base: String,
    pub meter_event_name: String,
}

/// The admin API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    #[serde(deserialize_with = "secret::optional")]
    pub token: Option<Secret>,
}

/// Media-stream tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSettings {
    #[serde(deserialize_with = "secret::optional")]
    pub token_secret: Option<Secret>,
    pub token_ttl_seconds: u64,
}

/// Live calls and their persistence.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSettings {
    pub drain_seconds: u64,
    pub persistence_batch_size: usize,
    pub persistence_flush_ms: u64,
    pub realtime_max_reconnects: u32,
    pub realtime_connect_timeout_ms: u64,
    pub summary_retry_seconds: u64,
    pub preopen_realtime: bool,
    pub preopen_timeout_seconds: u64,
    // Bounds of a call and of shutdown (README, "Bounds").
    /// Milliseconds of caller audio held until the agent's session is ready.
    pub max_held_audio_ms: u64,
    /// Base64 bytes of caller audio held until then.
    pub max_held_audio_bytes: usize,
    /// Base64 bytes of agent audio sent to Twilio and not yet played.
    pub max_agent_audio_bytes: usize,
    /// Bytes waiting in a Realtime connection's writer before caller audio is dropped.
    pub max_upstream_queued_bytes: usize,
    /// The longest a call may last, in seconds.
    pub max_call_seconds: u64,
    /// Seconds the transcript flush at shutdown may take before the rest is spilled.
    pub shutdown_flush_seconds: u64,
    /// Directory of spill files (relative to the working directory unless
    /// absolute); empty: nothing is spilled, unwritten segments are reported lost.
    pub spill_dir: String,
    // Media-socket bounds (README, "Security"): a socket must send `start`
    // within `stream_start_timeout_ms`; at most `stream_max_awaiting_start`
    // sockets wait for it at once; a second socket takes over a live call
    // only after the first was silent `stream_handover_silence_ms` (or
    // closed, and then within `stream_handover_grace_ms`); caller audio held
    // while a call is found is at most `stream_max_held_bytes`.
    pub stream_start_timeout_ms: u64,
    pub stream_max_awaiting_start: usize,
    pub stream_handover_silence_ms: u64,
    pub stream_handover_grace_ms: u64,
    pub stream_max_held_bytes: usize,
}

/// The phone-number pool: allocation policy, leases, provisioning and prices
/// (every key is documented in `config/default.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSettings {
    /// Plans whose tenants use their dedicated numbers first.
    #[serde(deserialize_with = "plan_list")]
    pub dedicated_plans: Vec<String>,
    /// Plans whose tenants may use the shared pool.
    #[serde(deserialize_with = "plan_list")]
    pub shared_plans: Vec<String>,
    /// How long a lease lasts without renewal.
    pub lease_ms: u64,
    /// How often this instance renews its leases.
    pub renew_ms: u64,
    /// Longest time a lease is renewed.
    pub max_hold_seconds: u64,
    /// Buy numbers when the pool runs dry and to keep `min_available` free.
    pub auto_provision: bool,
    /// Free shared numbers kept by buying ahead.
    pub min_available: u32,
    /// Numbers the pool may hold in all.
    pub max_numbers: u32,
    /// ISO country of bought numbers.
    pub provision_country: String,
    /// Area code of bought numbers, when one is wanted.
    #[serde(deserialize_with = "non_empty")]
    pub provision_area_code: Option<String>,
    /// Idle time after which a free shared number is released (0: never).
    pub idle_release_seconds: u64,
    /// Time between background rounds.
    pub maintenance_interval_ms: u64,
    /// Rental price of one number for a month, USD.
    pub number_month_price_usd: f64,
    /// Price of an inbound minute, USD.
    pub inbound_minute_price_usd: f64,
    /// Price of an outbound minute, USD.
    pub outbound_minute_price_usd: f64,
}

/// Outbound campaigns (every key is documented in `config/default.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSettings {
    /// Calls at once per campaign when the request does not say.
    pub default_concurrency: u32,
    /// Largest list accepted.
    pub max_targets: usize,
    /// Time between runner rounds.
    pub tick_ms: u64,
    /// Admitted-but-not-dialled targets older than this are put back.
    pub claim_timeout_seconds: u64,
    /// `dialing` targets without a CallSid older than this become `uncertain`.
    pub dial_timeout_seconds: u64,
    /// Twilio's ring `Timeout`.
    pub ring_timeout_seconds: u64,
    /// Back-off after an exhausted pool or a refused request.
    pub retry_seconds: u64,
    /// Refused attempts before a target fails.
    pub max_attempts: u32,
    /// A placed call without news is no longer kept live after this.
    pub max_call_seconds: u64,
}

/// Where logs go besides stderr.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingSettings {
    #[serde(deserialize_with = "non_empty")]
    pub dir: Option<String>,
}

/// Per-source token buckets (every key is documented in `config/default.toml`):
/// a refill rate per second and a bucket size per class; a rate of 0 is off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// `/twilio/*` and its legacy aliases (media sockets at upgrade).
    pub twilio_per_second: f64,
    pub twilio_burst: u32,
    /// `/openai/webhook`, `/stripe/webhook`.
    pub webhooks_per_second: f64,
    pub webhooks_burst: u32,
    /// Every `/admin` request.
    pub admin_per_second: f64,
    pub admin_burst: u32,
    /// Wrong admin tokens only.
    pub admin_failures_per_second: f64,
    pub admin_failures_burst: u32,
    /// `/readyz`, `/metrics`.
    pub probes_per_second: f64,
    pub probes_burst: u32,
    /// `RATE_LIMITED` lines: one per source per this many seconds, with a count.
    pub log_sample_seconds: u64,
}

/// Deserializes a comma-separated list of IP addresses and CIDR networks.
fn network_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    let value = String::deserialize(d)?;
    let mut networks = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let network = entry
            .parse::<ipnet::IpNet>()
            .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "{entry:?} in server.trusted_proxies is not an IP address or CIDR network"
                ))
            })?;
        networks.push(network.trunc());
    }
    Ok(networks)
}

/// Deserializes a comma-separated list of plans (`standard`, `enterprise`).
fn plan_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let value = String::deserialize(d)?;
    let mut plans = Vec::new();
    for plan in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if plan != "standard" && plan != "enterprise" {
            return Err(serde::de::Error::custom(format!(
                "unknown plan {plan:?} in a pool plan list (expected standard, enterprise)"
            )));
        }
        plans.push(plan.to_owned());
    }
    Ok(plans)
}

/// Deserializes an optional string where the empty string means "not set".
fn non_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = String::deserialize(d)?;
    Ok((!value.is_empty()).then_some(value))
}
