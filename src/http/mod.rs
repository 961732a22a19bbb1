//! The HTTP surface: one route table, legacy aliases declared next to the
//! paths they alias.

pub mod error;
pub mod health;

use actix_web::web;

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz));
}
