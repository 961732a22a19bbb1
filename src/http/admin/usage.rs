//! `GET /admin/usage[?tenant=][&month=YYYY-MM]`: per-tenant usage and cost for
//! a calendar month (default: the current one). Minutes are billed per call,
//! rounded up; number rental is per number-month; every price comes from
//! configuration (`[pool]` `*_price_usd`).

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use serde_json::json;

use super::{connection, tenant_scope, usd, ApiError};
use crate::db::usage;
use crate::state::AppState;

/// The first instants of `month` (YYYY-MM) and of the month after.
fn month_bounds(
    month: Option<&str>,
) -> Result<(String, chrono::DateTime<Utc>, chrono::DateTime<Utc>), ApiError> {
    let bad = || ApiError::bad_request("invalid_month", "month must be YYYY-MM");
    let first = match month {
        None => {
            let today = Utc::now().date_naive();
            NaiveDate::from_ymd_opt(today.year(), today.month(), 1).ok_or_else(bad)?
        }
        Some(raw) => NaiveDate::parse_from_str(&format!("{raw}-01"), "%Y-%m-%d")
            .ok()
            .filter(|_| raw.len() == 7)
            .ok_or_else(bad)?,
    };
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .ok_or_else(bad)?;
    let start = Utc.from_utc_datetime(&first.and_time(chrono::NaiveTime::MIN));
    let end = Utc.from_utc_datetime(&next.and_time(chrono::NaiveTime::MIN));
    Ok((first.format("%Y-%m").to_string(), start, end))
}

/// `GET /admin/usage`
pub async fn usage(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (month, from, to) = month_bounds(query.get("month").map(String::as_str))?;
    let mut conn = connection(&state).await?;
    let tenant = tenant_scope(&mut conn, &query).await?;
    let rows = usage::by_tenant(&mut conn, tenant, from, to).await?;
    let prices = &state.settings.pool;
    let mut total = 0.0;
    let tenants: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let numbers = prices.number_month_price_usd * r.numbers as f64;
            let inbound = prices.inbound_minute_price_usd * r.inbound_minutes as f64;
            let outbound = prices.outbound_minute_price_usd * r.outbound_minutes as f64;
            total += numbers + inbound + outbound;
            json!({
                "tenant_id": r.tenant_id,
                "display_name": r.display_name,
                "plan": r.plan,
                "calls": { "inbound": r.inbound_calls, "outbound": r.outbound_calls },
                "minutes": { "inbound": r.inbound_minutes, "outbound": r.outbound_minutes },
                "numbers": r.numbers,
                "cost_usd": {
                    "numbers": usd(numbers),
                    "inbound": usd(inbound),
                    "outbound": usd(outbound),
                    "total": usd(numbers + inbound + outbound),
                },
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "month": month,
        "tenant_id": tenant,
        "prices_usd": {
            "number_month": prices.number_month_price_usd,
            "inbound_minute": prices.inbound_minute_price_usd,
            "outbound_minute": prices.outbound_minute_price_usd,
        },
        "total_cost_usd": usd(total),
        "tenants": tenants,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_whole_calendar_months() {
        let (m, from, to) = month_bounds(Some("2026-12")).unwrap();
        assert_eq!(m, "2026-12");
        assert_eq!(from.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        for bad in ["2026-13", "2026-1", "26-01", "december"] {
            assert!(month_bounds(Some(bad)).is_err(), "{bad}");
        }
    }
}
