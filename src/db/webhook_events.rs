//! `webhook_events`: deliveries already handled, so a vendor's redelivery of
//! the same webhook (same `webhook-id`, same Stripe event id) does nothing.

use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::DbError;

/// Where a delivery came from (`webhook_events.source`).
pub const OPENAI: &str = "openai";

/// Records delivery `event_id` of `source`; true the first time, false for a redelivery.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    source: &str,
    event_id: &str,
) -> Result<bool, DbError> {
    let inserted = diesel::sql_query(
        "INSERT INTO webhook_events (source, event_id) VALUES ($1, $2)
         ON CONFLICT (source, event_id) DO NOTHING",
    )
    .bind::<Text, _>(source)
    .bind::<Text, _>(event_id)
    .execute(conn)
    .await?;
    Ok(inserted == 1)
}

/// Forgets a claimed delivery whose handling failed, so the vendor's retry is handled.
pub async fn release(
    conn: &mut AsyncPgConnection,
    source: &str,
    event_id: &str,
) -> Result<(), DbError> {
    diesel::sql_query("DELETE FROM webhook_events WHERE source = $1 AND event_id = $2")
        .bind::<Text, _>(source)
        .bind::<Text, _>(event_id)
        .execute(conn)
        .await?;
    Ok(())
}
