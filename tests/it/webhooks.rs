//! Twilio's webhooks tried as an attacker (or a misconfigured account) would:
//! a replayed voice webhook of an ended call opens nothing, and a signed
//! request missing what Twilio always sends is a 400 that Twilio's debugger
//! shows, never a silent hang-up.

use callvisor_actors::realtime::preopen;
use callvisor_standins::twiml::parse_twiml;

use crate::helpers::calls::{voice_params, CallWorld};

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn without(params: &[(String, String)], key: &str) -> Vec<(String, String)> {
    params.iter().filter(|(k, _)| k != key).cloned().collect()
}

fn with(params: &[(String, String)], key: &str, value: &str) -> Vec<(String, String)> {
    let mut params = without(params, key);
    params.push((key.to_owned(), value.to_owned()));
    params
}

#[actix_web::test]
async fn a_replayed_voice_webhook_of_an_ended_call_hangs_up_and_opens_nothing() {
    // Arrange: a call answered (its session pre-opened), then ended by
    // Twilio's final status callback.
    let world = CallWorld::start().await;
    let call_sid = format!("CA{}", uuid::Uuid::new_v4().simple());
    let webhook = voice_params(&call_sid);
    let (status, body) = world.signed_post("/twilio/voice", &webhook).await;
    assert_eq!(status, 200, "{body}");
    assert!(parse_twiml(&body).unwrap().connect_stream().is_some());
    assert!(
        preopen::take(&call_sid).is_some(),
        "the first answer pre-opens a session"
    );
    let (status, body) = world
        .signed_post(
            "/twilio/status",
            &pairs(&[
                ("AccountSid", "AC00000000000000000000000000000000"),
                ("CallSid", &call_sid),
                ("CallStatus", "completed"),
                ("CallDuration", "4"),
            ]),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert!(world.call_row(&call_sid).unwrap().ended);

    // Act: the very same signed request again.
    let (status, body) = world.signed_post("/twilio/voice", &webhook).await;

    // Assert: a hang-up, no stream (so no token), no session, the row as it was.
    assert_eq!(status, 200, "{body}");
    let twiml = parse_twiml(&body).unwrap();
    assert!(twiml.connect_stream().is_none(), "{body}");
    assert!(body.contains("<Hangup"), "{body}");
    assert!(!body.contains("stream_token"), "{body}");
    assert!(
        preopen::take(&call_sid).is_none(),
        "no session opened for an ended call"
    );
    let row = world.call_row(&call_sid).unwrap();
    assert!(row.ended);
    assert_eq!(row.status, "completed");
    assert_eq!(row.duration_seconds, Some(4));
    world.stop().await;
}

#[actix_web::test]
async fn a_signed_voice_webhook_missing_a_field_is_a_400_with_a_clear_error() {
    let world = CallWorld::start().await;
    let call_sid = format!("CA{}", uuid::Uuid::new_v4().simple());
    let good = voice_params(&call_sid);
    let cases = [
        ("CallSid", without(&good, "CallSid")),
        ("CallSid", with(&good, "CallSid", "CA1\"><script>")),
        ("To", without(&good, "To")),
        ("To", with(&good, "To", "twelve")),
        ("From", without(&good, "From")),
        ("From", with(&good, "From", "")),
    ];
    for (field, params) in &cases {
        // Act
        let (status, body) = world.signed_post("/twilio/voice", params).await;
        // Assert
        assert_eq!(status, 400, "{field}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"], "bad_request", "{body}");
        assert!(
            json["message"].as_str().unwrap().contains(field),
            "{field}: {body}"
        );
    }
    // Unsigned, the signature is what is refused first.
    let mut response = awc::Client::new()
        .post(format!("{}/twilio/voice", world.app.address))
        .send_form(&without(&good, "To"))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let _ = response.body().await;
    assert_eq!(world.count("call_logs"), 0, "nothing was registered");
    assert!(preopen::take(&call_sid).is_none(), "nothing was opened");

    // A withheld caller ID is not malformed: the call is answered.
    let (status, body) = world
        .signed_post("/twilio/voice", &with(&good, "From", "anonymous"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(parse_twiml(&body).unwrap().connect_stream().is_some());
    let _ = preopen::take(&call_sid);
    world.stop().await;
}

#[actix_web::test]
async fn a_signed_status_callback_missing_a_field_is_a_400() {
    let world = CallWorld::start().await;
    let good = pairs(&[
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("CallSid", "CA0000000000000000000000000000beef"),
        ("CallStatus", "completed"),
    ]);
    for field in ["CallSid", "CallStatus"] {
        let (status, body) = world
            .signed_post("/twilio/status", &without(&good, field))
            .await;
        assert_eq!(status, 400, "{field}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"], "bad_request");
        assert!(json["message"].as_str().unwrap().contains(field), "{body}");
    }
    let mut response = awc::Client::new()
        .post(format!("{}/twilio/status", world.app.address))
        .send_form(&without(&good, "CallStatus"))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403, "signature first");
    let _ = response.body().await;
    // A progress callback is well-formed and changes nothing.
    let (status, _) = world
        .signed_post("/twilio/status", &with(&good, "CallStatus", "ringing"))
        .await;
    assert_eq!(status, 204);
    world.stop().await;
}
