//! A call survives what networks do: Twilio re-opening the media socket on a
//! hand-over, and an unreachable agent (the caller hears an apology, never
//! silence).

use std::time::Duration;

use callvisor::standins::{CallEnd, CallerSession, CloseReason};

use crate::helpers::calls::CallWorld;
use crate::helpers::raw_stream::{Ending, RawStream};

#[actix_web::test]
async fn a_second_socket_for_a_live_call_replaces_the_first_without_a_second_agent() {
    // Arrange: a call on its first socket.
    let world = CallWorld::start().await;
    let (call_sid, params) = world.answer().await;
    let mut first = RawStream::connect(&world.app.address).await;
    first.start(&call_sid, &params).await;
    first.media(25).await;
    world.wait_for_agent().await;
    // Act: Twilio opens a second socket for the same call.
    let mut second = RawStream::connect(&world.app.address).await;
    second.start(&call_sid, &params).await;
    second.media(25).await;
    // Assert: the first is closed by us, the second carries the call, one agent.
    // Closed by us: a close frame, or a reset when our close found the client's
    // last frames unread (the kernel then discards what was in flight).
    let ending = first.ending(Duration::from_secs(3)).await;
    assert!(
        matches!(ending, Ending::Closed(_) | Ending::Dropped),
        "{ending:?}"
    );
    assert_eq!(
        second.ending(Duration::from_millis(500)).await,
        Ending::StillOpen
    );
    assert_eq!(
        world.standins.realtime.live_sessions(),
        1,
        "one agent, not two"
    );
    let agent = world.standins.realtime.sessions().pop().unwrap();
    assert!(
        agent.appends >= 25,
        "the new socket's audio reaches the agent: {}",
        agent.appends
    );
    let row = world.call_row(&call_sid).unwrap();
    assert!(!row.ended, "the old socket's close did not end the call");
    // The call ends when the current socket stops.
    let mut buf = String::new();
    callvisor_actors::protocol::twilio::write_stop(
        &mut buf,
        &second.stream_sid.clone(),
        99,
        "AC00000000000000000000000000000000",
        &call_sid,
    );
    second.send(buf).await;
    let row = world
        .wait_for_row(&call_sid, Duration::from_secs(10), |r| r.ended)
        .await;
    assert_eq!(row.end_reason.as_deref(), Some("twilio_stop"));
    world.stop().await;
}

#[actix_web::test]
async fn an_unreachable_agent_means_an_apology_through_twilio_and_a_clean_end() {
    // Arrange: the Realtime API refuses every connection.
    let world = CallWorld::start().await;
    world.standins.realtime.refuse_connections(true);
    let mut caller = world.caller();
    caller.speak_for = Duration::from_secs(8);
    caller.end = CallEnd::Manual;
    // Act
    let session = CallerSession::start(caller).await.unwrap();
    let call_sid = session.call_sid().to_owned();
    let report = session.wait().await;
    // Assert: Twilio was asked to say sorry and hang up while the stream was
    // open; the stand-in does not redirect, so our side closed it afterwards.
    assert!(
        matches!(report.close, Some(CloseReason::ServerClosed { .. })),
        "{:?}",
        report.close
    );
    let updates = world.standins.twilio.call_updates(&call_sid);
    assert_eq!(updates.len(), 1, "{updates:?}");
    let twiml = updates[0]
        .iter()
        .find(|(k, _)| k == "Twiml")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(
        twiml.contains("<Say") && twiml.contains("sorry") && twiml.contains("<Hangup/>"),
        "{twiml}"
    );
    assert!(
        world.standins.realtime.connections_rejected() >= 3,
        "it tried again before giving up"
    );
    let row = world
        .wait_for_row(&call_sid, Duration::from_secs(10), |r| r.ended)
        .await;
    assert_eq!(row.end_reason.as_deref(), Some("upstream_failed"));
    world.stop().await;
}
