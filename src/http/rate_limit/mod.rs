//! Rate limits (SPEC §9): token buckets per source address, in memory on each
//! instance, one set per class of endpoint (`[rate_limits]`): Twilio's
//! webhooks and media socket upgrades, the vendors' webhooks, the admin API,
//! the probes. Over the limit: 429 with `Retry-After`. Wrong admin tokens
//! spend a stricter bucket of their own (see [`bucket::FailureGate`]).
//!
//! A route is limited by wrapping it: `.wrap(from_fn(rate_limit::webhooks))`.
//! The source is the client as [`client_addr`](super::client_addr) finds it
//! behind trusted proxies. Refusals are logged as `RATE_LIMITED`, sampled
//! ([`sample`]), and a sweeper forgets refilled buckets once a second so a
//! flood of distinct addresses cannot grow memory without bound.
//!
//! Why `governor` directly rather than `actix-governor`: the latter is
//! GPL-3.0 (this project is MIT), it cannot express a bucket spent only by
//! failed admin tokens, and its refusals would need the same hooks for the
//! sampled log and the `Retry-After` rounding as written here.

pub mod bucket;
pub mod sample;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};
use callvisor_actors::events;
use governor::clock::{Clock, MonotonicClock};
use ipnet::IpNet;
use serde_json::json;

use super::client_addr;
use crate::config::RateLimitSettings;
use crate::state::AppState;
use bucket::{Buckets, FailureGate, Limit};
use sample::{Line, Sampler};

/// How often refilled buckets are forgotten and sampled counts are logged.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A class of endpoints sharing one set of buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `/twilio/*` and the old engine's aliases.
    Twilio,
    /// `/openai/webhook`, `/stripe/webhook`.
    Webhooks,
    /// Every `/admin` request.
    Admin,
    /// `/readyz`, `/metrics`.
    Probes,
    /// Wrong admin tokens.
    AdminFailures,
}

impl Class {
    /// The name in `[rate_limits]` keys and in `RATE_LIMITED class=`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Twilio => "twilio",
            Self::Webhooks => "webhooks",
            Self::Admin => "admin",
            Self::Probes => "probes",
            Self::AdminFailures => "admin_failures",
        }
    }
}

/// 429: the source is over its class's limit.
#[derive(Debug, thiserror::Error)]
#[error("too many requests; retry in {retry_after_s} s")]
pub struct RateLimited {
    /// Whole seconds until a request may pass (at least 1).
    pub retry_after_s: u64,
}

impl RateLimited {
    fn after(wait: Duration) -> Self {
        let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            retry_after_s: whole.max(1),
        }
    }
}

impl ResponseError for RateLimited {
    fn status_code(&self) -> StatusCode {
        StatusCode::TOO_MANY_REQUESTS
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::TooManyRequests()
            .insert_header((header::RETRY_AFTER, self.retry_after_s.to_string()))
            .json(json!({ "error": "rate_limited", "message": self.to_string() }))
    }
}

/// One class: its buckets (`None`: off) and its log sampler.
struct Limited {
    class: Class,
    buckets: Option<Buckets>,
    sampler: Sampler<Instant>,
}

/// Every class's buckets, shared by all workers of the instance.
pub struct RateLimits {
    twilio: Limited,
    webhooks: Limited,
    admin: Limited,
    probes: Limited,
    admin_failures: Option<FailureGate>,
    admin_failures_sampler: Sampler<Instant>,
    trusted_proxies: Vec<IpNet>,
    log_window: Duration,
    clock: MonotonicClock,
    refused_total: AtomicU64,
}

impl RateLimits {
    /// Buckets as configured; `trusted_proxies` from `server.trusted_proxies`.
    pub fn new(settings: &RateLimitSettings, trusted_proxies: Vec<IpNet>) -> Self {
        let log_window = Duration::from_secs(settings.log_sample_seconds.max(1));
        let limited = |class, per_second, burst| Limited {
            class,
            buckets: Buckets::new(Limit { per_second, burst }, MonotonicClock),
            sampler: Sampler::new(log_window),
        };
        let s = settings;
        Self {
            twilio: limited(Class::Twilio, s.twilio_per_second, s.twilio_burst),
            webhooks: limited(Class::Webhooks, s.webhooks_per_second, s.webhooks_burst),
            admin: limited(Class::Admin, s.admin_per_second, s.admin_burst),
            probes: limited(Class::Probes, s.probes_per_second, s.probes_burst),
            admin_failures: FailureGate::new(
                Limit {
                    per_second: s.admin_failures_per_second,
                    burst: s.admin_failures_burst,
                },
                MonotonicClock,
            ),
            admin_failures_sampler: Sampler::new(log_window),
            trusted_proxies,
            log_window,
            clock: MonotonicClock,
            refused_total: AtomicU64::new(0),
        }
    }

    fn limited(&self, class: Class) -> Option<&Limited> {
        match class {
            Class::Twilio => Some(&self.twilio),
            Class::Webhooks => Some(&self.webhooks),
            Class::Admin => Some(&self.admin),
            Class::Probes => Some(&self.probes),
            Class::AdminFailures => None,
        }
    }

    /// The bucket key of a request's source.
    pub fn source(&self, req: &ServiceRequest) -> IpAddr {
        // Only a non-TCP transport has no peer: one shared bucket for those.
        let peer = req
            .peer_addr()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        client_addr::bucket_key(client_addr::client_ip(
            peer,
            req.headers(),
            &self.trusted_proxies,
        ))
    }

    /// Spends a token of `source` in `class`.
    pub fn check(&self, class: Class, source: IpAddr) -> Result<(), RateLimited> {
        let Some(limited) = self.limited(class) else {
            return Ok(());
        };
        let Some(buckets) = &limited.buckets else {
            return Ok(());
        };
        buckets.check(source).map_err(|wait| {
            let refused = RateLimited::after(wait);
            self.refused(limited.class, &limited.sampler, source, &refused);
            refused
        })
    }

    /// Refuses every admin request of a source cut off for wrong tokens.
    pub fn admin_allowed(&self, source: IpAddr) -> Result<(), RateLimited> {
        self.admin_gate(source, |gate| gate.blocked(source))
    }

    /// Records a wrong admin token; `Err` once it was one too many.
    pub fn admin_failed(&self, source: IpAddr) -> Result<(), RateLimited> {
        self.admin_gate(source, |gate| gate.failed(source))
    }

    /// Asks the wrong-token gate (when on) and refuses, logged and counted,
    /// when it says to wait.
    fn admin_gate(
        &self,
        source: IpAddr,
        ask: impl FnOnce(&FailureGate) -> Option<Duration>,
    ) -> Result<(), RateLimited> {
        let Some(wait) = self.admin_failures.as_ref().and_then(ask) else {
            return Ok(());
        };
        let refused = RateLimited::after(wait);
        self.refused(
            Class::AdminFailures,
            &self.admin_failures_sampler,
            source,
            &refused,
        );
        Err(refused)
    }

    fn refused(&self, class: Class, sampler: &Sampler<Instant>, source: IpAddr, r: &RateLimited) {
        self.refused_total.fetch_add(1, Ordering::Relaxed);
        if let Some(line) = sampler.record(source) {
            self.log(class, &line, Some(r.retry_after_s));
        }
    }

    fn log(&self, class: Class, line: &Line, retry_after_s: Option<u64>) {
        let class = class.name();
        let window_s = self.log_window.as_secs();
        match line {
            Line::First { source } => log::warn!(
                "{} class={class} source={source} retry_after_s={}",
                events::RATE_LIMITED,
                retry_after_s.unwrap_or(1)
            ),
            Line::Repeated { source, rejected } => log::warn!(
                "{} class={class} source={source} rejected={rejected} window_s={window_s}",
                events::RATE_LIMITED
            ),
            Line::Others { rejected } => log::warn!(
                "{} class={class} source=others rejected={rejected} window_s={window_s}",
                events::RATE_LIMITED
            ),
        }
    }

    /// Requests refused so far, all classes (`/metrics`).
    pub fn refused_total(&self) -> u64 {
        self.refused_total.load(Ordering::Relaxed)
    }

    /// Sources tracked across classes (the memory the limits hold).
    pub fn tracked_sources(&self) -> usize {
        let classes = [&self.twilio, &self.webhooks, &self.admin, &self.probes];
        classes
            .iter()
            .filter_map(|l| l.buckets.as_ref())
            .map(Buckets::len)
            .sum::<usize>()
            + self.admin_failures.as_ref().map_or(0, FailureGate::len)
    }

    /// Forgets refilled buckets and logs the counts of closed windows.
    fn sweep(&self) {
        let now = self.clock.now();
        for limited in [&self.twilio, &self.webhooks, &self.admin, &self.probes] {
            if let Some(buckets) = &limited.buckets {
                buckets.sweep();
            }
            for line in limited.sampler.tick(now) {
                self.log(limited.class, &line, None);
            }
        }
        if let Some(gate) = &self.admin_failures {
            gate.sweep();
        }
        for line in self.admin_failures_sampler.tick(now) {
            self.log(Class::AdminFailures, &line, None);
        }
    }

    /// Sweeps once a second on the current arbiter until the limits are dropped.
    pub fn spawn_sweeper(self: &Arc<Self>) {
        let limits: Weak<Self> = Arc::downgrade(self);
        actix_web::rt::spawn(async move {
            let mut interval = actix_web::rt::time::interval(SWEEP_INTERVAL);
            loop {
                interval.tick().await;
                let Some(limits) = limits.upgrade() else {
                    return;
                };
                limits.sweep();
            }
        });
    }
}

/// Limits `class` for the wrapped routes.
async fn limit<B: MessageBody>(
    class: Class,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
        let limits = &state.rate_limits;
        limits.check(class, limits.source(&req))?;
    }
    next.call(req).await
}

/// Middleware (`from_fn`): the `twilio` class.
pub async fn twilio(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    limit(Class::Twilio, req, next).await
}

/// Middleware (`from_fn`): the `webhooks` class (`/openai/webhook`, `/stripe/webhook`).
pub async fn webhooks(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    limit(Class::Webhooks, req, next).await
}

/// Middleware (`from_fn`): the `admin` class.
pub async fn admin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    limit(Class::Admin, req, next).await
}

/// Middleware (`from_fn`): the `probes` class.
pub async fn probes(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    limit(Class::Probes, req, next).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        let secs = |d| RateLimited::after(d).retry_after_s;
        assert_eq!(secs(Duration::from_millis(1)), 1);
        assert_eq!(secs(Duration::ZERO), 1);
        assert_eq!(secs(Duration::from_millis(1500)), 2);
        assert_eq!(secs(Duration::from_secs(10)), 10);
    }
}
