//! `/admin/pool`: the phone-number pool. Status (counts, every number with
//! its lease, usage and monthly cost), add, import from the Twilio account,
//! remove, assign to / unassign from a tenant (dedicated numbers), set a
//! status (`maintenance`, ...), and lease / release a number by hand.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use callvisor_actors::ids::{TenantId, E164};
use callvisor_actors::phone_pool::messages::{Allocate, PoolError, Release};
use callvisor_actors::phone_pool::valid_holder;

use super::{connection, log_action, parse_uuid, tenant_scope, usd, ApiError, Operator};
use crate::db::numbers::{self, Change, ImportOutcome, NewNumber, NumberRow, SETTABLE_STATUSES};
use crate::db::{audit, tenants};
use crate::state::AppState;

/// 503 `pool_unavailable`: the pool actor or its store failed (the cause is logged).
fn pool_unavailable(e: impl std::error::Error + Send + Sync + 'static) -> ApiError {
    ApiError::unavailable("pool_unavailable", "the phone-number pool is unavailable").with_source(e)
}

fn number_json(row: &NumberRow, month_price: f64) -> Value {
    let lease = row.lease_holder.as_ref().map(|holder| {
        json!({
            "holder": holder,
            "instance": row.lease_instance,
            "tenant_id": row.lease_tenant,
            "expires_at": row.lease_expires_at,
            "expired": row.lease_expires_at.is_some_and(|t| t < chrono::Utc::now()),
        })
    });
    json!({
        "phone_number": row.phone_number,
        "status": row.status,
        "dedicated_to": row.dedicated_to,
        "provider_sid": row.provider_sid,
        "lease": lease,
        "usage": {
            "total_calls": row.total_calls,
            "total_seconds": row.total_seconds,
            "total_minutes": row.total_minutes,
            "last_used_at": row.last_used_at,
        },
        "monthly_cost_usd": usd(month_price),
        "created_at": row.created_at,
    })
}

/// A phone number from a path segment or a body field (400 when malformed).
pub fn parse_number(raw: &str) -> Result<String, ApiError> {
    E164::parse(raw).map(|n| n.to_string()).map_err(|e| {
        ApiError::bad_request(
            "invalid_phone_number",
            format!("{raw:?} is not a phone number in E.164 form (+ and 7 to 15 digits): {e}"),
        )
    })
}

/// `GET /admin/pool[?tenant=]`
pub async fn status(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = connection(&state).await?;
    let tenant = tenant_scope(&mut conn, &query).await?;
    let rows = numbers::list(&mut conn, tenant).await?;
    let price = state.settings.pool.number_month_price_usd;
    let mut counts: HashMap<&str, usize> = ["available", "in_use", "reserved", "maintenance"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    for row in &rows {
        if let Some(n) = counts.get_mut(row.status.as_str()) {
            *n += 1;
        }
    }
    let total = rows.len();
    Ok(HttpResponse::Ok().json(json!({
        "tenant_id": tenant,
        "counts": {
            "available": counts.get("available"),
            "in_use": counts.get("in_use"),
            "reserved": counts.get("reserved"),
            "maintenance": counts.get("maintenance"),
            "total": total,
        },
        "dedicated": rows.iter().filter(|r| r.dedicated_to.is_some()).count(),
        "monthly_cost_usd": usd(price * total as f64),
        "number_month_price_usd": price,
        "numbers": rows.iter().map(|r| number_json(r, price)).collect::<Vec<_>>(),
    })))
}

/// `GET /admin/pool/numbers/{number}`
pub async fn show(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let number = parse_number(&path)?;
    let mut conn = connection(&state).await?;
    let tenant = tenant_scope(&mut conn, &query).await?;
    let row = numbers::find(&mut conn, &number)
        .await?
        .filter(|r| tenant.is_none() || r.dedicated_to == tenant || r.lease_tenant == tenant)
        .ok_or_else(|| not_in_pool(&number))?;
    Ok(HttpResponse::Ok().json(number_json(
        &row,
        state.settings.pool.number_month_price_usd,
    )))
}

fn not_in_pool(number: &str) -> ApiError {
    ApiError::not_found("number_not_found", format!("{number} is not in the pool"))
}

/// A tenant referred to in a body: 422 when it does not exist.
async fn body_tenant(conn: &mut AsyncPgConnection, raw: &str) -> Result<tenants::Tenant, ApiError> {
    let id = parse_uuid(raw, "invalid_tenant", "tenant_id")?;
    tenants::find_by_id(conn, id)
        .await?
        .map(|(tenant, _)| tenant)
        .ok_or_else(|| ApiError::unprocessable("tenant_not_found", format!("no tenant {id}")))
}

fn check_dedicated_plan(state: &AppState, tenant: &tenants::Tenant) -> Result<(), ApiError> {
    if state.settings.pool.dedicated_plans.contains(&tenant.plan) {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "plan_not_dedicated",
            format!(
                "tenant {} is on the {} plan, which does not get dedicated numbers (pool.dedicated_plans)",
                tenant.id, tenant.plan
            ),
        ))
    }
}

/// Body of `POST /admin/pool/numbers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddNumber {
    /// E.164.
    pub phone_number: String,
    /// `available` (default), `reserved` or `maintenance`.
    #[serde(default)]
    pub status: Option<String>,
    /// Dedicate it to this tenant at once.
    #[serde(default)]
    pub dedicated_to: Option<String>,
    /// Twilio's `PN…`, when known (needed to release it later).
    #[serde(default)]
    pub provider_sid: Option<String>,
}

fn check_status(raw: &str) -> Result<&'static str, ApiError> {
    if raw == "in_use" {
        return Err(ApiError::unprocessable(
            "status_not_settable",
            "in_use is set by leases only",
        ));
    }
    SETTABLE_STATUSES
        .iter()
        .find(|s| **s == raw)
        .copied()
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_status",
                format!(
                    "status must be one of {}, got {raw:?}",
                    SETTABLE_STATUSES.join(", ")
                ),
            )
        })
}

/// `POST /admin/pool/numbers`
pub async fn add(
    state: web::Data<AppState>,
    operator: Operator,
    body: web::Json<AddNumber>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let number = parse_number(&body.phone_number)?;
    let status = check_status(body.status.as_deref().unwrap_or("available"))?;
    let provider_sid = body.provider_sid.filter(|s| !s.trim().is_empty());
    if let Some(sid) = &provider_sid {
        if !sid.starts_with("PN") || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ApiError::bad_request(
                "invalid_provider_sid",
                "provider_sid must be Twilio's PN… id",
            ));
        }
    }
    let mut conn = connection(&state).await?;
    let dedicated_to = match &body.dedicated_to {
        Some(raw) => {
            let tenant = body_tenant(&mut conn, raw).await?;
            check_dedicated_plan(&state, &tenant)?;
            Some(tenant.id)
        }
        None => None,
    };
    let actor = operator.0.clone();
    let row = {
        let number = number.clone();
        conn.transaction::<_, ApiError, _>(async move |conn| {
            let new = NewNumber {
                phone_number: &number,
                status,
                dedicated_to,
                provider_sid: provider_sid.as_deref(),
            };
            let Some(row) = numbers::add(conn, &new).await? else {
                return Err(ApiError::conflict(
                    "number_exists",
                    format!("{number} (or its provider id) is already in the pool"),
                ));
            };
            audit::record(
                conn,
                &actor,
                "pool.number.add",
                Some(&number),
                json!({ "status": status, "tenant_id": dedicated_to, "provider_sid": row.provider_sid }),
            )
            .await?;
            Ok(row)
        })
        .await?
    };
    log_action(&operator, "pool.number.add", &number, "ok");
    Ok(HttpResponse::Created().json(number_json(
        &row,
        state.settings.pool.number_month_price_usd,
    )))
}

/// `POST /admin/pool/import`: adds every number the Twilio account owns,
/// except tenants' business numbers (listed as `skipped_tenant_numbers`).
pub async fn import(
    state: web::Data<AppState>,
    operator: Operator,
) -> Result<HttpResponse, ApiError> {
    let account = crate::pool::twilio_account(&state.settings);
    let owned = account.list_numbers().await.map_err(|e| {
        ApiError::unavailable("twilio_unavailable", "listing the account's numbers failed")
            .with_source(e)
    })?;
    let mut conn = connection(&state).await?;
    let actor = operator.0.clone();
    let (added, known, skipped) = conn
        .transaction::<_, ApiError, _>(async move |conn| {
            let (mut added, mut known, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
            for n in &owned {
                let Ok(number) = E164::parse(&n.phone_number) else {
                    continue;
                };
                match numbers::import(conn, number.as_str(), Some(&n.sid)).await? {
                    ImportOutcome::Added => added.push(number.to_string()),
                    ImportOutcome::AlreadyInPool => known.push(number.to_string()),
                    ImportOutcome::TenantNumber => skipped.push(number.to_string()),
                }
            }
            audit::record(
                conn,
                &actor,
                "pool.import",
                None,
                json!({ "added": added, "already_in_pool": known.len(),
                        "skipped_tenant_numbers": skipped }),
            )
            .await?;
            Ok((added, known, skipped))
        })
        .await?;
    log_action(
        &operator,
        "pool.import",
        "-",
        &format!(
            "added={} skipped_tenant_numbers={}",
            added.len(),
            skipped.len()
        ),
    );
    Ok(HttpResponse::Ok().json(json!({
        "added": added,
        "already_in_pool": known,
        "skipped_tenant_numbers": skipped,
    })))
}

fn changed(change: Change, number: &str, what: &str) -> Result<NumberRow, ApiError> {
    match change {
        Change::Done(row) => Ok(*row),
        Change::NotFound => Err(not_in_pool(number)),
        Change::InUse => Err(ApiError::conflict(
            "number_in_use",
            format!("{number} is leased right now; {what} once it is released"),
        )),
    }
}

/// `DELETE /admin/pool/numbers/{number}`: takes a number out of the pool
/// (it stays on the Twilio account).
pub async fn remove(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let number = parse_number(&path)?;
    let mut conn = connection(&state).await?;
    let actor = operator.0.clone();
    let row = {
        let number = number.clone();
        conn.transaction::<_, ApiError, _>(async move |conn| {
            let row = changed(numbers::remove(conn, &number).await?, &number, "remove it")?;
            audit::record(
                conn,
                &actor,
                "pool.number.remove",
                Some(&number),
                json!({ "status": row.status, "tenant_id": row.dedicated_to }),
            )
            .await?;
            Ok(row)
        })
        .await?
    };
    log_action(&operator, "pool.number.remove", &number, "ok");
    Ok(HttpResponse::Ok().json(json!({ "removed": row.phone_number })))
}

/// Body of `POST /admin/pool/numbers/{number}/assign`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assign {
    /// The tenant the number is dedicated to.
    pub tenant_id: String,
}

/// `POST /admin/pool/numbers/{number}/assign`: dedicates a number to a tenant.
pub async fn assign(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<String>,
    body: web::Json<Assign>,
) -> Result<HttpResponse, ApiError> {
    let number = parse_number(&path)?;
    let mut conn = connection(&state).await?;
    let tenant = body_tenant(&mut conn, &body.tenant_id).await?;
    check_dedicated_plan(&state, &tenant)?;
    let actor = operator.0.clone();
    let row = {
        let number = number.clone();
        conn.transaction::<_, ApiError, _>(async move |conn| {
            let before = numbers::find(conn, &number).await?;
            let row = changed(
                numbers::set_dedicated(conn, &number, Some(tenant.id)).await?,
                &number,
                "assign it",
            )?;
            audit::record(
                conn,
                &actor,
                "pool.number.assign",
                Some(&number),
                json!({ "tenant_id": tenant.id, "previous": before.and_then(|b| b.dedicated_to) }),
            )
            .await?;
            Ok(row)
        })
        .await?
    };
    log_action(&operator, "pool.number.assign", &number, "ok");
    Ok(HttpResponse::Ok().json(number_json(
        &row,
        state.settings.pool.number_month_price_usd,
    )))
}

/// `POST /admin/pool/numbers/{number}/unassign`: back to the shared pool.
pub async fn unassign(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let number = parse_number(&path)?;
    let mut conn = connection(&state).await?;
    let actor = operator.0.clone();
    let row = {
        let number = number.clone();
        conn.transaction::<_, ApiError, _>(async move |conn| {
            let before = numbers::find(conn, &number).await?;
            let row = changed(
                numbers::set_dedicated(conn, &number, None).await?,
                &number,
                "unassign it",
            )?;
            audit::record(
                conn,
                &actor,
                "pool.number.unassign",
                Some(&number),
                json!({ "tenant_id": before.and_then(|b| b.dedicated_to) }),
            )
            .await?;
            Ok(row)
        })
        .await?
    };
    log_action(&operator, "pool.number.unassign", &number, "ok");
    Ok(HttpResponse::Ok().json(number_json(
        &row,
        state.settings.pool.number_month_price_usd,
    )))
}

/// Body of `POST /admin/pool/numbers/{number}/status`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetStatus {
    /// `available`, `reserved` or `maintenance`.
    pub status: String,
}

/// `POST /admin/pool/numbers/{number}/status`: e.g. `maintenance` (never handed out).
pub async fn set_status(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<String>,
    body: web::Json<SetStatus>,
) -> Result<HttpResponse, ApiError> {
    let number = parse_number(&path)?;
    let status = check_status(&body.status)?;
    let mut conn = connection(&state).await?;
    let actor = operator.0.clone();
    let row = {
        let number = number.clone();
        conn.transaction::<_, ApiError, _>(async move |conn| {
            let before = numbers::find(conn, &number).await?;
            let row = changed(
                numbers::set_status(conn, &number, status).await?,
                &number,
                "change its status",
            )?;
            audit::record(
                conn,
                &actor,
                "pool.number.status",
                Some(&number),
                json!({ "status": status, "previous": before.map(|b| b.status) }),
            )
            .await?;
            Ok(row)
        })
        .await?
    };
    log_action(&operator, "pool.number.status", &number, status);
    Ok(HttpResponse::Ok().json(number_json(
        &row,
        state.settings.pool.number_month_price_usd,
    )))
}

/// Body of `POST /admin/pool/allocations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocateBody {
    /// The tenant the number is for.
    pub tenant_id: String,
    /// The lease holder (default: a fresh `adm:` id); the same holder again
    /// gets the same lease back.
    #[serde(default)]
    pub holder: Option<String>,
}

/// `POST /admin/pool/allocations`: leases a number by the pool's policy
/// (renewed by this instance until released).
pub async fn allocate(
    state: web::Data<AppState>,
    operator: Operator,
    body: web::Json<AllocateBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let holder = body
        .holder
        .unwrap_or_else(|| format!("adm:{}", Uuid::new_v4().simple()));
    if !valid_holder(&holder) {
        return Err(ApiError::bad_request(
            "invalid_holder",
            "holder must be 1 to 64 letters, digits, '_', '-', ':' or '.'",
        ));
    }
    let tenant = {
        // Not held across the allocation: the pool needs connections of its own.
        let mut conn = connection(&state).await?;
        body_tenant(&mut conn, &body.tenant_id).await?
    };
    let tenant_key = TenantId::parse(&tenant.id.to_string())
        .map_err(|e| ApiError::internal("tenant id").with_source(e))?;
    let allocation = state
        .pool
        .actor
        .send(Allocate {
            tenant_id: tenant_key,
            plan: tenant.plan.clone(),
            holder: holder.clone(),
        })
        .await
        .map_err(pool_unavailable)?;
    let allocation = match allocation {
        Ok(allocation) => allocation,
        Err(PoolError::Exhausted) => {
            return Err(ApiError::unavailable(
                "pool_exhausted",
                format!("no phone number is free for tenant {}", tenant.id),
            ))
        }
        Err(PoolError::InvalidHolder) => {
            return Err(ApiError::bad_request(
                "invalid_holder",
                PoolError::InvalidHolder.to_string(),
            ))
        }
        Err(e) => return Err(pool_unavailable(e)),
    };
    let mut conn = connection(&state).await?;
    audit::record(
        &mut conn,
        &operator.0,
        "pool.allocate",
        Some(&allocation.phone_number),
        json!({ "tenant_id": tenant.id, "holder": holder, "dedicated": allocation.dedicated, "bought": allocation.bought }),
    )
    .await?;
    log_action(&operator, "pool.allocate", &allocation.phone_number, "ok");
    Ok(HttpResponse::Created().json(json!({
        "phone_number": allocation.phone_number,
        "holder": allocation.holder,
        "tenant_id": tenant.id,
        "dedicated": allocation.dedicated,
        "bought": allocation.bought,
        "lease_expires_at": allocation.expires_at,
        "instance": state.instance_id,
    })))
}

/// `DELETE /admin/pool/allocations/{holder}[?call_seconds=N]`: frees a lease;
/// with `call_seconds`, a call of that length is added to the number's usage.
pub async fn release(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let holder = path.into_inner();
    if !valid_holder(&holder) {
        return Err(ApiError::bad_request("invalid_holder", "malformed holder"));
    }
    let call_seconds = match query.get("call_seconds") {
        None => None,
        Some(raw) => Some(raw.parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                "invalid_call_seconds",
                "call_seconds must be a whole number",
            )
        })?),
    };
    let released = state
        .pool
        .actor
        .send(Release {
            holder: holder.clone(),
            call_seconds,
        })
        .await
        .map_err(pool_unavailable)?
        .map_err(pool_unavailable)?;
    let Some(number) = released else {
        return Err(ApiError::not_found(
            "allocation_not_found",
            format!("{holder} holds no number"),
        ));
    };
    let mut conn = connection(&state).await?;
    audit::record(
        &mut conn,
        &operator.0,
        "pool.release",
        Some(&number),
        json!({ "holder": holder, "call_seconds": call_seconds }),
    )
    .await?;
    log_action(&operator, "pool.release", &number, "ok");
    Ok(HttpResponse::Ok().json(json!({ "phone_number": number, "holder": holder })))
}
