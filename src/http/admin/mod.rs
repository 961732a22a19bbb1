//! The admin API under `/admin`: JSON in and out, one file per resource
//! (pool, calls, campaigns, usage, audit).
//!
//! Every request passes [`authenticate`] first: `Authorization: Bearer
//! <ADMIN_TOKEN>`, compared in constant time over SHA-256 digests (so not
//! even the token's length leaks); 401 without credentials, 403 with wrong
//! ones. Wrong tokens spend a per-source bucket of their own
//! (`rate_limits.admin_failures_*`): a source that empties it is refused
//! (429) whatever token it sends until its next guess is due, while other
//! sources, and a correct token, spend nothing of it. Every change is
//! written to `audit_log` (who, what, on what, with which details) in the
//! same transaction as the change when the change is in the database, and
//! logged as `ADMIN_ACTION`. Errors are
//! `{"error": "<stable_code>", "message": "..."}` ([`ApiError`]); bad input
//! changes nothing.
//!
//! Tenant scope: the read endpoints take `?tenant=<uuid>` and then show that
//! tenant's data only (its numbers and leases, its calls, its campaigns, its
//! usage); an object of another tenant is answered 404, as if it did not exist.

pub mod audit;
pub mod calls;
pub mod campaigns;
pub mod pool;
pub mod usage;

use std::collections::HashMap;
use std::future::{ready, Ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::AsyncPgConnection;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use callvisor_actors::events;
use callvisor_actors::redact::Escaped;

use crate::db;
use crate::http::error::ApiError;
use crate::state::AppState;
use callvisor_wire::signing::constant_time_eq;

/// Registers the admin routes (all behind [`authenticate`]).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .wrap(from_fn(authenticate))
            // Outermost: every admin request spends the admin class first.
            .wrap(from_fn(crate::http::rate_limit::admin))
            .app_data(
                web::JsonConfig::default()
                    .limit(256 * 1024)
                    .error_handler(|e, _req| json_error(e).into()),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, _req| query_error(e).into()))
            .app_data(web::PathConfig::default().error_handler(|e, _req| {
                ApiError::bad_request("invalid_path", e.to_string()).into()
            }))
            .route("/pool", web::get().to(pool::status))
            .route("/pool/numbers", web::post().to(pool::add))
            .route("/pool/import", web::post().to(pool::import))
            .route("/pool/numbers/{number}", web::get().to(pool::show))
            .route("/pool/numbers/{number}", web::delete().to(pool::remove))
            .route(
                "/pool/numbers/{number}/assign",
                web::post().to(pool::assign),
            )
            .route(
                "/pool/numbers/{number}/unassign",
                web::post().to(pool::unassign),
            )
            .route(
                "/pool/numbers/{number}/status",
                web::post().to(pool::set_status),
            )
            .route("/pool/allocations", web::post().to(pool::allocate))
            .route(
                "/pool/allocations/{holder}",
                web::delete().to(pool::release),
            )
            .route("/calls", web::get().to(calls::live))
            .route("/calls/{call_sid}/hangup", web::post().to(calls::hang_up))
            .route(
                "/calls/{call_sid}/transfer",
                web::post().to(calls::transfer),
            )
            .route("/campaigns", web::post().to(campaigns::create))
            .route("/campaigns", web::get().to(campaigns::list))
            .route("/campaigns/{id}", web::get().to(campaigns::show))
            .route("/campaigns/{id}/cancel", web::post().to(campaigns::cancel))
            .route(
                "/campaigns/{id}/targets/{target}/retry",
                web::post().to(campaigns::retry_target),
            )
            .route("/usage", web::get().to(usage::usage))
            .route("/audit", web::get().to(audit::recent))
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::not_found("not_found", "no such admin endpoint"))
            })),
    );
}

fn json_error(e: JsonPayloadError) -> ApiError {
    match e {
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send a JSON body with Content-Type: application/json",
        ),
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.to_string(),
            )
        }
        other => ApiError::bad_request("invalid_json", other.to_string()),
    }
}

fn query_error(e: QueryPayloadError) -> ApiError {
    ApiError::bad_request("invalid_query", e.to_string())
}

/// The authenticated operator, as written in `audit_log.actor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator(pub String);

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        // Set by `authenticate`; absent only if a route escaped the middleware.
        ready(req.extensions().get::<Operator>().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "authentication required",
            )
        }))
    }
}

/// Optional operator name for the audit log: `X-Admin-Actor: alice`.
const ACTOR_HEADER: &str = "X-Admin-Actor";

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Whether `given` is the admin token, in constant time (digests have one length).
pub fn token_matches(given: &str, expected: &str) -> bool {
    constant_time_eq(&digest(given.as_bytes()), &digest(expected.as_bytes()))
}

/// Checks the bearer token of every admin request and names the operator.
async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("application state missing"))?;
    if !state.settings.features.admin {
        return Err(ApiError::not_found("not_found", "the admin API is switched off").into());
    }
    let Some(expected) = state.settings.admin.token.as_ref() else {
        return Err(ApiError::unavailable("admin_unavailable", "ADMIN_TOKEN is not set").into());
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty());
    let path = req.path().to_owned();
    // A source cut off for wrong tokens is refused before its token is looked
    // at: otherwise the brute force would go on, only answered differently.
    let source = state.rate_limits.source(&req);
    state.rate_limits.admin_allowed(source)?;
    let Some(token) = presented else {
        log::warn!(
            "{} reason=missing_token method={} path={}",
            events::ADMIN_AUTH_FAILED,
            req.method(),
            Escaped(&path)
        );
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <ADMIN_TOKEN>",
        )
        .into());
    };
    if !token_matches(token, expected.expose()) {
        log::warn!(
            "{} reason=wrong_token method={} path={}",
            events::ADMIN_AUTH_FAILED,
            req.method(),
            Escaped(&path)
        );
        // One guess too many cuts the source off (429) from now on.
        state.rate_limits.admin_failed(source)?;
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "wrong admin token").into());
    }
    let actor = match req.headers().get(ACTOR_HEADER) {
        None => "admin".to_owned(),
        Some(value) => {
            let name = value.to_str().unwrap_or_default().trim();
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
            if !valid {
                return Err(ApiError::bad_request(
                    "invalid_actor",
                    "X-Admin-Actor must be 1 to 64 letters, digits, '.', '_', '-' or '@'",
                )
                .into());
            }
            format!("admin:{name}")
        }
    };
    req.extensions_mut().insert(Operator(actor));
    next.call(req).await
}

/// A database connection for a handler (503 when the database is away).
pub async fn connection(state: &AppState) -> Result<Object<AsyncPgConnection>, ApiError> {
    state
        .db
        .get()
        .await
        .map_err(|e| ApiError::from(db::DbError::from(e)))
}

/// Parses a UUID from a path or body, naming what it is on failure.
pub fn parse_uuid(value: &str, code: &'static str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value.trim())
        .map_err(|_| ApiError::bad_request(code, format!("{what} must be a UUID, got {value:?}")))
}

/// The `?tenant=<uuid>` scope of a read endpoint, checked to exist.
pub async fn tenant_scope(
    conn: &mut AsyncPgConnection,
    query: &HashMap<String, String>,
) -> Result<Option<Uuid>, ApiError> {
    let Some(raw) = query.get("tenant") else {
        return Ok(None);
    };
    let tenant = parse_uuid(raw, "invalid_tenant", "tenant")?;
    if db::tenants::find_by_id(conn, tenant).await?.is_none() {
        return Err(ApiError::not_found(
            "tenant_not_found",
            format!("no tenant {tenant}"),
        ));
    }
    Ok(Some(tenant))
}

/// Logs an admin change (the audit row is written by the handler).
pub fn log_action(operator: &Operator, action: &str, target: &str, outcome: &str) {
    log::info!(
        "{} actor={} action={action} target={target} outcome={outcome}",
        events::ADMIN_ACTION,
        operator.0
    );
}

/// Rounds a price to 1/10000 of a dollar.
pub fn usd(amount: f64) -> f64 {
    (amount * 10_000.0).round() / 10_000.0
}
