//! SIGTERM with calls live: the instance stops taking calls, lets them go on
//! for the drain time, ends them, and every segment already said is in
//! PostgreSQL afterwards. With PostgreSQL down, shutdown still ends within its
//! deadline, spilling what it could not write; the next start replays it.

use std::time::{Duration, Instant};

use callvisor_actors::ids::CallSid;
use callvisor_actors::persistence::AppendSegment;
use callvisor_actors::ports::{Role, Segment};
use callvisor_standins::{CallEnd, CallerSession};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{Integer, Text};
use diesel::{QueryableByName, RunQueryDsl};

use crate::helpers::app::{settings_from, test_env, TestApp};
use crate::helpers::calls::CallWorld;
use crate::helpers::db::{with_database, TestDb};
use crate::helpers::proxy::Proxy;

#[actix_web::test]
async fn a_graceful_shutdown_loses_nothing_that_was_said() {
    // Arrange: two calls mid-conversation.
    let world = CallWorld::start().await;
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let mut caller = world.caller();
        caller.speak_for = Duration::from_secs(20);
        caller.end = CallEnd::Manual;
        sessions.push(CallerSession::start(caller).await.unwrap());
    }
    assert!(
        callvisor_standins::wait_until(Duration::from_secs(10), || {
            world
                .standins
                .realtime
                .sessions()
                .iter()
                .all(|s| s.caller_turns >= 2)
        })
        .await
    );
    // Act: what SIGTERM does.
    let shutdown = world.app.shutdown.clone();
    let draining = actix_web::rt::spawn(async move { shutdown.shutdown().await });
    // Polled from the moment the drain begins: it must say so while the
    // calls are still being flushed (once drained, nothing answers at all).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = world.app.get_json("/readyz").await;
        if (status, body["status"].as_str()) == (503, Some("draining")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never said draining: {status} {body}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    draining.await.unwrap();
    // Assert: every transcript the agent side produced is stored.
    for (session, caller) in world.standins.realtime.sessions().iter().zip(&sessions) {
        let stored = world.segments(caller.call_sid());
        for k in 1..=session.caller_turns {
            let said = format!("caller turn {k}");
            assert!(
                stored.iter().any(|(_, t)| *t == said),
                "{said} missing from {stored:?}"
            );
        }
        for response in &session.responses {
            if let Some(text) = &response.transcript {
                assert!(
                    stored.iter().any(|(_, t)| t == text),
                    "{text} missing from {stored:?}"
                );
            }
        }
        let row = world.call_row(caller.call_sid()).unwrap();
        assert!(row.ended, "the call was ended by the drain");
        assert_eq!(row.end_reason.as_deref(), Some("shutdown"));
    }
    world.standins.stop().await;
}

fn port_of(url: &str) -> u16 {
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    authority.rsplit(':').next().unwrap().parse().unwrap()
}

fn spill_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("jsonl"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn stored_segments(db: &TestDb) -> Vec<(String, i32, String)> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        call_sid: String,
        #[diesel(sql_type = Integer)]
        seq: i32,
        #[diesel(sql_type = Text)]
        text: String,
    }
    diesel::sql_query("SELECT call_sid, seq, text FROM transcript_segments ORDER BY call_sid, seq")
        .load::<Row>(&mut db.connect())
        .unwrap()
        .into_iter()
        .map(|r| (r.call_sid, r.seq, r.text))
        .collect()
}

#[actix_web::test]
async fn a_shutdown_with_the_database_down_spills_within_its_deadline_and_the_next_start_replays_once(
) {
    // Arrange: the app reaches its database through a proxy we can cut; two
    // calls exist; the flush at shutdown may take one second.
    let db = TestDb::migrated();
    db.connect()
        .batch_execute("INSERT INTO call_logs (call_sid) VALUES ('CAspill1'), ('CAspill2')")
        .unwrap();
    let proxy = Proxy::start(port_of(&db.url)).await;
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let via_proxy = with_database(
        &format!("postgres://postgres@127.0.0.1:{}/x", proxy.port),
        &name,
    );
    let spill_dir = std::env::temp_dir().join(format!("spill-{}", uuid::Uuid::new_v4().simple()));
    let mut env = test_env(&via_proxy);
    env.insert(
        "CALLVISOR__CALLS__SPILL_DIR".into(),
        spill_dir.display().to_string(),
    );
    env.insert(
        "CALLVISOR__CALLS__SHUTDOWN_FLUSH_SECONDS".into(),
        "1".into(),
    );
    let app = TestApp::spawn_with(settings_from(&env)).await;
    // The database goes away; three things are said meanwhile.
    proxy.down();
    let said = [
        ("CAspill1", 0, "one"),
        ("CAspill1", 1, "two"),
        ("CAspill2", 0, "three"),
    ];
    for (call_sid, seq, text) in said {
        app.state.calls.persistence.do_send(AppendSegment {
            segment: Segment {
                call_sid: CallSid::parse(call_sid).unwrap(),
                seq,
                role: Role::User,
                text: text.to_owned(),
                at: chrono::Utc::now(),
            },
        });
    }

    // Act: SIGTERM's shutdown, which used to wait for the database for ever.
    let started = Instant::now();
    let done = actix_web::rt::time::timeout(Duration::from_secs(30), app.shutdown.shutdown()).await;
    let took = started.elapsed();

    // Assert: done within the flush deadline (1 s) plus the HTTP stop (1 s)
    // and a margin; the spill file holds the three segments.
    assert!(done.is_ok(), "shutdown hung with the database down");
    assert!(took < Duration::from_secs(6), "shutdown took {took:?}");
    let files = spill_files(&spill_dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let spilled = callvisor::calls::spill::read(&files[0]).unwrap();
    let texts: Vec<&str> = spilled.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, vec!["one", "two", "three"]);
    assert!(
        stored_segments(&db).is_empty(),
        "nothing reached the database"
    );

    // Act: the database is back; the next start replays the file.
    proxy.up();
    let next = TestApp::spawn_with(settings_from(&env)).await;

    // Assert: each segment stored once, the file gone.
    let expected = vec![
        ("CAspill1".to_owned(), 0, "one".to_owned()),
        ("CAspill1".to_owned(), 1, "two".to_owned()),
        ("CAspill2".to_owned(), 0, "three".to_owned()),
    ];
    assert_eq!(stored_segments(&db), expected);
    assert!(
        spill_files(&spill_dir).is_empty(),
        "the replayed file is removed"
    );

    // Act: the same segments replayed again (a file spilled twice, or a
    // batch that did commit just before the deadline).
    callvisor::calls::spill::write(&spill_dir, "again", &spilled).unwrap();
    let replayed = callvisor::calls::spill::replay(&next.state.db, &spill_dir)
        .await
        .unwrap();

    // Assert: still once.
    assert_eq!(
        (replayed.files, replayed.segments, replayed.inserted),
        (1, 3, 0)
    );
    assert_eq!(stored_segments(&db), expected);
    next.shutdown.shutdown().await;
    let _ = std::fs::remove_dir_all(&spill_dir);
}
