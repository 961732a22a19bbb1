//! Per-tenant usage for a calendar month: finished calls and their billed
//! minutes (each call's duration rounded up to a whole minute, as carriers
//! bill) by direction, and the numbers the tenant rents (its own number plus
//! the pool numbers dedicated to it). Prices are applied by the caller, from
//! configuration.

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::DbError;

/// One tenant's usage in a period.
#[derive(Debug, Clone, QueryableByName)]
pub struct TenantUsage {
    /// `profiles.id`
    #[diesel(sql_type = SqlUuid)]
    pub tenant_id: Uuid,
    /// `profiles.display_name`
    #[diesel(sql_type = Nullable<Text>)]
    pub display_name: Option<String>,
    /// `profiles.plan`
    #[diesel(sql_type = Text)]
    pub plan: String,
    /// Finished inbound calls.
    #[diesel(sql_type = BigInt)]
    pub inbound_calls: i64,
    /// Their billed minutes.
    #[diesel(sql_type = BigInt)]
    pub inbound_minutes: i64,
    /// Finished outbound calls.
    #[diesel(sql_type = BigInt)]
    pub outbound_calls: i64,
    /// Their billed minutes.
    #[diesel(sql_type = BigInt)]
    pub outbound_minutes: i64,
    /// Numbers rented: its own number and its dedicated pool numbers.
    #[diesel(sql_type = BigInt)]
    pub numbers: i64,
}

/// Usage of every tenant (or one) for calls started in `[from, to)`.
pub async fn by_tenant(
    conn: &mut AsyncPgConnection,
    tenant: Option<Uuid>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<TenantUsage>, DbError> {
    Ok(diesel::sql_query(
        "SELECT p.id AS tenant_id, p.display_name, p.plan,
                COALESCE(c.inbound_calls, 0) AS inbound_calls,
                COALESCE(c.inbound_minutes, 0) AS inbound_minutes,
                COALESCE(c.outbound_calls, 0) AS outbound_calls,
                COALESCE(c.outbound_minutes, 0) AS outbound_minutes,
                (CASE WHEN p.phone_number IS NULL THEN 0 ELSE 1 END
                 + (SELECT count(*) FROM phone_numbers n
                    WHERE n.dedicated_to = p.id
                      AND n.phone_number IS DISTINCT FROM p.phone_number))::bigint AS numbers
         FROM profiles p
         LEFT JOIN LATERAL (
             SELECT count(*) FILTER (WHERE l.direction = 'inbound') AS inbound_calls,
                    COALESCE(sum((l.duration_seconds + 59) / 60)
                             FILTER (WHERE l.direction = 'inbound'), 0)::bigint AS inbound_minutes,
                    count(*) FILTER (WHERE l.direction = 'outbound') AS outbound_calls,
                    COALESCE(sum((l.duration_seconds + 59) / 60)
                             FILTER (WHERE l.direction = 'outbound'), 0)::bigint AS outbound_minutes
             FROM call_logs l
             WHERE l.user_id = p.id AND l.ended_at IS NOT NULL
               AND l.started_at >= $2 AND l.started_at < $3
         ) c ON true
         WHERE $1::uuid IS NULL OR p.id = $1
         ORDER BY p.created_at, p.id",
    )
    .bind::<Nullable<SqlUuid>, _>(tenant)
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(conn)
    .await?)
}
