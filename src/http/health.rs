//! `/healthz`: the process answers. `/readyz`: this instance should get
//! traffic: the database answers, its schema is this binary's, and the
//! instance is not draining. Load balancers poll these. `/readyz` reuses
//! the database's answer for a second, so a flood of probes costs one
//! connection a second, not one each.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::readiness::DbReadiness;
use crate::state::AppState;

/// `GET /healthz`
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "instance": state.instance_id }))
}

/// `GET /readyz` (the database's part cached for a second: see `readiness`)
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.lifecycle.is_draining() {
        return HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "draining", "instance": state.instance_id }));
    }
    match state.readiness.get(&state.db).await {
        DbReadiness::Answered { applied } if applied == state.expected_migration => {
            HttpResponse::Ok().json(json!({
                "status": "ready",
                "instance": state.instance_id,
                "database": "ok",
                "migration": applied,
            }))
        }
        DbReadiness::Answered { applied } => HttpResponse::ServiceUnavailable().json(json!({
            "status": "migrations_pending",
            "instance": state.instance_id,
            "database": "ok",
            "migration": applied,
            "expected_migration": state.expected_migration,
        })),
        DbReadiness::Unreachable => HttpResponse::ServiceUnavailable().json(json!({
            "status": "unavailable",
            "instance": state.instance_id,
            "database": "unreachable",
        })),
    }
}
