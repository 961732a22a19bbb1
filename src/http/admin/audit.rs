//! `GET /admin/audit[?tenant=][&limit=N]`: the newest audit rows (who changed
//! what, when); with a tenant, the rows whose details name that tenant.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{connection, tenant_scope, ApiError};
use crate::db::audit;
use crate::state::AppState;

/// `GET /admin/audit`
pub async fn recent(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let limit = match query.get("limit") {
        None => 100,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request("invalid_limit", "limit must be 1 to 1000"))?,
    };
    let mut conn = connection(&state).await?;
    let tenant = tenant_scope(&mut conn, &query).await?;
    let rows = audit::recent(&mut conn, tenant, limit).await?;
    Ok(HttpResponse::Ok().json(json!({ "entries": rows })))
}
