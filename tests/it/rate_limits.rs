//! Rate limits with real (small) buckets: a burst over a class's limit is a
//! 429 with `Retry-After`; the client behind a trusted proxy is the one
//! `X-Forwarded-For` names, anyone else's header is ignored; wrong admin
//! tokens cut their source off without starving anyone with the right one;
//! refusals are logged sampled; a media socket counts once, not per frame;
//! and a flood of `/readyz` probes costs the database a check a second.

use std::time::{Duration, Instant};

use callvisor_standins::StandInsConfig;
use serde_json::Value;

use crate::helpers::app::{settings_from, test_env, TestApp};
use crate::helpers::calls::{voice_params, CallWorld};
use crate::helpers::db::TestDb;
use crate::helpers::pool::{Instance, ADMIN_TOKEN};
use crate::helpers::raw_stream::RawStream;

/// What a request came back with.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

/// Sends `method path` with an optional `X-Forwarded-For` and bearer token.
async fn send(
    address: &str,
    method: &str,
    path: &str,
    forwarded_for: Option<&str>,
    token: Option<&str>,
) -> Answer {
    let client = awc::Client::new();
    let url = format!("{address}{path}");
    let mut request = match method {
        "POST" => client.post(url),
        _ => client.get(url),
    };
    if let Some(xff) = forwarded_for {
        request = request.insert_header(("X-Forwarded-For", xff));
    }
    if let Some(token) = token {
        request = request.insert_header(("Authorization", format!("Bearer {token}")));
    }
    let mut response = if method == "POST" {
        // An (unsigned) form, as Twilio posts: the signature check answers 403.
        request.send_form(&[("CallSid", "CA00000000000000000000000000000001")])
    } else {
        request.send()
    }
    .await
    .expect("request sent");
    let retry_after = response
        .headers()
        .get("Retry-After")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.body().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        retry_after,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// An app on its own database with the test environment plus `extra`.
async fn app_with(extra: &[(&str, &str)]) -> TestApp {
    let db = TestDb::migrated();
    let mut env = test_env(&db.url);
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let mut app = TestApp::spawn_with(settings_from(&env)).await;
    app.db = Some(db);
    app
}

/// The Twilio class: 3 requests, then one every 100 s.
const TIGHT_TWILIO: [(&str, &str); 2] = [
    ("CALLVISOR__RATE_LIMITS__TWILIO_PER_SECOND", "0.01"),
    ("CALLVISOR__RATE_LIMITS__TWILIO_BURST", "3"),
];

fn assert_limited(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 429, "{what}: {answer:?}");
    let seconds: u64 = answer
        .retry_after
        .as_deref()
        .unwrap_or_else(|| panic!("{what}: no Retry-After"))
        .parse()
        .unwrap_or_else(|_| panic!("{what}: Retry-After is not whole seconds: {answer:?}"));
    assert!((1..=100).contains(&seconds), "{what}: {answer:?}");
    assert_eq!(answer.body["error"], "rate_limited", "{what}");
}

#[actix_web::test]
async fn a_burst_over_the_twilio_limit_is_429_with_retry_after_on_every_twilio_path() {
    // Arrange
    let app = app_with(&TIGHT_TWILIO).await;
    // Act: three unsigned webhooks (403 each, but each spends a token)...
    for _ in 0..3 {
        let answer = send(&app.address, "POST", "/twilio/voice", None, None).await;
        assert_eq!(answer.status, 403, "{answer:?}");
    }
    // Assert: ...then the class is shut for this source, aliases and socket included.
    for (method, path) in [
        ("POST", "/twilio/voice"),
        ("POST", "/incoming-call-realtime"),
        ("POST", "/twilio/status"),
        ("GET", "/twilio/media"),
        ("GET", "/twilio-media"),
    ] {
        let answer = send(&app.address, method, path, None, None).await;
        assert_limited(&answer, path);
    }
    // Other classes are not spent by it, and the refusals are counted.
    assert_eq!(
        send(&app.address, "GET", "/readyz", None, None)
            .await
            .status,
        200
    );
    assert_eq!(
        send(&app.address, "GET", "/healthz", None, None)
            .await
            .status,
        200
    );
    let mut metrics = awc::Client::new()
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    let text = String::from_utf8(metrics.body().await.unwrap().to_vec()).unwrap();
    assert!(
        text.contains("\ncallvisor_rate_limited_total 5\n"),
        "{text}"
    );
    app.shutdown.shutdown().await;
}

#[actix_web::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    // Arrange: this test is the load balancer (127.0.0.1, trusted).
    let mut extra = TIGHT_TWILIO.to_vec();
    extra.push((
        "CALLVISOR__SERVER__TRUSTED_PROXIES",
        "127.0.0.1/32, 10.0.0.0/8",
    ));
    let app = app_with(&extra).await;
    // Act: one client spends its bucket, through two proxies.
    let first = Some("198.51.100.1, 203.0.113.1, 10.1.1.1");
    for _ in 0..3 {
        assert_eq!(
            send(&app.address, "POST", "/twilio/voice", first, None)
                .await
                .status,
            403
        );
    }
    assert_limited(
        &send(&app.address, "POST", "/twilio/voice", first, None).await,
        "the first client",
    );
    // Assert: the rightmost untrusted address was the key; the forged
    // leftmost one changes nothing, another client is not limited.
    let forged = Some("198.51.100.99, 203.0.113.1");
    assert_limited(
        &send(&app.address, "POST", "/twilio/voice", forged, None).await,
        "a forged leftmost entry",
    );
    let other = Some("203.0.113.2");
    assert_eq!(
        send(&app.address, "POST", "/twilio/voice", other, None)
            .await
            .status,
        403,
        "another client has its own bucket"
    );
    app.shutdown.shutdown().await;
}

#[actix_web::test]
async fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    // Arrange: no trusted proxies (the default).
    let app = app_with(&TIGHT_TWILIO).await;
    // Act: every request claims another client.
    for i in 0..3 {
        let xff = format!("203.0.113.{i}");
        assert_eq!(
            send(&app.address, "POST", "/twilio/voice", Some(&xff), None)
                .await
                .status,
            403
        );
    }
    // Assert: they were all the peer's.
    assert_limited(
        &send(
            &app.address,
            "POST",
            "/twilio/voice",
            Some("203.0.113.200"),
            None,
        )
        .await,
        "an untrusted X-Forwarded-For",
    );
    app.shutdown.shutdown().await;
}

#[actix_web::test]
async fn wrong_admin_tokens_cut_their_source_off_and_a_right_token_elsewhere_still_works() {
    // Arrange: three wrong guesses, then one per 100 s; the test is a trusted proxy.
    let app = app_with(&[
        ("CALLVISOR__RATE_LIMITS__ADMIN_FAILURES_PER_SECOND", "0.01"),
        ("CALLVISOR__RATE_LIMITS__ADMIN_FAILURES_BURST", "3"),
        ("CALLVISOR__SERVER__TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let attacker = Some("203.0.113.66");
    let operator = Some("198.51.100.7");
    let wrong = Some("admin-test-token-0123456780");
    // Act: the attacker guesses.
    for _ in 0..3 {
        let answer = send(&app.address, "GET", "/admin/pool", attacker, wrong).await;
        assert_eq!(answer.status, 403, "{answer:?}");
    }
    let answer = send(&app.address, "GET", "/admin/pool", attacker, wrong).await;
    assert_limited(&answer, "the guess too many");
    // Assert: cut off, even with the right token (else guessing would go on)...
    let answer = send(
        &app.address,
        "GET",
        "/admin/pool",
        attacker,
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_limited(&answer, "the right token from a cut-off source");
    // ...while the operator, elsewhere, is served every time: right tokens
    // spend nothing of the failure bucket, and their bucket is their own.
    for _ in 0..10 {
        let answer = send(
            &app.address,
            "GET",
            "/admin/pool",
            operator,
            Some(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let answer = send(&app.address, "GET", "/admin/pool", operator, wrong).await;
    assert_eq!(
        answer.status, 403,
        "the operator's own typo is not the attacker's"
    );
    app.shutdown.shutdown().await;
}

#[actix_web::test]
async fn a_hundred_refusals_make_a_couple_of_rate_limited_lines_with_their_count() {
    // Arrange: a real process (its log is read); one probe, then one per 100 s.
    let db = TestDb::migrated();
    let instance = Instance::start(
        &db.url,
        "http://127.0.0.1:9/2010-04-01",
        &[
            ("CALLVISOR__RATE_LIMITS__PROBES_PER_SECOND", "0.01"),
            ("CALLVISOR__RATE_LIMITS__PROBES_BURST", "1"),
            ("CALLVISOR__RATE_LIMITS__LOG_SAMPLE_SECONDS", "1"),
        ],
    )
    .await;
    // Act
    let mut refused = 0;
    for _ in 0..101 {
        if send(&instance.address, "GET", "/readyz", None, None)
            .await
            .status
            == 429
        {
            refused += 1;
        }
    }
    assert_eq!(refused, 100);
    // Assert: every refusal is accounted for (a first line counts one, a
    // window's line its `rejected=`), in a few lines, not a hundred.
    let accounted = |lines: &[String]| -> u64 {
        lines
            .iter()
            .filter(|l| l.contains("RATE_LIMITED"))
            .map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("rejected="))
                    .map_or(1, |n| n.parse::<u64>().unwrap())
            })
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while accounted(&instance.logs()) < 100 && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = instance.logs();
    let lines: Vec<&String> = logs.iter().filter(|l| l.contains("RATE_LIMITED")).collect();
    assert_eq!(accounted(&logs), 100, "{lines:#?}");
    assert!(lines.len() <= 6, "sampled, not one per request: {lines:#?}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("class=probes source=127.0.0.1")),
        "{lines:#?}"
    );
}

#[actix_web::test]
async fn a_media_socket_counts_once_at_its_upgrade_not_per_frame() {
    // Arrange: three Twilio requests allowed.
    let world = CallWorld::start_with(StandInsConfig::default(), &TIGHT_TWILIO).await;
    // Act: the webhook (1), the socket (2) carrying a call's frames, the status callback (3).
    let (call_sid, params) = world.answer().await;
    let mut stream = RawStream::connect(&world.app.address).await;
    stream.start(&call_sid, &params).await;
    stream.media(100).await;
    world.wait_for_agent().await;
    let status: Vec<(String, String)> = [
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("CallSid", call_sid.as_str()),
        ("CallStatus", "in-progress"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let (code, body) = world.signed_post("/twilio/status", &status).await;
    // Assert: the hundred frames spent nothing; the fourth request is refused.
    assert_eq!(code, 204, "{body}");
    let (code, _) = world
        .signed_post(
            "/twilio/voice",
            &voice_params("CA00000000000000000000000000000fff"),
        )
        .await;
    assert_eq!(code, 429);
    world.stop().await;
}

#[actix_web::test]
async fn a_flood_of_readyz_probes_costs_the_database_about_one_check_a_second() {
    // Arrange
    let app = TestApp::spawn().await;
    let before = app.state.readiness.checks();
    let started = Instant::now();
    // Act: fifty probes at once.
    let probes = (0..50).map(|_| send(&app.address, "GET", "/readyz", None, None));
    let answers = futures_util::future::join_all(probes).await;
    let elapsed = started.elapsed();
    // Assert: all answered ready; one check per second of flood (plus one
    // for a second boundary crossed), not one per probe.
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    let checks = app.state.readiness.checks() - before;
    assert!(checks >= 1);
    assert!(
        checks <= 2 + elapsed.as_secs(),
        "{checks} database checks for 50 probes in {elapsed:?}"
    );
    app.shutdown.shutdown().await;
}
