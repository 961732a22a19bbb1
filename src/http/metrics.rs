//! `GET /metrics`: this instance's gauges and counters in Prometheus' text
//! format. Cross-instance views (all live calls, the pool) are the admin
//! API's, read from the database.

use std::fmt::Write;

use actix_web::{web, HttpResponse};
use callvisor_actors::persistence::GetStats;
use callvisor_actors::realtime::preopen;
use callvisor_actors::supervisor::messages::ListCalls;

use crate::state::AppState;

/// `GET /metrics`
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let calls = &state.calls;
    let live = calls
        .supervisor
        .send(ListCalls)
        .await
        .map(|c| c.len())
        .unwrap_or(0);
    let stats = calls.persistence.send(GetStats).await.unwrap_or_default();
    let mut out = String::with_capacity(1024);
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "callvisor_live_calls",
        "gauge",
        "Calls live on this instance.",
        live as u64,
    );
    metric(
        "callvisor_preopened_sessions",
        "gauge",
        "Realtime sessions opened while ringing, not adopted yet.",
        preopen::parked_count() as u64,
    );
    metric(
        "callvisor_media_sockets_awaiting_start",
        "gauge",
        "Media sockets that have not sent a valid start yet (capped by calls.stream_max_awaiting_start).",
        calls.start_gate.waiting() as u64,
    );
    metric(
        "callvisor_transcript_segments_written_total",
        "counter",
        "Transcript segments written to PostgreSQL.",
        stats.written,
    );
    metric(
        "callvisor_transcript_batches_total",
        "counter",
        "Transcript INSERT statements.",
        stats.batches,
    );
    metric(
        "callvisor_transcript_write_retries_total",
        "counter",
        "Transcript writes that failed and were retried.",
        stats.retries,
    );
    metric(
        "callvisor_transcript_segments_buffered",
        "gauge",
        "Transcript segments waiting to be written.",
        stats.buffered as u64,
    );
    metric(
        "callvisor_readiness_db_checks_total",
        "counter",
        "Database checks made by /readyz (its answer is reused for a second).",
        state.readiness.checks(),
    );
    metric(
        "callvisor_rate_limited_total",
        "counter",
        "Requests refused by a rate limit (429).",
        state.rate_limits.refused_total(),
    );
    metric(
        "callvisor_rate_limit_sources",
        "gauge",
        "Source addresses holding a rate-limit bucket.",
        state.rate_limits.tracked_sources() as u64,
    );
    metric(
        "callvisor_draining",
        "gauge",
        "1 once shutdown began.",
        u64::from(state.lifecycle.is_draining()),
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}
