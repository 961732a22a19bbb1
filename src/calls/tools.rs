//! The agent's data tools, carried out against PostgreSQL: the actors'
//! [`ToolRunner`] port. Every answer is a JSON object the model can read:
//! `{"ok": true, ...}` or `{"ok": false, "error": "<code>", "message": "..."}`.

use chrono::{NaiveDate, NaiveTime};
use diesel::sql_types::{Date, Integer, Jsonb, Nullable, Text, Time, Uuid as SqlUuid};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::RunQueryDsl;
use serde_json::{json, Value};

use callvisor_actors::error_chain::Chain;
use callvisor_actors::events;
use callvisor_actors::ports::{PortFuture, ToolCall, ToolRunner};

use crate::db::AsyncPool;

/// Tools backed by the database.
pub struct DbTools {
    pool: AsyncPool,
}

impl DbTools {
    /// Tools over `pool`.
    pub fn new(pool: AsyncPool) -> Self {
        Self { pool }
    }
}

fn refusal(code: &str, message: &str) -> String {
    json!({ "ok": false, "error": code, "message": message }).to_string()
}

#[derive(QueryableByName)]
struct Created {
    #[diesel(sql_type = SqlUuid)]
    id: uuid::Uuid,
}

/// A validated reservation request.
struct Reservation {
    answers: Value,
    date: NaiveDate,
    time: NaiveTime,
    name: Option<String>,
    phone: Option<String>,
    party_size: Option<i32>,
}

fn parse_reservation(arguments: &str, caller: Option<&str>) -> Result<Reservation, String> {
    let answers: Value = serde_json::from_str(arguments)
        .map_err(|_| refusal("invalid_arguments", "arguments must be a JSON object"))?;
    if !answers.is_object() {
        return Err(refusal(
            "invalid_arguments",
            "arguments must be a JSON object",
        ));
    }
    let text = |key: &str| {
        answers
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let date = text("requested_date")
        .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
        .ok_or_else(|| {
            refusal(
                "invalid_date",
                "requested_date must be a real date as YYYY-MM-DD",
            )
        })?;
    let time = text("requested_time")
        .and_then(|t| NaiveTime::parse_from_str(&t, "%H:%M").ok())
        .ok_or_else(|| refusal("invalid_time", "requested_time must be HH:mm (24-hour)"))?;
    let party_size = match answers.get("party_size") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    refusal(
                        "invalid_party_size",
                        "party_size must be a positive whole number",
                    )
                })?,
        ),
    };
    Ok(Reservation {
        name: text("customer_name"),
        phone: text("customer_phone").or_else(|| caller.map(str::to_owned)),
        answers,
        date,
        time,
        party_size,
    })
}

impl ToolRunner for DbTools {
    fn run(&self, call: ToolCall) -> PortFuture<String> {
        let pool = self.pool.clone();
        Box::pin(async move {
            if call.name != "create_reservation" {
                return refusal("unknown_tool", "no such tool");
            }
            let reservation = match parse_reservation(&call.arguments, call.caller.as_deref()) {
                Ok(r) => r,
                Err(refused) => return refused,
            };
            let Ok(tenant) = uuid::Uuid::parse_str(call.tenant_id.as_str()) else {
                return refusal("internal", "tenant id is not a UUID");
            };
            let Ok(mut conn) = pool.get().await else {
                return refusal(
                    "unavailable",
                    "the reservation book cannot be reached right now",
                );
            };
            // One request per call: a second one in the same call replaces the pending first.
            let created = diesel::sql_query(
                "INSERT INTO reservation_requests
                     (call_sid, user_id, customer_name, customer_phone, answers,
                      requested_date, requested_time, party_size)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (call_sid) DO UPDATE SET
                     customer_name = EXCLUDED.customer_name,
                     customer_phone = EXCLUDED.customer_phone,
                     answers = EXCLUDED.answers,
                     requested_date = EXCLUDED.requested_date,
                     requested_time = EXCLUDED.requested_time,
                     party_size = EXCLUDED.party_size
                 WHERE reservation_requests.status = 'pending'
                 RETURNING id",
            )
            .bind::<Text, _>(call.call_sid.as_str())
            .bind::<SqlUuid, _>(tenant)
            .bind::<Nullable<Text>, _>(reservation.name)
            .bind::<Nullable<Text>, _>(reservation.phone)
            .bind::<Jsonb, _>(reservation.answers)
            .bind::<Date, _>(reservation.date)
            .bind::<Time, _>(reservation.time)
            .bind::<Nullable<Integer>, _>(reservation.party_size)
            .get_result::<Created>(&mut conn)
            .await
            .optional();
            match created {
                Ok(Some(row)) => {
                    log::info!(
                        "{} call_sid={} tenant={} reservation={} date={} time={}",
                        events::RESERVATION_REQUESTED,
                        call.call_sid,
                        call.tenant_id,
                        row.id,
                        reservation.date,
                        reservation.time.format("%H:%M")
                    );
                    json!({
                        "ok": true,
                        "reservation_id": row.id,
                        "status": "pending",
                        "requested_date": reservation.date.to_string(),
                        "requested_time": reservation.time.format("%H:%M").to_string(),
                    })
                    .to_string()
                }
                Ok(None) => refusal(
                    "already_decided",
                    "this call's reservation was already decided",
                ),
                Err(e) => {
                    log::error!(
                        "{} call_sid={} tenant={} error={:?}",
                        events::RESERVATION_FAILED,
                        call.call_sid,
                        call.tenant_id,
                        Chain(&e)
                    );
                    refusal("unavailable", "the reservation could not be saved")
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_need_a_real_date_and_time() {
        assert!(parse_reservation(
            r#"{"requested_date":"2026-12-24","requested_time":"19:30"}"#,
            None
        )
        .is_ok());
        for bad in [
            r#"{"requested_date":"2026-02-30","requested_time":"19:30"}"#,
            r#"{"requested_date":"tomorrow","requested_time":"19:30"}"#,
            r#"{"requested_date":"2026-12-24","requested_time":"7pm"}"#,
            r#"{"requested_date":"2026-12-24","requested_time":"19:30","party_size":0}"#,
            r#"[1,2]"#,
            "not json",
        ] {
            assert!(parse_reservation(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_callers_number_is_the_default_contact() {
        let r = parse_reservation(
            r#"{"requested_date":"2026-12-24","requested_time":"19:30"}"#,
            Some("+15550001111"),
        )
        .unwrap();
        assert_eq!(r.phone.as_deref(), Some("+15550001111"));
    }
}
