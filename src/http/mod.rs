//! The HTTP surface: one route table, legacy aliases declared next to the
//! paths they alias.

pub mod admin;
pub mod client_addr;
pub mod error;
pub mod health;
pub mod metrics;
pub mod rate_limit;
pub mod readiness;
pub mod twilio_auth;
pub mod twilio_media;
pub mod twilio_status;
pub mod twilio_voice;
pub mod twiml;

use actix_web::middleware::from_fn;
use actix_web::web;

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
        .service(
            // The second path is the old engine's for the same webhook.
            web::resource(["/twilio/voice", "/incoming-call-realtime"])
                .wrap(from_fn(rate_limit::twilio))
                .post(twilio_voice::voice),
        )
        .service(
            // Counted once per socket, at the upgrade; frames are not.
            // The second path is the old engine's for the same socket.
            web::resource(["/twilio/media", "/twilio-media"])
                .wrap(from_fn(rate_limit::twilio))
                .get(twilio_media::media),
        )
        .service(
            web::resource("/twilio/status")
                .wrap(from_fn(rate_limit::twilio))
                .post(twilio_status::status),
        )
        .configure(admin::routes);
}
