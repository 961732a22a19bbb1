//! PersistenceActor against an in-memory sink: batches by size and by time,
//! keeps order, retries a failing sink without losing anything, and `Flush`
//! resolves only once everything before it is written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use callvisor_actors::ids::CallSid;
use callvisor_actors::persistence::{
    AppendSegment, Flush, GetStats, PersistenceActor, TakeUnwritten,
};
use callvisor_actors::ports::{PortError, PortFuture, Role, Segment, TranscriptSink};
use chrono::Utc;

#[allow(dead_code)] // the Realtime stand-in in `support` is for other tests
mod support;
use support::wait::eventually;

#[derive(Default)]
struct MemorySink {
    batches: Mutex<Vec<Vec<u32>>>,
    failures_left: Mutex<u32>,
}

impl TranscriptSink for MemorySink {
    fn write(&self, batch: Vec<Segment>) -> PortFuture<Result<(), PortError>> {
        let result = {
            let mut failures = self.failures_left.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                Err(PortError::new("database is away"))
            } else {
                self.batches
                    .lock()
                    .unwrap()
                    .push(batch.iter().map(|s| s.seq).collect());
                Ok(())
            }
        };
        Box::pin(async move { result })
    }
}

fn segment(seq: u32) -> Segment {
    Segment {
        call_sid: CallSid::parse("CA1").unwrap(),
        seq,
        role: Role::User,
        text: format!("segment {seq}"),
        at: Utc::now(),
    }
}

fn start(sink: Arc<MemorySink>, batch: usize, interval: Duration) -> Addr<PersistenceActor> {
    PersistenceActor::new(sink, batch, interval).start()
}

#[actix_rt::test]
async fn a_full_batch_is_written_at_once_in_one_statement() {
    // Arrange: a long interval, so only the size can trigger the write.
    let sink = Arc::new(MemorySink::default());
    let actor = start(sink.clone(), 4, Duration::from_secs(60));
    // Act
    for seq in 0..8 {
        actor.do_send(AppendSegment {
            segment: segment(seq),
        });
    }
    // Assert: written without waiting for the (minute-long) interval.
    assert!(
        eventually(Duration::from_secs(5), || sink
            .batches
            .lock()
            .unwrap()
            .len()
            >= 2)
        .await,
        "two full batches written: {:?}",
        sink.batches.lock().unwrap()
    );
    assert_eq!(
        *sink.batches.lock().unwrap(),
        vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]]
    );
}

#[actix_rt::test]
async fn a_partial_batch_is_written_after_the_interval() {
    let sink = Arc::new(MemorySink::default());
    let actor = start(sink.clone(), 100, Duration::from_millis(50));
    actor.do_send(AppendSegment {
        segment: segment(0),
    });
    actor.do_send(AppendSegment {
        segment: segment(1),
    });
    assert!(
        sink.batches.lock().unwrap().is_empty(),
        "not before the interval"
    );
    assert!(
        eventually(Duration::from_secs(5), || !sink
            .batches
            .lock()
            .unwrap()
            .is_empty())
        .await,
        "written after the interval"
    );
    assert_eq!(*sink.batches.lock().unwrap(), vec![vec![0, 1]]);
}

#[actix_rt::test]
async fn a_failing_sink_is_retried_and_nothing_is_lost_or_reordered() {
    // Arrange: the first three writes fail.
    let sink = Arc::new(MemorySink::default());
    *sink.failures_left.lock().unwrap() = 3;
    let actor = start(sink.clone(), 2, Duration::from_millis(10));
    // Act
    for seq in 0..5 {
        actor.do_send(AppendSegment {
            segment: segment(seq),
        });
    }
    actor.send(Flush).await.unwrap();
    // Assert
    let written: Vec<u32> = sink
        .batches
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .copied()
        .collect();
    assert_eq!(written, vec![0, 1, 2, 3, 4]);
    let stats = actor.send(GetStats).await.unwrap();
    assert_eq!(stats.retries, 3);
    assert_eq!(stats.written, 5);
    assert_eq!(stats.buffered, 0);
}

#[actix_rt::test]
async fn flush_waits_for_everything_appended_before_it() {
    let sink = Arc::new(MemorySink::default());
    let actor = start(sink.clone(), 1000, Duration::from_secs(60));
    for seq in 0..10 {
        actor.do_send(AppendSegment {
            segment: segment(seq),
        });
    }
    actor.send(Flush).await.unwrap();
    let written: usize = sink.batches.lock().unwrap().iter().map(Vec::len).sum();
    assert_eq!(written, 10);
    // An empty flush returns at once.
    actor.send(Flush).await.unwrap();
}

/// A database that never answers: every write hangs.
struct SilentSink;

impl TranscriptSink for SilentSink {
    fn write(&self, _batch: Vec<Segment>) -> PortFuture<Result<(), PortError>> {
        Box::pin(std::future::pending())
    }
}

#[actix_rt::test]
async fn take_unwritten_hands_over_the_batch_in_flight_and_the_buffer() {
    // Arrange: one batch of two stuck in flight, three more buffered behind it.
    let actor = PersistenceActor::new(Arc::new(SilentSink), 2, Duration::from_millis(10)).start();
    for seq in 0..5 {
        actor.do_send(AppendSegment {
            segment: segment(seq),
        });
    }
    let flush = actor.send(Flush);
    let flush = actix_rt::spawn(flush);
    // Act
    let unwritten = actor.send(TakeUnwritten).await.unwrap();
    // Assert: everything not known written, in order; the waiting flush resolves.
    let seqs: Vec<u32> = unwritten.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4]);
    actix_rt::time::timeout(Duration::from_secs(5), flush)
        .await
        .expect("the flush resolves once the rest is handed over")
        .unwrap()
        .unwrap();
    let stats = actor.send(GetStats).await.unwrap();
    assert_eq!((stats.buffered, stats.written), (0, 0));
    // Nothing is handed over twice.
    assert!(actor.send(TakeUnwritten).await.unwrap().is_empty());
}
