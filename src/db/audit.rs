//! `audit_log`: who changed what through the admin API, and when. Written in
//! the same transaction as the change where the change is in the database,
//! so a change without its audit row cannot exist.

use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::DbError;

/// Records one admin action.
pub async fn record(
    conn: &mut AsyncPgConnection,
    actor: &str,
    action: &str,
    target: Option<&str>,
    details: serde_json::Value,
) -> Result<(), DbError> {
    let details = if details.is_object() {
        details
    } else {
        serde_json::json!({ "value": details })
    };
    diesel::sql_query(
        "INSERT INTO audit_log (actor, action, target, details) VALUES ($1, $2, $3, $4)",
    )
    .bind::<Text, _>(actor)
    .bind::<Text, _>(action)
    .bind::<Nullable<Text>, _>(target)
    .bind::<Jsonb, _>(details)
    .execute(conn)
    .await?;
    Ok(())
}

/// One audit row.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct AuditRow {
    /// Sequence.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// Who (`admin`, or `admin:<name>` from `X-Admin-Actor`).
    #[diesel(sql_type = Text)]
    pub actor: String,
    /// What (`pool.number.add`, `call.hangup`, ...).
    #[diesel(sql_type = Text)]
    pub action: String,
    /// On what (a number, a CallSid, a campaign id).
    #[diesel(sql_type = Nullable<Text>)]
    pub target: Option<String>,
    /// The request and its result.
    #[diesel(sql_type = Jsonb)]
    pub details: serde_json::Value,
    /// When.
    #[diesel(sql_type = Timestamptz)]
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The newest `limit` audit rows (naming `tenant` in their details when given).
pub async fn recent(
    conn: &mut AsyncPgConnection,
    tenant: Option<uuid::Uuid>,
    limit: i64,
) -> Result<Vec<AuditRow>, DbError> {
    Ok(diesel::sql_query(
        "SELECT id, actor, action, target, details, at FROM audit_log
         WHERE $1::uuid IS NULL OR details->>'tenant_id' = $1::text
         ORDER BY id DESC LIMIT $2",
    )
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Uuid>, _>(tenant)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}
