//! The outbox: effects that must happen exactly once, queued in the same
//! transaction as their cause (a unique dedupe key makes a second enqueue a
//! no-op) and claimed by workers of any instance with `FOR UPDATE SKIP LOCKED`.

use diesel::sql_types::{BigInt, Integer, Jsonb, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::DbError;

/// Kind of the call-summary job.
pub const CALL_SUMMARY: &str = "call_summary";

/// How long a claimed job is reserved for its worker.
const CLAIM_SECONDS: i64 = 120;

/// A claimed job.
#[derive(Debug, QueryableByName)]
pub struct Job {
    /// Row id.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// Its payload.
    #[diesel(sql_type = Jsonb)]
    pub payload: serde_json::Value,
    /// Attempts so far, this one included.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
}

/// Queues a job due in `after_seconds`; a job with the same key that is not
/// done yet is made due no later than that.
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    kind: &str,
    dedupe_key: &str,
    payload: serde_json::Value,
    after_seconds: i64,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query(
        "INSERT INTO outbox (kind, dedupe_key, payload, next_attempt_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))
         ON CONFLICT (dedupe_key) DO UPDATE
             SET next_attempt_at = LEAST(outbox.next_attempt_at, EXCLUDED.next_attempt_at)
             WHERE outbox.done_at IS NULL",
    )
    .bind::<Text, _>(kind)
    .bind::<Text, _>(dedupe_key)
    .bind::<Jsonb, _>(payload)
    .bind::<BigInt, _>(after_seconds)
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims up to `limit` due jobs of `kind` for `worker`.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    kind: &str,
    worker: &str,
    limit: i64,
) -> Result<Vec<Job>, DbError> {
    // The due rows are picked once (MATERIALIZED): a plain `IN (SELECT … LIMIT
    // … FOR UPDATE SKIP LOCKED)` may be re-run by the planner and claim more.
    let jobs = diesel::sql_query(
        "WITH due AS MATERIALIZED (
             SELECT id FROM outbox
             WHERE kind = $1 AND done_at IS NULL AND next_attempt_at <= now()
               AND (locked_until IS NULL OR locked_until < now())
             ORDER BY next_attempt_at
             LIMIT $3
             FOR UPDATE SKIP LOCKED)
         UPDATE outbox SET locked_by = $2, locked_until = now() + make_interval(secs => $4),
                           attempts = outbox.attempts + 1
         FROM due WHERE outbox.id = due.id
         RETURNING outbox.id, outbox.payload, outbox.attempts",
    )
    .bind::<Text, _>(kind)
    .bind::<Text, _>(worker)
    .bind::<BigInt, _>(limit)
    .bind::<BigInt, _>(CLAIM_SECONDS)
    .load(conn)
    .await?;
    Ok(jobs)
}

/// Marks a job done.
pub async fn complete(conn: &mut AsyncPgConnection, id: i64) -> Result<(), DbError> {
    diesel::sql_query(
        "UPDATE outbox SET done_at = now(), locked_by = NULL, locked_until = NULL, last_error = NULL
         WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Releases a failed job, due again in `retry_in_seconds`.
pub async fn fail(
    conn: &mut AsyncPgConnection,
    id: i64,
    error: &str,
    retry_in_seconds: i64,
) -> Result<(), DbError> {
    diesel::sql_query(
        "UPDATE outbox SET locked_by = NULL, locked_until = NULL, last_error = $2,
                           next_attempt_at = now() + make_interval(secs => $3)
         WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(error)
    .bind::<BigInt, _>(retry_in_seconds)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives a job up for good: done, with `last_error` saying why (`abandoned: …`),
/// so that it is neither retried nor mistaken for a success.
pub async fn abandon(conn: &mut AsyncPgConnection, id: i64, error: &str) -> Result<(), DbError> {
    diesel::sql_query(
        "UPDATE outbox SET done_at = now(), locked_by = NULL, locked_until = NULL,
                           last_error = 'abandoned: ' || $2
         WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(error)
    .execute(conn)
    .await?;
    Ok(())
}
