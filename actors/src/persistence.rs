//! PersistenceActor: transcript segments to the [`TranscriptSink`] in batches.
//!
//! Segments are buffered and written as one multi-row statement when the
//! batch is full or `flush_interval` after the first buffered one, whichever
//! comes first: never a database round trip per segment, never on the audio
//! path. A failed write keeps the batch and retries with backoff (the
//! database may be briefly away). One write is in flight at a time, so order
//! is kept. [`Flush`] resolves once everything buffered before it is written
//! (call end, shutdown). At shutdown a flush that cannot finish (the
//! database is down) is cut short by [`TakeUnwritten`]: the actor hands over
//! everything not known to be written, the batch in flight included, and the
//! service spills it to a file.
//!
//! A permanent singleton on its own arbiter; the sink is idempotent per
//! (call, seq), so a batch retried after a timeout that did commit is harmless.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::error_chain::Chain;
use crate::events;
use crate::ports::{Segment, TranscriptSink};

/// Longest pause between retries of a failed write.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// First pause after a failed write.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Buffer one segment (from a CallActor).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AppendSegment {
    /// The segment.
    pub segment: Segment,
}

/// Write everything buffered so far; resolves when it is in the sink.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Flush;

/// Hand over every segment not known to be written (the buffer and the batch
/// in flight), and stop retrying them; waiting [`Flush`]es resolve. Sent at
/// shutdown when the flush missed its deadline.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Segment>")]
pub struct TakeUnwritten;

/// Counters, for tests and metrics.
#[derive(Debug, Message)]
#[rtype(result = "PersistenceStats")]
pub struct GetStats;

/// What the actor has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PersistenceStats {
    /// Segments written.
    pub written: u64,
    /// Write statements that succeeded.
    pub batches: u64,
    /// Writes that failed and were retried.
    pub retries: u64,
    /// Segments waiting.
    pub buffered: usize,
}

/// The batching writer.
pub struct PersistenceActor {
    sink: Arc<dyn TranscriptSink>,
    batch_size: usize,
    flush_interval: Duration,
    buffer: Vec<Segment>,
    in_flight: bool,
    /// The batch being written; a copy stays here until the write succeeds.
    in_flight_batch: Vec<Segment>,
    /// Bumped by [`TakeUnwritten`]: a write started before it is no longer ours to retry.
    epoch: u64,
    timer: Option<SpawnHandle>,
    backoff: Duration,
    waiters: Vec<oneshot::Sender<()>>,
    stats: PersistenceStats,
}

impl PersistenceActor {
    /// A writer of batches of up to `batch_size`, flushed at least every `flush_interval`.
    pub fn new(sink: Arc<dyn TranscriptSink>, batch_size: usize, flush_interval: Duration) -> Self {
        Self {
            sink,
            batch_size: batch_size.max(1),
            flush_interval,
            buffer: Vec::new(),
            in_flight: false,
            in_flight_batch: Vec::new(),
            epoch: 0,
            timer: None,
            backoff: FIRST_BACKOFF,
            waiters: Vec::new(),
            stats: PersistenceStats::default(),
        }
    }

    fn schedule(&mut self, ctx: &mut Context<Self>, after: Duration) {
        if self.timer.is_none() {
            self.timer = Some(ctx.run_later(after, |act, ctx| {
                act.timer = None;
                act.write_next(ctx);
            }));
        }
    }

    fn write_next(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight {
            return;
        }
        if self.buffer.is_empty() {
            for waiter in self.waiters.drain(..) {
                let _ = waiter.send(());
            }
            return;
        }
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        let take = self.buffer.len().min(self.batch_size);
        let batch: Vec<Segment> = self.buffer.drain(..take).collect();
        self.in_flight = true;
        let write = self.sink.write(batch.clone());
        self.in_flight_batch = batch;
        let epoch = self.epoch;
        ctx.spawn(write.into_actor(self).map(move |result, act, ctx| {
            if act.epoch != epoch {
                return; // handed over by `TakeUnwritten` meanwhile
            }
            act.in_flight = false;
            let batch = std::mem::take(&mut act.in_flight_batch);
            match result {
                Ok(()) => {
                    act.stats.written += batch.len() as u64;
                    act.stats.batches += 1;
                    act.backoff = FIRST_BACKOFF;
                    // More waiting, or waiters to wake: go again at once.
                    act.write_next(ctx);
                }
                Err(e) => {
                    act.stats.retries += 1;
                    log::warn!(
                        "{} segments={} retry_in_ms={} error={:?}",
                        events::PERSISTENCE_RETRY,
                        batch.len(),
                        act.backoff.as_millis(),
                        Chain(&e)
                    );
                    // Put the batch back in front: order is kept.
                    act.buffer.splice(0..0, batch);
                    let delay = act.backoff;
                    act.backoff = (act.backoff * 2).min(MAX_BACKOFF);
                    act.schedule(ctx, delay);
                }
            }
        }));
    }
}

impl Actor for PersistenceActor {
    type Context = Context<Self>;
}

impl Supervised for PersistenceActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // The buffer survives a restart (same struct); timers and the write
        // in flight do not: its batch goes back in front.
        self.timer = None;
        self.in_flight = false;
        self.epoch += 1;
        let batch = std::mem::take(&mut self.in_flight_batch);
        self.buffer.splice(0..0, batch);
    }
}

impl Handler<AppendSegment> for PersistenceActor {
    type Result = ();

    fn handle(&mut self, msg: AppendSegment, ctx: &mut Self::Context) {
        self.buffer.push(msg.segment);
        if self.buffer.len() >= self.batch_size {
            self.write_next(ctx);
        } else {
            self.schedule(ctx, self.flush_interval);
        }
    }
}

impl Handler<Flush> for PersistenceActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Flush, ctx: &mut Self::Context) -> Self::Result {
        if self.buffer.is_empty() && !self.in_flight {
            return Box::pin(async {});
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        self.write_next(ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<TakeUnwritten> for PersistenceActor {
    type Result = MessageResult<TakeUnwritten>;

    fn handle(&mut self, _msg: TakeUnwritten, ctx: &mut Self::Context) -> Self::Result {
        self.epoch += 1;
        self.in_flight = false;
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        let mut unwritten = std::mem::take(&mut self.in_flight_batch);
        unwritten.append(&mut self.buffer);
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(());
        }
        MessageResult(unwritten)
    }
}

impl Handler<GetStats> for PersistenceActor {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _msg: GetStats, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(PersistenceStats {
            buffered: self.buffer.len(),
            ..self.stats
        })
    }
}
