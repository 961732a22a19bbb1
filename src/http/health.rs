//! `/healthz`: the process answers. `/readyz`: this instance should get
//! traffic: the database answers, its schema is this binary's, and the
//! instance is not draining. Load balancers poll these.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::db::readiness;
use crate::startup::AppState;

/// How long `/readyz` waits for the database before calling it down.
const READINESS_DB_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "instance": state.instance_id }))
}

/// `GET /readyz`
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.lifecycle.is_draining() {
        return HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "draining", "instance": state.instance_id }));
    }
    match readiness::check(&state.db, READINESS_DB_TIMEOUT).await {
        Ok(status) if status.applied == state.expected_migration => {
            HttpResponse::Ok().json(json!({
                "status": "ready",
                "instance": state.instance_id,
                "database": "ok",
                "migration": status.applied,
            }))
        }
        Ok(status) => HttpResponse::ServiceUnavailable().json(json!({
            "status": "migrations_pending",
            "instance": state.instance_id,
            "database": "ok",
            "migration": status.applied,
            "expected_migration": state.expected_migration,
        })),
        Err(e) => {
            log::warn!(
                "{} check=readyz error={:?}",
                callvisor_actors::events::DB_UNAVAILABLE,
                e.to_string()
            );
            HttpResponse::ServiceUnavailable().json(json!({
                "status": "unavailable",
                "instance": state.instance_id,
                "database": "unreachable",
            }))
        }
    }
}
