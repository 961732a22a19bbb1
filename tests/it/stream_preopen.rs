//! A session pre-opened while the phone rings is paid for while it waits: it
//! does not start the greeting (a paid response) before a call adopts it, and
//! it is closed as soon as a socket for its CallSid fails its token.

use std::time::Duration;

use callvisor_actors::twilio_stream::{TENANT_PARAMETER, TOKEN_PARAMETER};
use callvisor_standins::{wait_until, StandInsConfig};

use crate::helpers::calls::CallWorld;
use crate::helpers::raw_stream::{Ending, RawStream};

#[actix_web::test]
async fn a_pre_opened_session_that_is_never_adopted_never_greets() {
    // Arrange: sessions parked one second at most.
    let world = CallWorld::start_with(
        StandInsConfig::default(),
        &[("CALLVISOR__CALLS__PREOPEN_TIMEOUT_SECONDS", "1")],
    )
    .await;
    let realtime = &world.standins.realtime;
    // Act: the phone rings, no socket ever comes.
    let (_call_sid, _params) = world.answer().await;
    assert!(realtime.wait_for_sessions(1, Duration::from_secs(5)).await);
    // Assert: configured, then closed when its park ran out, never greeting.
    assert!(wait_until(Duration::from_secs(5), || realtime.live_sessions() == 0).await);
    let session = realtime.session(0).unwrap();
    assert!(!session.session_updates.is_empty(), "it was configured");
    assert_eq!(session.response_creates, 0, "no greeting for nobody");
    world.stop().await;
}

#[actix_web::test]
async fn a_bad_token_for_the_call_closes_its_parked_session_at_once() {
    // Arrange: a parked session (parked 15 s by default).
    let world = CallWorld::start().await;
    let realtime = &world.standins.realtime;
    let (call_sid, params) = world.answer().await;
    assert!(realtime.wait_for_sessions(1, Duration::from_secs(5)).await);
    let tenant = params
        .iter()
        .find(|(k, _)| k == TENANT_PARAMETER)
        .map(|(_, v)| v.clone())
        .unwrap();
    // Act: a socket for that CallSid with a forged token.
    let mut stream = RawStream::connect(&world.app.address).await;
    stream
        .start(
            &call_sid,
            &[
                (TENANT_PARAMETER, tenant.as_str()),
                (
                    TOKEN_PARAMETER,
                    "v1.9999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                ),
            ],
        )
        .await;
    // Assert: refused, and the parked session closed long before its park ran out.
    assert_eq!(
        stream.ending(Duration::from_secs(3)).await,
        Ending::Closed(Some(1008))
    );
    assert!(wait_until(Duration::from_secs(3), || realtime.live_sessions() == 0).await);
    assert_eq!(realtime.session(0).unwrap().response_creates, 0);
    world.stop().await;
}
