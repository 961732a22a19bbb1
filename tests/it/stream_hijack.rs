//! A stream token is good for one media socket of a call that is still live.
//! A replayed `start` cannot take a live call from its caller, cannot open
//! anything after the call ended, and a stream recorded as live elsewhere is
//! refused here; only Twilio's own re-connection (same streamSid and
//! accountSid, the first socket gone) resumes a call (`call_recovery`).

use std::time::Duration;

use callvisor_standins::wait_until;
use diesel::connection::SimpleConnection;

use crate::helpers::calls::CallWorld;
use crate::helpers::raw_stream::{Ending, RawStream};

fn stop_frame(stream: &RawStream, call_sid: &str) -> String {
    let mut buf = String::new();
    callvisor_wire::protocol::twilio::write_stop(
        &mut buf,
        &stream.stream_sid,
        99,
        &stream.account_sid,
        call_sid,
    );
    buf
}

#[actix_web::test]
async fn a_replayed_start_while_the_call_is_live_is_refused_and_the_caller_keeps_the_call() {
    // Arrange: a live call on its socket, the agent hearing it.
    let world = CallWorld::start().await;
    let (call_sid, params) = world.answer().await;
    let mut caller = RawStream::connect(&world.app.address).await;
    caller.start(&call_sid, &params).await;
    caller.media(25).await;
    let realtime = &world.standins.realtime;
    assert!(
        wait_until(Duration::from_secs(5), || {
            realtime.with_session(0, |s| s.appends) == Some(25)
        })
        .await
    );
    // Act: someone replays the very same start (token, streamSid, accountSid).
    let mut replay = RawStream::connect(&world.app.address).await;
    replay.start(&call_sid, &params).await;
    replay.media(25).await;
    // Assert: refused by policy; nothing of it reached the agent.
    assert_eq!(
        replay.ending(Duration::from_secs(3)).await,
        Ending::Closed(Some(1008))
    );
    // The caller keeps talking to the same agent...
    caller.media(25).await;
    assert!(
        wait_until(Duration::from_secs(5), || {
            realtime.with_session(0, |s| s.appends) == Some(50)
        })
        .await,
        "the caller's frames still reach the agent: {:?}",
        realtime.with_session(0, |s| s.appends)
    );
    // ...and still hears it.
    assert_eq!(realtime.emit_agent_response("Still here.").await, 1);
    assert!(caller.hears_media(Duration::from_secs(5)).await);
    assert_eq!(realtime.sessions_opened(), 1, "no second agent");
    assert!(!world.call_row(&call_sid).unwrap().ended);
    caller.send(stop_frame(&caller, &call_sid)).await;
    let row = world
        .wait_for_row(&call_sid, Duration::from_secs(10), |r| r.ended)
        .await;
    assert_eq!(row.end_reason.as_deref(), Some("twilio_stop"));
    world.stop().await;
}

#[actix_web::test]
async fn after_a_drop_only_the_same_stream_may_resume_the_call() {
    // Arrange: a live call whose socket dropped.
    let world = CallWorld::start().await;
    let (call_sid, params) = world.answer().await;
    let mut first = RawStream::connect(&world.app.address).await;
    first.start(&call_sid, &params).await;
    first.media(5).await;
    world.wait_for_agent().await;
    first.close().await;
    // Act: a start naming another stream, then one naming another account.
    let mut other_stream = RawStream::connect(&world.app.address).await;
    other_stream.stream_sid = "MZ00000000000000000000000000000002".to_owned();
    other_stream.start(&call_sid, &params).await;
    // Assert
    assert_eq!(
        other_stream.ending(Duration::from_secs(3)).await,
        Ending::Closed(Some(1008))
    );
    let mut other_account = RawStream::connect(&world.app.address).await;
    other_account.account_sid = "AC00000000000000000000000000000009".to_owned();
    other_account.start(&call_sid, &params).await;
    assert_eq!(
        other_account.ending(Duration::from_secs(3)).await,
        Ending::Closed(Some(1008))
    );
    assert_eq!(world.standins.realtime.sessions_opened(), 1);
    world.stop().await;
}

#[actix_web::test]
async fn the_token_after_the_call_ended_opens_nothing() {
    // Arrange: a call that ran and ended.
    let world = CallWorld::start().await;
    let (call_sid, params) = world.answer().await;
    let mut caller = RawStream::connect(&world.app.address).await;
    caller.start(&call_sid, &params).await;
    caller.media(5).await;
    world.wait_for_agent().await;
    caller.send(stop_frame(&caller, &call_sid)).await;
    world
        .wait_for_row(&call_sid, Duration::from_secs(10), |r| r.ended)
        .await;
    let realtime = &world.standins.realtime;
    assert!(wait_until(Duration::from_secs(5), || realtime.live_sessions() == 0).await);
    let opened = realtime.sessions_opened();
    // Act: the same start again, and with another streamSid.
    for stream_sid in [
        "MZ00000000000000000000000000000001",
        "MZ00000000000000000000000000000003",
    ] {
        let mut replay = RawStream::connect(&world.app.address).await;
        replay.stream_sid = stream_sid.to_owned();
        replay.start(&call_sid, &params).await;
        replay.media(5).await;
        // Assert: refused before anything was started for it.
        assert_eq!(
            replay.ending(Duration::from_secs(3)).await,
            Ending::Closed(Some(1008)),
            "{stream_sid}"
        );
    }
    assert_eq!(
        realtime.sessions_opened(),
        opened,
        "no new Realtime session"
    );
    assert_eq!(realtime.live_sessions(), 0);
    world.stop().await;
}

#[actix_web::test]
async fn a_stream_live_on_another_instance_is_refused_here_and_its_parked_session_closed() {
    // Arrange: the webhook answered here (a session is pre-opened), but the
    // row says another stream carries the call on another, live, instance.
    let world = CallWorld::start().await;
    let (call_sid, params) = world.answer().await;
    let realtime = &world.standins.realtime;
    assert!(realtime.wait_for_sessions(1, Duration::from_secs(5)).await);
    world
        .db()
        .connect()
        .batch_execute(&format!(
            "UPDATE call_logs SET stream_sid = 'MZ0000000000000000000000000000beef',
                    instance_id = 'another-instance', heartbeat_at = now()
             WHERE call_sid = '{call_sid}'"
        ))
        .unwrap();
    // Act
    let mut stream = RawStream::connect(&world.app.address).await;
    stream.start(&call_sid, &params).await;
    stream.media(5).await;
    // Assert: refused; nothing opened; the parked session closed, not left to idle.
    assert_eq!(
        stream.ending(Duration::from_secs(3)).await,
        Ending::Closed(Some(1008))
    );
    assert!(wait_until(Duration::from_secs(3), || realtime.live_sessions() == 0).await);
    assert_eq!(realtime.sessions_opened(), 1);
    assert_eq!(realtime.with_session(0, |s| s.appends), Some(0));
    world.stop().await;
}
