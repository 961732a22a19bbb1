//! The HTTP surface: one route table, legacy aliases declared next to the
//! paths they alias.

pub mod admin;
pub mod client_addr;
pub mod error;
pub mod health;
pub mod metrics;
pub mod openai_webhook;
pub mod rate_limit;
pub mod readiness;
pub mod twilio_auth;
pub mod twilio_media;
pub mod twilio_status;
pub mod twilio_voice;

use actix_web::middleware::from_fn;
use actix_web::{guard, web};

use crate::state::AppState;

/// Registers every route, each behind its class's rate limit (`/healthz`,
/// which does nothing but answer, is not limited).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .service(
            web::resource("/readyz")
                .wrap(from_fn(rate_limit::probes))
                .get(health::readyz),
        )
        .service(
            web::resource("/metrics")
                .wrap(from_fn(rate_limit::probes))
                .get(metrics::metrics),
        )
        // Each Twilio path (and the old engine's alias next to it) is counted
        // in the `twilio` class; a media socket once, at its upgrade, never per frame.
        .service(
            twilio("/twilio/voice")
                .wrap(from_fn(rate_limit::twilio))
                .post(twilio_voice::voice),
        )
        .service(
            twilio("/incoming-call-realtime")
                .wrap(from_fn(rate_limit::twilio))
                .post(twilio_voice::voice),
        )
        .service(
            twilio("/twilio/media")
                .wrap(from_fn(rate_limit::twilio))
                .get(twilio_media::media),
        )
        .service(
            twilio("/twilio-media")
                .wrap(from_fn(rate_limit::twilio))
                .get(twilio_media::media),
        )
        .service(
            twilio("/twilio/status")
                .wrap(from_fn(rate_limit::twilio))
                .post(twilio_status::status),
        )
        .service(
            web::resource("/openai/webhook")
                .wrap(from_fn(rate_limit::webhooks))
                .post(openai_webhook::webhook),
        )
        .configure(admin::routes);
}

/// A Twilio resource, there only with `features.twilio_voice`: switched off,
/// its path is not matched at all (404, as if never built), and nothing
/// behind it can be reached.
fn twilio(path: &str) -> actix_web::Resource {
    web::resource(path).guard(guard::fn_guard(|ctx| {
        ctx.app_data::<web::Data<AppState>>()
            .is_some_and(|state| state.settings.features.twilio_voice)
    }))
}
