//! Malformed input from either side (bad JSON, unknown events, missing
//! fields, oversized frames) gets a log line and a skip or a clean close,
//! never a panic; the service keeps serving.

use std::time::Duration;

use callvisor_standins::realtime_script::SessionCommand;
use callvisor_standins::realtime_server::SessionTarget;
use callvisor_standins::{CallEnd, CallerSession, CloseReason};

use crate::helpers::calls::CallWorld;
use crate::helpers::raw_stream::{Ending, RawStream};

#[actix_web::test]
async fn junk_from_twilio_is_skipped_and_an_oversized_frame_closes_the_socket() {
    // Arrange: a call answered by the webhook, its socket driven by hand.
    let world = CallWorld::start().await;
    let (call_sid, params) = world.answer().await;
    let mut stream = RawStream::connect(&world.app.address).await;
    // Act: junk before start (fewer bad frames than close a stranger's
    // socket, see `stream_limits`), a real start, junk during the call.
    for junk in [
        "not json",
        r#"{"event":"media"}"#,
        r#"{"event":"party"}"#,
        "[1,2,3]",
    ] {
        stream.send(junk).await;
    }
    stream.start(&call_sid, &params).await;
    stream.media(10).await;
    for junk in [
        r#"{"event":"media","streamSid":"MZ1","media":{"payload":"!!not base64!!","chunk":"1","timestamp":"0"}}"#,
        r#"{"event":"mark"}"#,
        r#"{"event":"media","media":{"payload":42}}"#,
        &format!(r#"{{"event":"x","junk":"{}"}}"#, "[".repeat(10_000)),
    ] {
        stream.send(junk).await;
    }
    stream.media(10).await;
    // Assert: still open and talking after the junk...
    assert_eq!(
        stream.ending(Duration::from_millis(500)).await,
        Ending::StillOpen
    );
    // ...closed cleanly by a frame over the limit, and the call logged as lost.
    stream.send("x".repeat(200 * 1024)).await;
    assert_ne!(
        stream.ending(Duration::from_secs(3)).await,
        Ending::StillOpen
    );
    let row = world
        .wait_for_row(&call_sid, Duration::from_secs(10), |r| r.ended)
        .await;
    assert_eq!(row.end_reason.as_deref(), Some("socket_lost"));
    let (status, _) = world.app.get_json("/healthz").await;
    assert_eq!(status, 200);
    world.stop().await;
}

#[actix_web::test]
async fn junk_from_the_realtime_api_is_skipped_and_an_oversized_event_reconnects() {
    // Arrange
    let world = CallWorld::start().await;
    let mut caller = world.caller();
    caller.speak_for = Duration::from_secs(3);
    caller.end = CallEnd::Stop {
        after_audio: Duration::from_millis(500),
    };
    let session = CallerSession::start(caller).await.unwrap();
    let call_sid = session.call_sid().to_owned();
    world.wait_for_agent().await;
    // Act: junk the real API never sends, then an event over the frame limit.
    for junk in [
        "garbage{".to_owned(),
        r#"{"type":"response.output_audio.delta"}"#.to_owned(),
        r#"{"type":"conversation.item.input_audio_transcription.completed"}"#.to_owned(),
        r#"{"type":"error"}"#.to_owned(),
        r#"{"type":"brand.new.event","payload":{"deep":[[[[]]]]}}"#.to_owned(),
        r#"{"type":"response.output_audio.delta","item_id":"i","response_id":"r","delta":"%%%"}"#
            .to_owned(),
    ] {
        world
            .standins
            .realtime
            .command(SessionTarget::Index(0), SessionCommand::Raw(junk))
            .await;
    }
    let huge = format!(
        r#"{{"type":"response.output_audio.delta","item_id":"i","response_id":"r","delta":"{}"}}"#,
        "A".repeat(5 * 1024 * 1024)
    );
    world
        .standins
        .realtime
        .command(SessionTarget::Index(0), SessionCommand::Raw(huge))
        .await;
    let report = session.wait().await;
    // Assert: the caller was never cut off; the agent came back.
    assert_eq!(report.close, Some(CloseReason::StopSent));
    assert_eq!(
        world.standins.realtime.sessions_opened(),
        2,
        "one reconnect after the oversized event"
    );
    let row = world
        .wait_for_row(&call_sid, Duration::from_secs(10), |r| r.ended)
        .await;
    assert_eq!(row.status, "completed");
    let (status, _) = world.app.get_json("/healthz").await;
    assert_eq!(status, 200);
    world.stop().await;
}
