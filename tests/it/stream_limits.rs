//! A media socket is a stranger until its `start` passes: it has a deadline
//! for `start`, only so many strangers wait at once, and a few bad frames
//! close it. A call's socket refuses payloads larger than Twilio ever sends.

use std::time::{Duration, Instant};

use callvisor_standins::{wait_until, StandInsConfig};

use crate::helpers::calls::CallWorld;
use crate::helpers::raw_stream::{Ending, RawStream};

const START_TIMEOUT: (&str, &str) = ("CALLVISOR__CALLS__STREAM_START_TIMEOUT_MS", "400");

#[actix_web::test]
async fn a_socket_that_never_sends_start_is_closed_by_the_deadline() {
    // Arrange: a 400 ms deadline (the idle timeout, 10 s, is far behind it).
    let world = CallWorld::start_with(StandInsConfig::default(), &[START_TIMEOUT]).await;
    let mut stranger = RawStream::connect(&world.app.address).await;
    let opened = Instant::now();
    // Act: talk, but never `start` (frames keep the idle timer fresh).
    stranger
        .send(r#"{"event":"connected","protocol":"Call"}"#)
        .await;
    // Assert
    assert_eq!(
        stranger.ending(Duration::from_secs(5)).await,
        Ending::Closed(Some(1008))
    );
    assert!(
        opened.elapsed() < Duration::from_secs(3),
        "{:?}",
        opened.elapsed()
    );
    world.stop().await;
}

#[actix_web::test]
async fn sockets_over_the_cap_of_those_awaiting_start_are_refused_and_a_freed_slot_is_reused() {
    // Arrange: three strangers at most.
    let world = CallWorld::start_with(
        StandInsConfig::default(),
        &[("CALLVISOR__CALLS__STREAM_MAX_AWAITING_START", "3")],
    )
    .await;
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(RawStream::connect(&world.app.address).await);
    }
    // Act + Assert: the fourth is refused at the upgrade.
    assert_eq!(
        RawStream::try_connect(&world.app.address).await.err(),
        Some(Some(503))
    );
    let body = awc::Client::new()
        .get(format!("{}/metrics", world.app.address))
        .send()
        .await
        .unwrap()
        .body()
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&body);
    assert!(
        metrics.contains("callvisor_media_sockets_awaiting_start 3"),
        "{metrics}"
    );
    // One leaves (its slot comes back once): one more may wait, not two.
    waiting.pop().unwrap().close().await;
    let deadline = Instant::now() + Duration::from_secs(3);
    let again = loop {
        match RawStream::try_connect(&world.app.address).await {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => {
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("the freed slot never came back: {status:?}"),
        }
    };
    assert_eq!(
        RawStream::try_connect(&world.app.address).await.err(),
        Some(Some(503))
    );
    drop(again);
    world.stop().await;
}

#[actix_web::test]
async fn binary_or_garbage_sockets_are_closed_after_a_few_bad_frames() {
    let world = CallWorld::start().await;
    // Binary frames (Twilio sends text only).
    let mut binary = RawStream::connect(&world.app.address).await;
    for _ in 0..5 {
        binary.send_binary(b"\x00\x01\x02").await;
    }
    // Garbage text.
    let mut garbage = RawStream::connect(&world.app.address).await;
    for _ in 0..5 {
        garbage.send("}{ not twilio").await;
    }
    // Both closed well before the start deadline (5 s).
    assert_eq!(
        binary.ending(Duration::from_secs(2)).await,
        Ending::Closed(Some(1008))
    );
    assert_eq!(
        garbage.ending(Duration::from_secs(2)).await,
        Ending::Closed(Some(1008))
    );
    world.stop().await;
}

#[actix_web::test]
async fn media_payloads_larger_than_twilio_sends_are_dropped_and_enough_of_them_close_the_socket() {
    // Arrange: a live call.
    let world = CallWorld::start().await;
    let (call_sid, params) = world.answer().await;
    let mut stream = RawStream::connect(&world.app.address).await;
    stream.start(&call_sid, &params).await;
    stream.media(1).await;
    world.wait_for_agent().await;
    let realtime = &world.standins.realtime;
    // Act: oversized payloads (valid base64, 4 KiB), then normal frames.
    let big = "A".repeat(4096);
    for _ in 0..10 {
        stream.media_payload(&big).await;
    }
    stream.media(5).await;
    // Assert: only the normal frames reached the agent (frames keep their order).
    assert!(
        wait_until(Duration::from_secs(5), || {
            realtime.with_session(0, |s| s.appends) >= Some(6)
        })
        .await
    );
    assert_eq!(realtime.with_session(0, |s| s.appends), Some(6));
    assert_eq!(
        stream.ending(Duration::from_millis(300)).await,
        Ending::StillOpen
    );
    // Enough bad frames end the socket (and, without a new one, the call).
    for _ in 0..50 {
        stream.media_payload(&big).await;
    }
    assert_eq!(
        stream.ending(Duration::from_secs(3)).await,
        Ending::Closed(Some(1008))
    );
    world.stop().await;
}

/// The figure for the report: an idle attacker opening 500 sockets that never
/// send `start`. Before: every socket was held until the idle timeout, and
/// forever by a client answering pings. Now: at most the cap is held, and
/// none after the deadline.
#[actix_web::test]
async fn an_idle_attacker_holds_no_socket_after_the_start_deadline() {
    let world = CallWorld::start_with(
        StandInsConfig::default(),
        &[("CALLVISOR__CALLS__STREAM_START_TIMEOUT_MS", "1000")],
    )
    .await;
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..500 {
        match RawStream::try_connect(&world.app.address).await {
            Ok(stream) => held.push(stream),
            Err(_) => refused += 1,
        }
    }
    let accepted = held.len();
    // Keep every socket talking (as if answering pings) past the deadline.
    let mut still_open = 0;
    for stream in &mut held {
        stream.send(r#"{"event":"connected"}"#).await;
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    for stream in &mut held {
        let left = deadline.saturating_duration_since(Instant::now());
        if stream.ending(left.max(Duration::from_millis(1))).await == Ending::StillOpen {
            still_open += 1;
        }
    }
    println!(
        "IDLE_ATTACKER sockets=500 accepted={accepted} refused={refused} still_open_after_deadline={still_open}"
    );
    assert!(accepted <= 256, "{accepted}");
    assert_eq!(accepted + refused, 500);
    assert_eq!(still_open, 0);
    world.stop().await;
}

#[actix_web::test]
async fn a_socket_whose_call_cannot_be_found_in_time_is_closed_and_its_held_audio_goes_nowhere() {
    // Arrange: a 400 ms deadline for `start`, as long again to be attached;
    // the call's row is locked so the stream's admission waits.
    let world = CallWorld::start_with(StandInsConfig::default(), &[START_TIMEOUT]).await;
    let (call_sid, params) = world.answer().await;
    let mut lock = world.db().connect();
    diesel::connection::SimpleConnection::batch_execute(
        &mut lock,
        &format!("BEGIN; SELECT 1 FROM call_logs WHERE call_sid = '{call_sid}' FOR UPDATE;"),
    )
    .unwrap();
    // Act: a valid start, then audio that can only be held.
    let mut stream = RawStream::connect(&world.app.address).await;
    let started = Instant::now();
    stream.start(&call_sid, &params).await;
    stream.media(500).await;
    // Assert: closed by the attach deadline, not left holding audio.
    assert_eq!(
        stream.ending(Duration::from_secs(5)).await,
        Ending::Closed(Some(1008))
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    diesel::connection::SimpleConnection::batch_execute(&mut lock, "ROLLBACK").unwrap();
    let realtime = &world.standins.realtime;
    assert!(realtime.wait_for_sessions(1, Duration::from_secs(3)).await);
    assert_eq!(realtime.with_session(0, |s| s.appends), Some(0));
    world.stop().await;
}
