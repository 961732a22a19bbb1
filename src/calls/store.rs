//! The actors' [`CallStore`] and [`TranscriptSink`] ports over PostgreSQL.

use std::sync::Arc;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use tokio::sync::Notify;

use callvisor_actors::ids::{CallSid, TenantId};
use callvisor_actors::ports::{
    CallEnd, CallPlan, CallStore, PortError, PortFuture, Segment, TranscriptSink,
};

use super::plan;
use crate::config::OpenAiSettings;
use crate::db::schema::call_logs;
use crate::db::{call_logs as calls, tenants, transcripts, AsyncPool, DbError};

/// Call records in PostgreSQL.
pub struct DbCallStore {
    pool: AsyncPool,
    openai: OpenAiSettings,
    summaries: bool,
    /// Wakes the summary worker when a job is queued.
    summary_nudge: Arc<Notify>,
}

impl DbCallStore {
    /// A store over `pool`.
    pub fn new(
        pool: AsyncPool,
        openai: OpenAiSettings,
        summaries: bool,
        summary_nudge: Arc<Notify>,
    ) -> Self {
        Self {
            pool,
            openai,
            summaries,
            summary_nudge,
        }
    }
}

fn db_error(e: impl Into<DbError>) -> PortError {
    PortError::with_source("database", e.into())
}

impl CallStore for DbCallStore {
    fn load_plan(
        &self,
        call_sid: &CallSid,
        tenant: &TenantId,
    ) -> PortFuture<Result<CallPlan, PortError>> {
        let pool = self.pool.clone();
        let openai = self.openai.clone();
        let (call_sid, tenant) = (call_sid.clone(), tenant.clone());
        Box::pin(async move {
            let tenant_uuid = uuid::Uuid::parse_str(tenant.as_str())
                .map_err(|_| PortError::new("tenant id is not a UUID"))?;
            let mut conn = pool.get().await.map_err(db_error)?;
            let (profile, prompt) = tenants::find_by_id(&mut conn, tenant_uuid)
                .await
                .map_err(db_error)?
                .ok_or_else(|| PortError::new("unknown tenant"))?;
            if !profile.is_subscribed {
                return Err(PortError::new("tenant is not subscribed"));
            }
            type Numbers = (Option<String>, Option<String>, Option<String>, String);
            let numbers: Option<Numbers> = call_logs::table
                .filter(call_logs::call_sid.eq(call_sid.as_str()))
                .filter(call_logs::user_id.eq(tenant_uuid))
                // An ended call's token opens nothing (the stream admission
                // refuses it first; this holds even if that raced the end).
                .filter(call_logs::ended_at.is_null())
                .select((
                    call_logs::caller_number,
                    call_logs::recipient_number,
                    call_logs::number_used,
                    call_logs::direction,
                ))
                .first(&mut conn)
                .await
                .optional()
                .map_err(db_error)?;
            let (caller, recipient, number_used, direction) = numbers
                .ok_or_else(|| PortError::new("no live call record for this CallSid and tenant"))?;
            let numbers = plan::CallNumbers::from_log(&direction, caller, recipient, number_used);
            Ok(plan::build(
                call_sid, tenant, &profile, &prompt, numbers, &openai,
            ))
        })
    }

    fn finish_call(&self, end: CallEnd) -> PortFuture<Result<(), PortError>> {
        let pool = self.pool.clone();
        let summary_after = self.summaries.then_some(0);
        let nudge = self.summary_nudge.clone();
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(db_error)?;
            calls::finish(
                &mut conn,
                calls::Finish {
                    call_sid: end.call_sid.as_str(),
                    ended_at: end.ended_at.min(Utc::now()),
                    status: None,
                    duration_seconds: None,
                    end_reason: Some(end.reason.as_str()),
                    transferred_to: end.transferred_to.as_deref(),
                    summary_after_seconds: summary_after,
                },
            )
            .await
            .map_err(db_error)?;
            // A pool number the call went out on comes back even if Twilio's
            // final status callback is lost (idempotent with that path).
            crate::pool::release_for_call(&mut conn, end.call_sid.as_str(), None)
                .await
                .map_err(db_error)?;
            nudge.notify_one();
            Ok(())
        })
    }
}

/// Transcript segments into `transcript_segments`.
pub struct DbTranscriptSink {
    pool: AsyncPool,
}

impl DbTranscriptSink {
    /// A sink over `pool`.
    pub fn new(pool: AsyncPool) -> Self {
        Self { pool }
    }
}

impl TranscriptSink for DbTranscriptSink {
    fn write(&self, batch: Vec<Segment>) -> PortFuture<Result<(), PortError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(db_error)?;
            transcripts::insert_batch(&mut conn, &batch)
                .await
                .map_err(db_error)?;
            Ok(())
        })
    }
}
