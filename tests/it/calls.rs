//! The live call end to end: the simulated Twilio caller, the service, the
//! Realtime stand-in, PostgreSQL.

use std::time::{Duration, Instant};

use callvisor_standins::realtime_script::ScriptConfig;
use callvisor_standins::{place_call, CallEnd, CallerSession, CloseReason, StandInsConfig};

use crate::helpers::calls::{
    transcript_pairs, CallWorld, GREETING, TENANT_NUMBER, UNKNOWN_NUMBER, UNSUBSCRIBED_NUMBER,
};

fn pair(role: &str, text: &str) -> (String, String) {
    (role.to_owned(), text.to_owned())
}

#[actix_web::test]
async fn one_full_call_is_logged_with_its_transcript_summary_and_duration() {
    // Arrange
    let world = CallWorld::start().await;
    let mut caller = world.caller();
    caller.speak_for = Duration::from_millis(2300); // two caller turns of 1 s
    caller.end = CallEnd::Stop {
        after_audio: Duration::from_millis(700),
    };
    // Act
    let started = Instant::now();
    let report = place_call(caller).await.unwrap();
    let real_duration = started.elapsed().as_secs_f64();
    // Assert: the call itself
    assert!(report.stream_opened, "{report:?}");
    assert_eq!(report.close, Some(CloseReason::StopSent));
    assert_eq!(report.frames_sent, report.frames_planned);
    assert!(report.media_received > 0, "the caller heard the agent");
    // the session the agent got
    let session = world.standins.realtime.session(0).unwrap();
    assert_eq!(world.standins.realtime.sessions_opened(), 1);
    assert_eq!(
        session.appends_before_session_update, 0,
        "no audio before the session is configured"
    );
    assert_eq!(
        session.appends,
        u64::from(report.frames_sent),
        "every caller frame went upstream"
    );
    let update = &session.session_updates[0];
    assert!(update.accepted);
    assert_eq!(update.session_type.as_deref(), Some("realtime"));
    assert_eq!(update.model.as_deref(), Some("gpt-realtime"));
    assert_eq!(update.input_format.as_deref(), Some("audio/pcmu"));
    assert_eq!(update.output_format.as_deref(), Some("audio/pcmu"));
    assert_eq!(update.turn_detection.as_deref(), Some("server_vad"));
    assert!(update.transcription_model.is_some());
    assert!(update
        .instructions
        .as_deref()
        .unwrap()
        .contains("Chez Test"));
    for tool in ["create_reservation", "transfer_to_human", "end_call"] {
        assert!(update.tools.iter().any(|t| t == tool), "{tool} missing");
    }
    assert!(
        session.openai_beta_header.is_none(),
        "GA: no OpenAI-Beta header"
    );
    // the stored log
    let row = world
        .wait_for_row(&report.call_sid, Duration::from_secs(20), |r| {
            r.ended && r.summary.is_some()
        })
        .await;
    assert_eq!(
        transcript_pairs(&row.transcript),
        vec![
            pair("assistant", GREETING),
            pair("user", "caller turn 1"),
            pair("assistant", "agent reply 1"),
            pair("user", "caller turn 2"),
            pair("assistant", "agent reply 2"),
        ]
    );
    let duration = f64::from(row.duration_seconds.unwrap());
    assert!(
        (duration - real_duration).abs() <= 1.0,
        "stored {duration} s, real {real_duration:.2} s"
    );
    assert_eq!(row.status, "completed");
    assert_eq!(row.caller_number.as_deref(), Some("+15550123456"));
    assert_eq!(row.recipient_number.as_deref(), Some(TENANT_NUMBER));
    assert!(row.summary.unwrap().starts_with("Summary"));
    let asked = world.standins.openai.requests_to("/chat/completions");
    assert_eq!(asked.len(), 1, "one summary per call");
    assert_eq!(asked[0].body["model"], "gpt-5-mini");
    world.stop().await;
}

#[actix_web::test]
async fn unknown_and_unsubscribed_numbers_hang_up_without_any_session() {
    let world = CallWorld::start().await;
    for number in [UNKNOWN_NUMBER, UNSUBSCRIBED_NUMBER] {
        let mut caller = world.caller();
        caller.to = number.to_owned();
        let report = place_call(caller).await.unwrap();
        assert_eq!(report.webhook_status, Some(200));
        assert_eq!(report.verbs, vec!["Hangup".to_owned()], "{number}");
        assert!(!report.stream_opened);
    }
    // A good call after them: a session a refused call pre-opened would show
    // by the time this one's agent hears it.
    let (control, stream) = world.control_call().await;
    assert_eq!(
        world.standins.realtime.sessions_opened(),
        1,
        "no paid session for a refused call"
    );
    assert_eq!(world.count_other_calls("call_logs", &control), 0);
    world.end_control_call(&control, stream).await;
    world.stop().await;
}

#[actix_web::test]
async fn barge_in_clears_at_once_and_truncates_at_what_was_heard() {
    // Arrange: a 4 s greeting streamed in real time, no caller turns.
    let config = StandInsConfig {
        realtime: callvisor_standins::realtime_server::RealtimeConfig {
            script: ScriptConfig {
                response_audio_ms: 4000,
                caller_turn_ms: 0,
                delta_interval: Duration::from_millis(20),
                ..ScriptConfig::default()
            },
            ..Default::default()
        },
        ..Default::default()
    };
    let world = CallWorld::start_with(config, &[]).await;
    let mut caller = world.caller();
    caller.speak_for = Duration::from_secs(3);
    caller.end = CallEnd::Stop {
        after_audio: Duration::from_millis(300),
    };
    let session = CallerSession::start(caller).await.unwrap();
    // Act: the caller speaks over the agent once about a second has played.
    assert!(
        session
            .wait_until(Duration::from_secs(10), |r| r.audio_played_ms >= 1000)
            .await
    );
    world.standins.realtime.emit_speech_started().await;
    let report = session.wait().await;
    // Assert: one clear, and no agent audio after it.
    assert_eq!(report.clears.len(), 1, "{:?}", report.clears);
    let clear_at = report.clears[0].at_us;
    let late: Vec<_> = report
        .media_events
        .iter()
        .filter(|m| m.at_us > clear_at)
        .collect();
    assert!(late.is_empty(), "agent audio after the clear: {late:?}");
    // The truncate says what was heard, counted from marks, not what was sent.
    let truncates = world.standins.realtime.session(0).unwrap().truncates;
    assert_eq!(truncates.len(), 1);
    assert!(truncates[0].accepted, "{truncates:?}");
    let played_marks = report
        .marks_acked
        .iter()
        .filter(|m| !m.by_clear && m.at_us <= clear_at)
        .count() as u64;
    let heard = truncates[0].audio_end_ms;
    // Acknowledgements sent while the speech event and the clear were in flight
    // reach the engine too late to count: a few chunks (here up to 100 ms) of
    // slack, never more than was played, always whole 20 ms chunks.
    let played_ms = played_marks * 20;
    assert!(
        heard % 20 == 0 && heard <= played_ms && played_ms - heard <= 100,
        "audio_end_ms {heard} vs {played_marks} marks played"
    );
    assert!(
        (900..2500).contains(&heard),
        "about a second of a 4 s answer was heard: {heard}"
    );
    world.stop().await;
}

#[actix_web::test]
async fn a_dropped_realtime_connection_is_restored_and_the_call_goes_on() {
    // Arrange
    let world = CallWorld::start().await;
    let mut caller = world.caller();
    caller.speak_for = Duration::from_millis(3600);
    caller.end = CallEnd::Stop {
        after_audio: Duration::from_millis(700),
    };
    let session = CallerSession::start(caller).await.unwrap();
    let call_sid = session.call_sid().to_owned();
    // Act: the agent's connection dies after the first exchange.
    assert!(
        callvisor_standins::wait_until(Duration::from_secs(10), || {
            world
                .segments(&call_sid)
                .iter()
                .any(|(_, t)| t == "agent reply 1")
        })
        .await
    );
    world.standins.realtime.drop_sessions().await;
    let report = session.wait().await;
    // Assert: a second session carried on with the conversation so far.
    assert_eq!(
        report.close,
        Some(CloseReason::StopSent),
        "the caller was not cut off"
    );
    assert_eq!(world.standins.realtime.sessions_opened(), 2);
    let second = world.standins.realtime.session(1).unwrap();
    let restored: Vec<String> = second
        .items_created
        .iter()
        .filter_map(|i| i.text.clone())
        .collect();
    assert_eq!(
        restored,
        vec![
            GREETING.to_owned(),
            "caller turn 1".into(),
            "agent reply 1".into()
        ]
    );
    assert!(second.appends > 0, "caller audio flows to the new session");
    let row = world
        .wait_for_row(&call_sid, Duration::from_secs(20), |r| r.ended)
        .await;
    let pairs = transcript_pairs(&row.transcript);
    assert_eq!(
        pairs[..3],
        [
            pair("assistant", GREETING),
            pair("user", "caller turn 1"),
            pair("assistant", "agent reply 1")
        ]
    );
    assert!(pairs.len() >= 5, "the second half is there too: {pairs:?}");
    world.stop().await;
}

#[actix_web::test]
async fn a_summary_whose_call_record_is_gone_is_given_up_not_retried_for_ever() {
    // Arrange: a summary job for a call that has no record (nothing could
    // ever be summarised).
    let world = CallWorld::start().await;
    let mut conn = world.db().connect();
    diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        r#"INSERT INTO outbox (kind, dedupe_key, payload) VALUES
             ('call_summary', 'call_summary:CA000000000000000000000000000gone',
              '{"call_sid": "CA000000000000000000000000000gone"}')"#,
    )
    .unwrap();

    // Act: the summary worker finds it.
    let query = "SELECT attempts::text AS a,
                        COALESCE(last_error, '-') || ' done=' || (done_at IS NOT NULL)::text AS b
                 FROM outbox WHERE dedupe_key = 'call_summary:CA000000000000000000000000000gone'";
    let deadline = Instant::now() + Duration::from_secs(10);
    let job = loop {
        let job = crate::helpers::pool::pairs(&mut conn, query);
        // Claiming counts the attempt before the job is given up: wait for the end.
        if job[0].1.ends_with("done=true") || Instant::now() > deadline {
            break job;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };

    // Assert: given up after one attempt, marked as such, nothing asked of the model.
    assert_eq!(job, [pair("1", "abandoned: no call record done=true")]);
    assert!(world.standins.openai.requests().is_empty());
    world.stop().await;
}
