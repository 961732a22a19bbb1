//! A call survives what networks do: Twilio re-opening the media socket after
//! a drop (a hand-over; `stream_hijack` shows who else may not), and an
//! unreachable agent (the caller hears an apology, never silence); and a call
//! whose instance died is still finished.

use std::time::Duration;

use callvisor_standins::{CallEnd, CallerSession, CloseReason};

use callvisor::db::call_logs;
use diesel::connection::SimpleConnection;

use crate::helpers::calls::CallWorld;
use crate::helpers::db::TestDb;
use crate::helpers::pool::{count, pairs};
use crate::helpers::raw_stream::{Ending, RawStream};

#[actix_web::test]
async fn twilio_reopening_the_stream_after_a_drop_resumes_the_call_without_a_second_agent() {
    // Arrange: a call on its first socket.
    let world = CallWorld::start().await;
    let (call_sid, params) = world.answer().await;
    let mut first = RawStream::connect(&world.app.address).await;
    first.start(&call_sid, &params).await;
    first.media(25).await;
    world.wait_for_agent().await;
    let realtime = &world.standins.realtime;
    assert!(
        callvisor_standins::wait_until(Duration::from_secs(5), || {
            realtime.with_session(0, |s| s.appends) == Some(25)
        })
        .await,
        "the first socket's audio reaches the agent"
    );
    // Act: the first socket's network path drops; Twilio opens a new socket
    // for the same stream (same streamSid and accountSid in its start).
    first.close().await;
    let mut second = RawStream::connect(&world.app.address).await;
    second.start(&call_sid, &params).await;
    second.media(25).await;
    // Assert: the second carries the call, one agent, the same conversation.
    assert_eq!(
        second.ending(Duration::from_millis(500)).await,
        Ending::StillOpen
    );
    assert!(
        callvisor_standins::wait_until(Duration::from_secs(5), || {
            realtime.with_session(0, |s| s.appends) == Some(50)
        })
        .await,
        "the new socket's audio reaches the same agent"
    );
    assert_eq!(realtime.sessions_opened(), 1, "one agent, not two");
    assert_eq!(realtime.live_sessions(), 1);
    let row = world.call_row(&call_sid).unwrap();
    assert!(!row.ended, "the old socket's close did not end the call");
    // The call ends when the current socket stops.
    let mut buf = String::new();
    callvisor_wire::protocol::twilio::write_stop(
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

#[actix_web::test]
async fn a_call_whose_instance_died_is_finished_once_from_what_was_stored() {
    // Arrange: calls of one tenant. `lost` was last heart-beaten 400 s ago by
    // an instance that died, after two segments were stored; `slow` missed its
    // heartbeats for two minutes (a database outage: no longer counted as
    // live, but not to be finished); `live` is heart-beaten now; `done` ended
    // long ago; a campaign placeholder is not a call.
    let db = TestDb::migrated();
    let mut sync = db.connect();
    sync.batch_execute(
        "INSERT INTO profiles (id, phone_number, is_subscribed)
             VALUES ('6f1b3c1e-0000-4000-8000-000000000001', '+15550600001', true);
         INSERT INTO call_logs (call_sid, user_id, direction, channel, status, instance_id,
                                started_at, heartbeat_at)
         SELECT sid, '6f1b3c1e-0000-4000-8000-000000000001', 'inbound', 'pstn', 'in-progress',
                instance, now() - interval '600 seconds', now() - make_interval(secs => silent)
         FROM (VALUES ('CA000000000000000000000000000lost', 'dead-instance', 400),
                      ('CA000000000000000000000000000slow', 'slow-instance', 120),
                      ('CA000000000000000000000000000live', 'live-instance', 0),
                      ('pending-00000000000000000000000000000001', 'dead-instance', 400))
              AS c(sid, instance, silent);
         INSERT INTO call_logs (call_sid, user_id, direction, channel, status, instance_id,
                                started_at, heartbeat_at, ended_at, duration_seconds, end_reason) VALUES
           ('CA000000000000000000000000000done', '6f1b3c1e-0000-4000-8000-000000000001',
            'inbound', 'pstn', 'completed', 'dead-instance', now() - interval '900 seconds',
            now() - interval '850 seconds', now() - interval '840 seconds', 60, 'twilio_stop');
         INSERT INTO transcript_segments (call_sid, seq, role, text, spoken_at) VALUES
           ('CA000000000000000000000000000lost', 1, 'assistant', 'Hello, how can I help?', now() - interval '590 seconds'),
           ('CA000000000000000000000000000lost', 0, 'user', 'Hi', now() - interval '595 seconds');",
    )
    .unwrap();
    let pool = callvisor::db::build_async_pool(&db.url, 2, Duration::from_secs(5)).unwrap();
    let (mut a, mut b) = (pool.get().await.unwrap(), pool.get().await.unwrap());

    // Act: two instances sweep at the same moment.
    let (first, second) = tokio::join!(
        call_logs::finish_heartbeat_lost(&mut a, 100, Some(0)),
        call_logs::finish_heartbeat_lost(&mut b, 100, Some(0))
    );

    // Assert: the dead instance's call was finished exactly once, nothing else.
    let finished: Vec<String> = first
        .unwrap()
        .into_iter()
        .chain(second.unwrap())
        .map(|c| c.call_sid)
        .collect();
    assert_eq!(finished, ["CA000000000000000000000000000lost"]);
    let rows = pairs(
        &mut sync,
        "SELECT call_sid AS a,
                concat_ws('|', status, end_reason, duration_seconds, ended_at = heartbeat_at) AS b
         FROM call_logs ORDER BY call_sid",
    );
    assert_eq!(
        rows,
        [
            (
                "CA000000000000000000000000000done",
                "completed|twilio_stop|60|f"
            ),
            ("CA000000000000000000000000000live", "in-progress"),
            (
                "CA000000000000000000000000000lost",
                "completed|heartbeat_lost|200|t"
            ),
            ("CA000000000000000000000000000slow", "in-progress"),
            ("pending-00000000000000000000000000000001", "in-progress"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    // Its transcript is what was stored, in order; its summary is queued.
    let transcript = pairs(
        &mut sync,
        "SELECT e->>'role' AS a, e->>'text' AS b
         FROM call_logs, jsonb_array_elements(transcript) WITH ORDINALITY AS t(e, i)
         WHERE call_sid = 'CA000000000000000000000000000lost' ORDER BY i",
    );
    assert_eq!(
        transcript,
        [("user", "Hi"), ("assistant", "Hello, how can I help?")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    assert_eq!(
        count(
            &mut sync,
            "SELECT count(*) AS n FROM outbox
             WHERE dedupe_key = 'call_summary:CA000000000000000000000000000lost'"
        ),
        1
    );
    // A later sweep finds nothing more.
    assert!(call_logs::finish_heartbeat_lost(&mut a, 100, Some(0))
        .await
        .unwrap()
        .is_empty());
}
