//! The summary worker: claims `call_summary` jobs from the outbox (any
//! instance may; `SKIP LOCKED` keeps them apart), asks the text model, stores
//! the summary. A failure leaves the call's log intact and the job is retried
//! with backoff, for about a day at most; a job whose call record is gone is
//! given up at once (nothing could ever be summarised).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use callvisor_actors::error_chain::Chain;
use callvisor_actors::events;

use crate::clients::openai_rest::OpenAiRest;
use crate::db::{call_logs, outbox, AsyncPool, DbError};

/// How often the outbox is polled when nobody nudges.
const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Jobs claimed per round: few, so that each is done well within its claim.
const CLAIM_BATCH: i64 = 2;
/// Longest pause between retries of one summary.
const MAX_RETRY_SECONDS: i64 = 3600;
/// Attempts before a summary is given up (with the backoff capped at an
/// hour, about a day of trying).
const MAX_ATTEMPTS: i32 = 36;

/// The worker's parts.
pub struct SummaryWorker {
    /// Where jobs are.
    pub pool: AsyncPool,
    /// The text model.
    pub client: OpenAiRest,
    /// This instance, as the jobs' lock holder.
    pub instance_id: String,
    /// First retry delay; doubles per attempt.
    pub retry_base_seconds: i64,
    /// Wakes the worker early.
    pub nudge: Arc<Notify>,
}

/// Renders a stored transcript (`[{"role","text","at"}]`) as lines for the model.
pub fn transcript_text(transcript: &serde_json::Value) -> String {
    transcript
        .as_array()
        .map(|segments| {
            segments
                .iter()
                .filter_map(|s| {
                    let role = s.get("role")?.as_str()?;
                    let text = s.get("text")?.as_str()?;
                    let who = if role == "user" { "Caller" } else { "Agent" };
                    Some(format!("{who}: {text}"))
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

impl SummaryWorker {
    /// Runs until the process ends.
    pub async fn run(self) {
        loop {
            if let Err(e) = self.round().await {
                log::warn!("{} error={:?}", events::SUMMARY_FAILED, Chain(&e));
            }
            let _ = actix_rt::time::timeout(POLL_INTERVAL, self.nudge.notified()).await;
        }
    }

    /// One round: every due job.
    async fn round(&self) -> Result<(), DbError> {
        let mut conn = self.pool.get().await?;
        let jobs = outbox::claim(
            &mut conn,
            outbox::CALL_SUMMARY,
            &self.instance_id,
            CLAIM_BATCH,
        )
        .await?;
        for job in jobs {
            let call_sid = job
                .payload
                .get("call_sid")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let (result, tenant) = match call_logs::transcript(&mut conn, &call_sid).await {
                Ok(Some(row)) => {
                    let tenant = row.tenant.unwrap_or_else(|| "-".to_owned());
                    let text = transcript_text(&row.transcript);
                    let result = if text.is_empty() {
                        Ok("No conversation was recorded on this call.".to_owned())
                    } else {
                        // Kept as text: it is stored with the job (`last_error`).
                        self.client
                            .summarize(&text)
                            .await
                            .map_err(|e| Chain(&e).to_string())
                    };
                    (result, tenant)
                }
                Ok(None) => {
                    self.abandon(&mut conn, job.id, &call_sid, "-", "no call record")
                        .await?;
                    continue;
                }
                Err(e) => (Err(Chain(&e).to_string()), "-".to_owned()),
            };
            match result {
                Ok(summary) => {
                    call_logs::set_summary(&mut conn, &call_sid, &summary).await?;
                    outbox::complete(&mut conn, job.id).await?;
                    log::info!(
                        "{} call_sid={call_sid} tenant={tenant}",
                        events::SUMMARY_WRITTEN
                    );
                }
                Err(error) if job.attempts >= MAX_ATTEMPTS => {
                    self.abandon(&mut conn, job.id, &call_sid, &tenant, &error)
                        .await?;
                }
                Err(error) => {
                    let shift = u32::try_from(job.attempts.clamp(1, 12) - 1).unwrap_or(0);
                    let retry = (self.retry_base_seconds.max(1) << shift).min(MAX_RETRY_SECONDS);
                    log::warn!(
                        "{} call_sid={call_sid} tenant={tenant} attempt={} retry_in_s={retry} error={error:?}",
                        events::SUMMARY_FAILED,
                        job.attempts
                    );
                    outbox::fail(&mut conn, job.id, &error, retry).await?;
                }
            }
        }
        Ok(())
    }

    async fn abandon(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        job: i64,
        call_sid: &str,
        tenant: &str,
        error: &str,
    ) -> Result<(), DbError> {
        log::error!(
            "{} call_sid={call_sid} tenant={tenant} error={error:?}",
            events::SUMMARY_ABANDONED
        );
        outbox::abandon(conn, job, error).await
    }
}
