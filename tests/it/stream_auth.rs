//! Nothing is opened for a media stream whose token is missing, forged,
//! expired or another call's, nor for a webhook with a wrong signature.

use std::time::Duration;

use callvisor_actors::twilio_stream::{TENANT_PARAMETER, TOKEN_PARAMETER};
use callvisor_standins::{place_call, CloseReason, SignatureMode};
use callvisor_wire::signing::stream_token::{self, StreamClaims};

use crate::helpers::calls::{CallWorld, STREAM_SECRET};
use crate::helpers::raw_stream::{Ending, RawStream};

fn token(call_sid: &str, tenant: &str, expires_in: i64) -> String {
    stream_token::issue(
        STREAM_SECRET.as_bytes(),
        &StreamClaims {
            call_sid: call_sid.to_owned(),
            tenant_id: tenant.to_owned(),
            expires_at: chrono::Utc::now().timestamp() + expires_in,
        },
    )
}

#[actix_web::test]
async fn bad_stream_tokens_close_the_socket_and_open_nothing() {
    // Arrange
    let world = CallWorld::start().await;
    let tenant = world.tenant_id.clone();
    let forged = format!(
        "v1.{}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        chrono::Utc::now().timestamp() + 300
    );
    let expired = token("CA00000000000000000000000000000001", &tenant, -5);
    let other_call = token("CA00000000000000000000000000000099", &tenant, 300);
    let other_tenant = token(
        "CA00000000000000000000000000000001",
        "00000000-0000-0000-0000-000000000000",
        300,
    );
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("missing", vec![(TENANT_PARAMETER, tenant.as_str())]),
        (
            "forged",
            vec![
                (TENANT_PARAMETER, tenant.as_str()),
                (TOKEN_PARAMETER, forged.as_str()),
            ],
        ),
        (
            "expired",
            vec![
                (TENANT_PARAMETER, tenant.as_str()),
                (TOKEN_PARAMETER, expired.as_str()),
            ],
        ),
        (
            "another call's",
            vec![
                (TENANT_PARAMETER, tenant.as_str()),
                (TOKEN_PARAMETER, other_call.as_str()),
            ],
        ),
        (
            "another tenant's",
            vec![
                (TENANT_PARAMETER, tenant.as_str()),
                (TOKEN_PARAMETER, other_tenant.as_str()),
            ],
        ),
    ];
    for (name, params) in cases {
        // Act
        let mut stream = RawStream::connect(&world.app.address).await;
        stream
            .start("CA00000000000000000000000000000001", &params)
            .await;
        stream.media(5).await;
        // Assert
        let ending = stream.ending(Duration::from_secs(3)).await;
        assert!(
            matches!(ending, Ending::Closed(Some(1008)) | Ending::Dropped),
            "{name} token: {ending:?}"
        );
    }
    // A good call after them: whatever a refused socket set off would show by
    // the time its agent hears it.
    let (control, stream) = world.control_call().await;
    assert_eq!(
        world.standins.realtime.sessions_opened(),
        1,
        "the good call's session only"
    );
    assert_eq!(world.count_other_calls("call_logs", &control), 0);
    assert_eq!(world.count_other_calls("transcript_segments", &control), 0);
    world.end_control_call(&control, stream).await;
    world.stop().await;
}

#[actix_web::test]
async fn a_wrong_or_missing_webhook_signature_is_refused_and_changes_nothing() {
    let world = CallWorld::start().await;
    for mode in [SignatureMode::Wrong, SignatureMode::Missing] {
        let mut caller = world.caller();
        caller.signature = mode;
        let report = place_call(caller).await.unwrap();
        assert_eq!(report.webhook_status, Some(403), "{mode:?}");
        assert_eq!(
            report.close,
            Some(CloseReason::WebhookRejected { status: 403 })
        );
    }
    // Signed for another URL than the public one Twilio called.
    let mut caller = world.caller();
    caller.sign_url = Some(format!("{}/twilio/voice", world.app.address));
    assert_eq!(place_call(caller).await.unwrap().webhook_status, Some(403));

    // A good call after them: a session a refused webhook pre-opened would
    // show by the time this one's agent hears it.
    let (control, stream) = world.control_call().await;
    assert_eq!(
        world.standins.realtime.sessions_opened(),
        1,
        "the good call's session only"
    );
    assert_eq!(world.count_other_calls("call_logs", &control), 0);
    world.end_control_call(&control, stream).await;
    world.stop().await;
}

#[actix_web::test]
async fn the_old_engines_paths_and_an_explicit_default_port_work() {
    let world = CallWorld::start().await;
    // Twilio's validators accept the URL with and without the default port.
    let mut caller = world.caller();
    caller.webhook_url = format!("{}/incoming-call-realtime", world.app.address);
    caller.sign_url = Some("https://callvisor.test:443/incoming-call-realtime".to_owned());
    caller.speak_for = Duration::from_millis(200);
    let report = place_call(caller).await.unwrap();
    assert_eq!(report.webhook_status, Some(200));
    assert!(report.stream_opened);
    assert_eq!(
        report.stream_url.as_deref(),
        Some("wss://callvisor.test/twilio/media")
    );
    world.stop().await;
}
