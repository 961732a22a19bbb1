//! `bench persistence`: transcript segments per second through the PersistenceActor (on its
//! own arbiter, as in production) into the real `transcript_segments` table via
//! [`DbTranscriptSink`], with the batch size and flush interval given. Segments are
//! produced faster than they can be written, so the figure is what the actor sustains.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use callvisor_actors::ids::CallSid;
use callvisor_actors::persistence::{AppendSegment, Flush, GetStats, PersistenceActor};
use callvisor_actors::ports::{Role, Segment};
use clap::Args;
use diesel::connection::SimpleConnection;
use diesel::sql_types::BigInt;
use diesel::{QueryableByName, RunQueryDsl};

use super::{out, ScratchDb};
use callvisor::calls::store::DbTranscriptSink;
use callvisor::db::{self, migrate};

/// `bench persistence` options.
#[derive(Debug, Clone, Args)]
pub struct PersistenceArgs {
    /// Segments to write.
    #[arg(long, default_value_t = 300_000)]
    pub segments: usize,
    /// Calls they belong to.
    #[arg(long, default_value_t = 1000)]
    pub calls: usize,
    /// Segments per INSERT (`calls.persistence_batch_size`).
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Longest wait of a buffered segment (`calls.persistence_flush_ms`).
    #[arg(long, default_value_t = 200)]
    pub flush_ms: u64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Runs the persistence benchmark and prints its figures.
///
/// # Errors
/// No database, or the run did not write every segment.
pub fn run(args: &PersistenceArgs) -> Result<(), String> {
    let db = ScratchDb::create()?;
    let mut conn =
        migrate::connect_with_retry(&db.url, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    migrate::run_pending(&mut conn).map_err(|e| e.to_string())?;
    conn.batch_execute(&format!(
        "INSERT INTO profiles (phone_number, is_subscribed, display_name) VALUES ('+15550300000', true, 'bench');
         INSERT INTO call_logs (call_sid, user_id)
         SELECT 'CAbench' || g, (SELECT id FROM profiles WHERE phone_number = '+15550300000')
         FROM generate_series(0, {}) g",
        args.calls.max(1) - 1
    ))
    .map_err(|e| e.to_string())?;
    let calls = args.calls.max(1);
    let sids: Vec<CallSid> = (0..calls)
        .filter_map(|i| CallSid::parse(&format!("CAbench{i}")).ok())
        .collect();
    let now = chrono::Utc::now();
    let segments: Vec<Segment> = (0..args.segments)
        .filter_map(|i| {
            Some(Segment {
                call_sid: sids.get(i % calls)?.clone(),
                seq: (i / calls) as u32,
                role: if i % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                },
                text: format!(
                    "I would like a table for {} people tomorrow at eight, please.",
                    i % 9 + 1
                ),
                at: now,
            })
        })
        .collect();
    let total = segments.len();
    let system = actix_web::rt::System::new();
    let (elapsed, stats) = system.block_on(async {
        let pool =
            db::build_async_pool(&db.url, 4, Duration::from_secs(10)).map_err(|e| e.to_string())?;
        let sink = Arc::new(DbTranscriptSink::new(pool));
        let arbiter = Arbiter::new();
        let batch = args.batch_size;
        let interval = Duration::from_millis(args.flush_ms);
        let actor = PersistenceActor::start_in_arbiter(&arbiter.handle(), move |_| {
            PersistenceActor::new(sink, batch, interval)
        });
        let started = Instant::now();
        for segment in segments {
            actor.do_send(AppendSegment { segment });
        }
        actor.send(Flush).await.map_err(|e| e.to_string())?;
        let elapsed = started.elapsed();
        let stats = actor.send(GetStats).await.map_err(|e| e.to_string())?;
        arbiter.stop();
        Ok::<_, String>((elapsed, stats))
    })?;
    let count: Count = diesel::sql_query("SELECT count(*) AS n FROM transcript_segments")
        .get_result(&mut conn)
        .map_err(|e| e.to_string())?;
    drop(conn);
    let rate = total as f64 / elapsed.as_secs_f64().max(1e-9);
    out!("== callvisor-dev bench persistence");
    out!(
        "segments   {total} over {calls} calls, batch size {}, flush interval {} ms",
        args.batch_size,
        args.flush_ms
    );
    out!(
        "written    {} in {:.2} s: {rate:.0} segments/s, {} INSERTs ({:.1} ms each), {} retries; {} rows in PostgreSQL",
        stats.written,
        elapsed.as_secs_f64(),
        stats.batches,
        elapsed.as_secs_f64() * 1000.0 / stats.batches.max(1) as f64,
        stats.retries,
        count.n
    );
    if count.n != total as i64 {
        return Err(format!("{} segments in the table, {total} sent", count.n));
    }
    Ok(())
}
