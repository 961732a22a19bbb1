//! The HTTP surface: one route table, legacy aliases declared next to the
//! paths they alias.

pub mod admin;
pub mod error;
pub mod health;
pub mod metrics;
pub mod openai_webhook;
pub mod twilio_auth;
pub mod twilio_media;
pub mod twilio_status;
pub mod twilio_voice;
pub mod twiml;

use actix_web::web;

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::metrics))
        .route("/twilio/voice", web::post().to(twilio_voice::voice))
        // The old engine's path for the same webhook.
        .route("/incoming-call-realtime", web::post().to(twilio_voice::voice))
        .route("/twilio/media", web::get().to(twilio_media::media))
        // The old engine's path for the same socket.
        .route("/twilio-media", web::get().to(twilio_media::media))
        .route("/twilio/status", web::post().to(twilio_status::status))
        .route("/openai/webhook", web::post().to(openai_webhook::webhook))
        .configure(admin::routes);
}
