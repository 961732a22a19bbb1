//! The HTTP surface: one route table, legacy aliases declared next to the
//! paths they alias.

pub mod admin;
pub mod error;
pub mod health;
pub mod metrics;
pub mod twilio_auth;
pub mod twilio_media;
pub mod twilio_status;
pub mod twilio_voice;
pub mod twiml;

use actix_web::{guard, web};

use crate::startup::AppState;

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::metrics))
        .service(twilio("/twilio/voice").route(web::post().to(twilio_voice::voice)))
        // The old engine's path for the same webhook.
        .service(twilio("/incoming-call-realtime").route(web::post().to(twilio_voice::voice)))
        .service(twilio("/twilio/media").route(web::get().to(twilio_media::media)))
        // The old engine's path for the same socket.
        .service(twilio("/twilio-media").route(web::get().to(twilio_media::media)))
        .service(twilio("/twilio/status").route(web::post().to(twilio_status::status)))
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
