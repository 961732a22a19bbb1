//! `/admin/campaigns`: start an outbound campaign (a tenant and a list of
//! numbers; every entry is accepted or reported, none silently dropped), read
//! its progress, list, cancel, and dial an `uncertain` target again. The
//! campaign runners of all instances place the calls (see `crate::campaigns`).

use std::collections::{BTreeMap, HashMap};

use actix_web::{web, HttpResponse};
use diesel_async::AsyncConnection;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use callvisor_actors::events;

use super::{connection, log_action, parse_uuid, tenant_scope, ApiError, Operator};
use crate::campaigns::check_numbers;
use crate::db::campaigns::{self as store, CampaignRow, TargetRow};
use crate::db::{audit, tenants};
use crate::state::AppState;

/// Body of `POST /admin/campaigns`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// The tenant calling.
    pub tenant_id: String,
    /// Who to call: E.164 strings.
    pub numbers: Vec<Value>,
    /// A label.
    #[serde(default)]
    pub name: Option<String>,
    /// Calls at once (default `campaigns.default_concurrency`).
    #[serde(default)]
    pub max_concurrency: Option<i64>,
}

/// `POST /admin/campaigns`
pub async fn create(
    state: web::Data<AppState>,
    operator: Operator,
    body: web::Json<NewCampaign>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let settings = &state.settings.campaigns;
    let tenant_id = parse_uuid(&body.tenant_id, "invalid_tenant", "tenant_id")?;
    let max_concurrency = body
        .max_concurrency
        .unwrap_or(i64::from(settings.default_concurrency));
    let max_concurrency = i32::try_from(max_concurrency)
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request("invalid_concurrency", "max_concurrency must be 1 to 1000")
        })?;
    let name = body
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name is longer than 200 characters",
        ));
    }
    if body.numbers.len() > settings.max_targets {
        return Err(ApiError::unprocessable(
            "too_many_numbers",
            format!(
                "{} numbers given; a campaign takes at most {} (campaigns.max_targets)",
                body.numbers.len(),
                settings.max_targets
            ),
        ));
    }
    let checked = check_numbers(&body.numbers);
    if checked.accepted.is_empty() {
        return Err(ApiError::unprocessable(
            "no_valid_numbers",
            "the list holds no valid E.164 number",
        )
        .with_details(json!({ "rejected": checked.rejected })));
    }
    let mut conn = connection(&state).await?;
    let Some((tenant, _)) = tenants::find_by_id(&mut conn, tenant_id).await? else {
        return Err(ApiError::unprocessable(
            "tenant_not_found",
            format!("no tenant {tenant_id}"),
        ));
    };
    if !tenant.is_subscribed {
        return Err(ApiError::unprocessable(
            "tenant_not_subscribed",
            format!("tenant {tenant_id} is not subscribed"),
        ));
    }
    let actor = operator.0.clone();
    let id = {
        let (accepted, rejected, name) = (
            checked.accepted.clone(),
            checked.rejected.len(),
            name.clone(),
        );
        conn.transaction::<_, ApiError, _>(async move |conn| {
            let id = store::create(
                conn,
                tenant_id,
                name.as_deref(),
                max_concurrency,
                &actor,
                &accepted,
            )
            .await?;
            audit::record(
                conn,
                &actor,
                "campaign.create",
                Some(&id.to_string()),
                json!({ "tenant_id": tenant_id, "targets": accepted.len(), "rejected": rejected,
                        "max_concurrency": max_concurrency, "name": name }),
            )
            .await?;
            Ok(id)
        })
        .await?
    };
    log::info!(
        "{} campaign={id} tenant={tenant_id} targets={} rejected={} max_concurrency={max_concurrency} actor={}",
        events::CAMPAIGN_STARTED,
        checked.accepted.len(),
        checked.rejected.len(),
        operator.0
    );
    log_action(&operator, "campaign.create", &id.to_string(), "ok");
    state.pool.campaign_nudge.notify_one();
    Ok(HttpResponse::Created().json(json!({
        "id": id,
        "tenant_id": tenant_id,
        "name": name,
        "status": "running",
        "max_concurrency": max_concurrency,
        "accepted": checked.accepted.len(),
        "rejected": checked.rejected,
    })))
}

fn progress(targets: &[TargetRow]) -> Value {
    let mut counts: BTreeMap<&str, usize> = [
        "pending",
        "claimed",
        "dialing",
        "calling",
        "completed",
        "busy",
        "no-answer",
        "failed",
        "canceled",
        "uncertain",
    ]
    .into_iter()
    .map(|s| (s, 0))
    .collect();
    for t in targets {
        if let Some(n) = counts.get_mut(t.status.as_str()) {
            *n += 1;
        }
    }
    let open = ["pending", "claimed", "dialing", "calling"]
        .iter()
        .map(|s| counts.get(s).copied().unwrap_or(0))
        .sum::<usize>();
    json!({
        "total": targets.len(),
        "done": targets.len() - open,
        "in_progress": open - counts.get("pending").copied().unwrap_or(0),
        "by_status": counts,
    })
}

fn campaign_json(campaign: &CampaignRow, targets: &[TargetRow], with_targets: bool) -> Value {
    let mut value = json!(campaign);
    value["progress"] = progress(targets);
    if with_targets {
        value["targets"] = json!(targets);
    }
    value
}

async fn scoped_campaign(
    state: &AppState,
    raw_id: &str,
    query: &HashMap<String, String>,
) -> Result<(CampaignRow, Vec<TargetRow>), ApiError> {
    let id = parse_uuid(raw_id, "invalid_campaign_id", "campaign id")?;
    let mut conn = connection(state).await?;
    let tenant = tenant_scope(&mut conn, query).await?;
    let campaign = store::find(&mut conn, id, tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign_not_found", format!("no campaign {id}")))?;
    let targets = store::targets(&mut conn, id).await?;
    Ok((campaign, targets))
}

/// `GET /admin/campaigns/{id}[?tenant=]`
pub async fn show(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (campaign, targets) = scoped_campaign(&state, &path, &query).await?;
    Ok(HttpResponse::Ok().json(campaign_json(&campaign, &targets, true)))
}

/// `GET /admin/campaigns[?tenant=]`
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = connection(&state).await?;
    let tenant = tenant_scope(&mut conn, &query).await?;
    let campaigns = store::list(&mut conn, tenant, 100).await?;
    let mut out = Vec::with_capacity(campaigns.len());
    for campaign in &campaigns {
        let targets = store::targets(&mut conn, campaign.id).await?;
        out.push(campaign_json(campaign, &targets, false));
    }
    Ok(HttpResponse::Ok().json(json!({ "tenant_id": tenant, "campaigns": out })))
}

/// `POST /admin/campaigns/{id}/cancel`: targets not yet under way are canceled.
pub async fn cancel(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (campaign, _) = scoped_campaign(&state, &path, &query).await?;
    let id: Uuid = campaign.id;
    let mut conn = connection(&state).await?;
    let actor = operator.0.clone();
    conn.transaction::<_, ApiError, _>(async move |conn| {
        if !store::cancel(conn, id).await? {
            return Err(ApiError::conflict(
                "campaign_not_running",
                format!("campaign {id} is not running"),
            ));
        }
        audit::record(
            conn,
            &actor,
            "campaign.cancel",
            Some(&id.to_string()),
            json!({}),
        )
        .await?;
        Ok(())
    })
    .await?;
    log::info!(
        "{} campaign={id} tenant={} reason=canceled actor={}",
        events::CAMPAIGN_FINISHED,
        campaign.tenant_id,
        operator.0
    );
    log_action(&operator, "campaign.cancel", &id.to_string(), "ok");
    let targets = store::targets(&mut conn, id).await?;
    let campaign = store::find(&mut conn, id, None).await?.unwrap_or(campaign);
    Ok(HttpResponse::Ok().json(campaign_json(&campaign, &targets, false)))
}

/// `POST /admin/campaigns/{id}/targets/{target}/retry[?tenant=]`: dials an
/// `uncertain` target again. The engine never does on its own (the first
/// request may have placed a call); this is the operator's decision, audited.
pub async fn retry_target(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<(String, String)>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (raw_campaign, raw_target) = path.into_inner();
    let (campaign, _) = scoped_campaign(&state, &raw_campaign, &query).await?;
    let target = parse_uuid(&raw_target, "invalid_target_id", "target id")?;
    let id: Uuid = campaign.id;
    let mut conn = connection(&state).await?;
    let actor = operator.0.clone();
    conn.transaction::<_, ApiError, _>(async move |conn| {
        match store::retry_uncertain(conn, id, target, &actor).await? {
            store::Retry::Queued => {}
            store::Retry::NotFound => {
                return Err(ApiError::not_found(
                    "target_not_found",
                    format!("no target {target} in campaign {id}"),
                ))
            }
            store::Retry::NotUncertain(status) => {
                return Err(ApiError::conflict(
                    "target_not_uncertain",
                    format!("target {target} is {status}; only uncertain targets are retried"),
                ))
            }
            store::Retry::CampaignCanceled => {
                return Err(ApiError::conflict(
                    "campaign_canceled",
                    format!("campaign {id} was canceled"),
                ))
            }
        }
        audit::record(
            conn,
            &actor,
            "campaign.target.retry",
            Some(&target.to_string()),
            json!({ "campaign_id": id }),
        )
        .await?;
        Ok(())
    })
    .await?;
    log_action(
        &operator,
        "campaign.target.retry",
        &target.to_string(),
        "ok",
    );
    let targets = store::targets(&mut conn, id).await?;
    let campaign = store::find(&mut conn, id, None).await?.unwrap_or(campaign);
    Ok(HttpResponse::Ok().json(campaign_json(&campaign, &targets, true)))
}
