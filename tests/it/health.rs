//! `/healthz` and `/readyz`, including a database outage and recovery without
//! a restart.

use std::time::{Duration, Instant};

use crate::helpers::app::{settings_from, test_env, TestApp};
use crate::helpers::db::{with_database, TestDb};
use crate::helpers::proxy::Proxy;

fn port_of(url: &str) -> u16 {
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    authority.rsplit(':').next().unwrap().parse().unwrap()
}

async fn wait_for_status(app: &TestApp, want: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = app.get_json("/readyz").await;
        if status == want {
            return body;
        }
        assert!(Instant::now() < deadline, "readyz stayed {status}: {body}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn healthz_answers_and_readyz_is_ready_when_migrated() {
    let app = TestApp::spawn().await;

    let (status, body) = app.get_json("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");

    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "ok");
    app.shutdown.shutdown().await;
}

#[actix_web::test]
async fn readyz_follows_the_database_down_and_back_without_a_restart() {
    // Arrange: the app reaches its database through a proxy we can cut.
    let db = TestDb::migrated();
    let proxy = Proxy::start(port_of(&db.url)).await;
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let via_proxy = with_database(
        &format!("postgres://postgres@127.0.0.1:{}/x", proxy.port),
        &name,
    );
    let app = TestApp::spawn_with(settings_from(&test_env(&via_proxy))).await;
    wait_for_status(&app, 200).await;

    // Act + Assert: down
    proxy.down();
    let body = wait_for_status(&app, 503).await;
    assert_eq!(body["database"], "unreachable");
    let (status, _) = app.get_json("/healthz").await;
    assert_eq!(status, 200, "the process itself is still up");

    // back
    proxy.up();
    let body = wait_for_status(&app, 200).await;
    assert_eq!(body["status"], "ready");
    app.shutdown.shutdown().await;
}

#[actix_web::test]
async fn readyz_says_draining_once_shutdown_begins() {
    let app = TestApp::spawn().await;
    assert!(app.state.lifecycle.start_draining());
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "draining");
    app.shutdown.shutdown().await;
}

#[actix_web::test]
async fn a_database_away_at_start_up_is_waited_for_not_a_crash() {
    // Arrange: the database is unreachable when the service starts.
    let db = TestDb::migrated();
    let proxy = Proxy::start(port_of(&db.url)).await;
    proxy.down();
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let via_proxy = with_database(
        &format!("postgres://postgres@127.0.0.1:{}/x", proxy.port),
        &name,
    );
    let settings = settings_from(&test_env(&via_proxy));
    // Act: it comes back once the service's connections to it were refused
    // three times (within `database.startup_retry_seconds`).
    let comes_back = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while proxy.refused() < 3 {
            assert!(
                Instant::now() < deadline,
                "the service never tried the database"
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        proxy.up();
    };
    let (app, ()) = tokio::join!(TestApp::spawn_with(settings), comes_back);
    // Assert: refused and still up: it waited, it did not crash.
    assert!(proxy.refused() >= 3, "it was refused while starting");
    let body = wait_for_status(&app, 200).await;
    assert_eq!(body["status"], "ready");
    app.shutdown.shutdown().await;
}
