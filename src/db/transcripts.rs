//! `transcript_segments`: one INSERT per batch, the rows passed as arrays and
//! `unnest`ed (a fixed statement whatever the batch size, so PostgreSQL plans
//! it once and no bind-parameter limit applies). Idempotent per (call, seq),
//! so a batch retried after an ambiguous failure is harmless; a segment whose
//! call has no row is skipped rather than failing, and so blocking, the batch.

use diesel::sql_types::{Array, Integer, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::DbError;
use callvisor_actors::ports::Segment;

/// Writes a batch in one statement; returns the rows inserted.
pub async fn insert_batch(
    conn: &mut AsyncPgConnection,
    batch: &[Segment],
) -> Result<usize, DbError> {
    if batch.is_empty() {
        return Ok(0);
    }
    let call_sids: Vec<&str> = batch.iter().map(|s| s.call_sid.as_str()).collect();
    let seqs: Vec<i32> = batch
        .iter()
        .map(|s| i32::try_from(s.seq).unwrap_or(i32::MAX))
        .collect();
    let roles: Vec<&str> = batch.iter().map(|s| s.role.as_str()).collect();
    let texts: Vec<&str> = batch.iter().map(|s| s.text.as_str()).collect();
    let times: Vec<chrono::DateTime<chrono::Utc>> = batch.iter().map(|s| s.at).collect();
    let n = diesel::sql_query(
        "INSERT INTO transcript_segments (call_sid, seq, role, text, spoken_at)
         SELECT u.call_sid, u.seq, u.role, u.text, u.spoken_at
         FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::timestamptz[])
              AS u(call_sid, seq, role, text, spoken_at)
         WHERE EXISTS (SELECT 1 FROM call_logs c WHERE c.call_sid = u.call_sid)
         ON CONFLICT (call_sid, seq) DO NOTHING",
    )
    .bind::<Array<Text>, _>(call_sids)
    .bind::<Array<Integer>, _>(seqs)
    .bind::<Array<Text>, _>(roles)
    .bind::<Array<Text>, _>(texts)
    .bind::<Array<Timestamptz>, _>(times)
    .execute(conn)
    .await?;
    Ok(n)
}
