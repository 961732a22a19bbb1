//! SIGTERM with calls live: the instance stops taking calls, lets them go on
//! for the drain time, ends them, and every segment already said is in
//! PostgreSQL afterwards.

use std::time::Duration;

use callvisor_standins::{CallEnd, CallerSession};

use crate::helpers::calls::CallWorld;

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
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = world.app.get_json("/readyz").await;
    assert_eq!((status, body["status"].as_str()), (503, Some("draining")));
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
