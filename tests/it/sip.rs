//! Calls from SIP trunks and WhatsApp through OpenAI's SIP webhook: signature,
//! dedupe, tenant routing, accept/reject bodies, and the call's end.

use std::time::Duration;

use callvisor_standins::sip_driver::incoming_event;
use callvisor_standins::{SessionCommand, SessionTarget, SipDriver};
use serde_json::Value;

use crate::helpers::calls::{CallWorld, TENANT_NUMBER, UNKNOWN_NUMBER, UNSUBSCRIBED_NUMBER};
use crate::helpers::sip::{self, call_id, driver, wait_for_control};

const CALLER: &str = "+15550123456";

#[actix_web::test]
async fn a_signed_incoming_call_is_accepted_with_the_tenants_session() {
    let world = sip::start().await;
    sip::exec(
        &world,
        "UPDATE profiles SET voice = 'cedar' WHERE phone_number = '+15550100001'",
    );
    let id = call_id();

    let (_, status) = driver(&world).incoming(&id, CALLER, TENANT_NUMBER).await;

    assert_eq!(status, 200);
    let body = wait_for_control(&world, &id, "accept").await;
    assert_eq!(body["type"], "realtime");
    assert_eq!(body["model"], "gpt-realtime");
    assert_eq!(body["audio"]["output"]["voice"], "cedar");
    let instructions = body["instructions"].as_str().unwrap();
    assert!(
        instructions.contains("You are the receptionist of Chez Test."),
        "{instructions}"
    );
    let tools: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        tools.contains(&"end_call") && tools.contains(&"transfer_to_human"),
        "{tools:?}"
    );
    let row = world.call_row(&id).expect("a call_logs row");
    assert_eq!(row.caller_number.as_deref(), Some(CALLER));
    assert_eq!(row.recipient_number.as_deref(), Some(TENANT_NUMBER));
    assert_eq!(sip::channel(&world, &id).as_deref(), Some("sip"));
    assert_eq!(world.standins.openai.call_controls(&id).len(), 1);
    world.stop().await;
}

#[actix_web::test]
async fn a_whatsapp_call_is_stored_with_its_channel() {
    let world = sip::start().await;
    let id = call_id();

    let (_, status) = driver(&world)
        .incoming_whatsapp(&id, "+250788123456", TENANT_NUMBER)
        .await;

    assert_eq!(status, 200);
    wait_for_control(&world, &id, "accept").await;
    assert_eq!(sip::channel(&world, &id).as_deref(), Some("whatsapp"));
    world.stop().await;
}

#[actix_web::test]
async fn unknown_and_unsubscribed_numbers_are_rejected_and_nothing_is_opened() {
    let world = sip::start().await;
    for to in [UNKNOWN_NUMBER, UNSUBSCRIBED_NUMBER] {
        let id = call_id();
        let (_, status) = driver(&world).incoming(&id, CALLER, to).await;
        assert_eq!(status, 200);
        let body = wait_for_control(&world, &id, "reject").await;
        assert_eq!(body["status_code"], 603, "{to}");
        assert_eq!(world.standins.openai.call_controls(&id).len(), 1, "{to}");
    }
    // A To that names no number at all.
    let id = call_id();
    let event = incoming_event(&id, &[("To", "sip:reception@sip.example.com")]);
    assert_eq!(driver(&world).send(&event).await.1, 200);
    wait_for_control(&world, &id, "reject").await;

    assert_eq!(world.count("call_logs"), 0);
    assert_eq!(world.standins.realtime.sessions_opened(), 0);
    world.stop().await;
}

#[actix_web::test]
async fn a_tenant_at_its_limit_gets_busy_here() {
    let world = sip::start().await;
    sip::exec(&world, "UPDATE profiles SET max_concurrent_calls = 0");
    let id = call_id();

    driver(&world).incoming(&id, CALLER, TENANT_NUMBER).await;

    let body = wait_for_control(&world, &id, "reject").await;
    assert_eq!(body["status_code"], 486);
    assert_eq!(world.count("call_logs"), 0);
    world.stop().await;
}

#[actix_web::test]
async fn forged_tampered_and_stale_deliveries_are_refused_and_change_nothing() {
    let world = sip::start().await;
    let good = driver(&world);
    let forger = SipDriver::new(good.url.clone(), "whsec_d3Jvbmctc2VjcmV0");
    let id = call_id();
    let event = incoming_event(
        &id,
        &[("From", "sip:+15550123456@x"), ("To", "sip:+15550100001@x")],
    );

    let forged = forger.sign(&event, 0);
    let mut tampered = good.sign(&event, 0);
    tampered.body = tampered.body.replace("+15550123456", "+15550123457");
    let stale = good.sign(&event, 301);
    let future = good.sign(&event, -301);
    let mut unsigned = good.sign(&event, 0);
    unsigned.signature = String::new();

    for (what, delivery) in [
        ("forged", &forged),
        ("tampered", &tampered),
        ("stale", &stale),
        ("future", &future),
        ("unsigned", &unsigned),
    ] {
        assert_eq!(good.post(delivery).await, 400, "{what}");
    }
    assert_eq!(world.count("webhook_events"), 0);
    assert_eq!(world.count("call_logs"), 0);
    assert!(world.standins.openai.requests().is_empty());
    // The same event, rightly signed, goes through: the refusals were the signature's.
    assert_eq!(good.post(&good.sign(&event, 0)).await, 200);
    wait_for_control(&world, &id, "accept").await;
    world.stop().await;
}

#[actix_web::test]
async fn a_redelivered_webhook_id_is_handled_once() {
    let world = sip::start().await;
    let d = driver(&world);
    let id = call_id();
    let (delivery, first) = d.incoming(&id, CALLER, TENANT_NUMBER).await;
    wait_for_control(&world, &id, "accept").await;

    let second = d.post(&delivery).await;

    assert_eq!((first, second), (200, 200));
    // The redelivery's work would be a second accept: it must not come.
    // (Sent after the first accept was seen; a second would follow as quickly.)
    let again = callvisor_standins::wait_until(Duration::from_millis(500), || {
        world.standins.openai.call_controls(&id).len() > 1
    })
    .await;
    assert!(!again, "{:?}", world.standins.openai.call_controls(&id));
    assert_eq!(world.count("webhook_events"), 1);
    assert_eq!(world.count("call_logs"), 1);
    world.stop().await;
}

#[actix_web::test]
async fn the_ended_event_finishes_the_call_once() {
    let world = sip::start().await;
    let d = driver(&world);
    let id = call_id();
    d.incoming(&id, CALLER, TENANT_NUMBER).await;
    wait_for_control(&world, &id, "accept").await;

    assert_eq!(d.ended(&id).await.1, 200);
    let first = world
        .wait_for_row(&id, Duration::from_secs(10), |r| r.ended)
        .await;
    let ended_at = ended_at(&world, &id);
    assert_eq!(d.ended(&id).await.1, 200);

    let second = world.call_row(&id).unwrap();
    assert_eq!(first.duration_seconds, second.duration_seconds);
    assert_eq!(ended_at, self::ended_at(&world, &id));
    assert_eq!(second.end_reason.as_deref(), Some("sip_ended"));
    world.stop().await;
}

#[actix_web::test]
async fn the_webhook_is_not_served_when_sip_is_off() {
    let world = CallWorld::start().await;
    let (_, status) = driver(&world)
        .incoming(&call_id(), CALLER, TENANT_NUMBER)
        .await;
    assert_eq!(status, 404);
    assert_eq!(world.count("webhook_events"), 0);
    world.stop().await;
}

fn ended_at(world: &CallWorld, call_sid: &str) -> String {
    use diesel::sql_types::Text;
    use diesel::{QueryableByName, RunQueryDsl};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        at: String,
    }
    diesel::sql_query("SELECT ended_at::text AS at FROM call_logs WHERE call_sid = $1")
        .bind::<Text, _>(call_sid)
        .get_result::<Row>(&mut world.db().connect())
        .unwrap()
        .at
}

/// An accepted call whose sideband session is configured; returns the session's index.
async fn followed_call(world: &CallWorld, id: &str) -> usize {
    driver(world).incoming(id, CALLER, TENANT_NUMBER).await;
    wait_for_control(world, id, "accept").await;
    let realtime = &world.standins.realtime;
    let found = callvisor_standins::wait_until(Duration::from_secs(5), || {
        realtime
            .sessions()
            .iter()
            .any(|s| s.call_id.as_deref() == Some(id) && !s.session_updates.is_empty())
    })
    .await;
    assert!(
        found,
        "no sideband session for {id}: {:?}",
        realtime.sessions()
    );
    realtime
        .sessions()
        .iter()
        .find(|s| s.call_id.as_deref() == Some(id))
        .map(|s| s.index)
        .unwrap()
}

async fn user_says(world: &CallWorld, index: usize, item: &str, text: &str) {
    let mut frame = String::new();
    callvisor_wire::protocol::realtime::write_input_transcription_completed(&mut frame, item, text);
    world
        .standins
        .realtime
        .command(SessionTarget::Index(index), SessionCommand::Raw(frame))
        .await;
}

async fn wait_for_segments(world: &CallWorld, id: &str, n: usize) {
    let stored =
        callvisor_standins::wait_until(Duration::from_secs(5), || world.segments(id).len() >= n)
            .await;
    assert!(stored, "segments of {id}: {:?}", world.segments(id));
}

#[actix_web::test]
async fn the_sideband_transcript_is_stored_in_order_on_its_channel() {
    let world = sip::start().await;
    let id = call_id();
    let index = followed_call(&world, &id).await;
    // The scripted session greets first (the tenant's greeting, as on a Twilio call).
    wait_for_segments(&world, &id, 1).await;

    user_says(&world, index, "item_u1", "A table for two, please.").await;
    wait_for_segments(&world, &id, 2).await;
    world
        .standins
        .realtime
        .command(
            SessionTarget::Index(index),
            SessionCommand::AgentResponse {
                transcript: "For when?".into(),
            },
        )
        .await;
    wait_for_segments(&world, &id, 3).await;
    user_says(&world, index, "item_u2", "Tomorrow at seven.").await;
    wait_for_segments(&world, &id, 4).await;
    driver(&world).ended(&id).await;

    let row = world
        .wait_for_row(&id, Duration::from_secs(10), |r| {
            r.ended && r.transcript.as_array().is_some_and(|t| t.len() == 4)
        })
        .await;
    let said = crate::helpers::calls::transcript_pairs(&row.transcript);
    let texts: Vec<(&str, &str)> = said.iter().map(|(r, t)| (r.as_str(), t.as_str())).collect();
    assert_eq!(texts[0].0, "assistant");
    assert_eq!(
        &texts[1..],
        &[
            ("user", "A table for two, please."),
            ("assistant", "For when?"),
            ("user", "Tomorrow at seven."),
        ]
    );
    assert_eq!(sip::channel(&world, &id).as_deref(), Some("sip"));
    assert!(row.duration_seconds.is_some());
    world.stop().await;
}

#[actix_web::test]
async fn end_call_on_the_sideband_hangs_the_call_up() {
    let world = sip::start().await;
    let id = call_id();
    followed_call(&world, &id).await;

    world
        .standins
        .realtime
        .emit_tool_call("end_call", "{}")
        .await;

    wait_for_control(&world, &id, "hangup").await;
    let row = world
        .wait_for_row(&id, Duration::from_secs(15), |r| r.ended)
        .await;
    assert_eq!(row.end_reason.as_deref(), Some("agent_ended"));
    world.stop().await;
}

#[actix_web::test]
async fn transfer_on_the_sideband_refers_to_the_tenants_number() {
    let world = sip::start().await;
    let id = call_id();
    followed_call(&world, &id).await;

    world
        .standins
        .realtime
        .emit_tool_call("transfer_to_human", r#"{"reason":"asked for a person"}"#)
        .await;

    let body = wait_for_control(&world, &id, "refer").await;
    assert_eq!(body["target_uri"], "tel:+15550177777");
    driver(&world).ended(&id).await;
    // The ended event finishes the row at once; the call's own end adds the transfer.
    let row = world
        .wait_for_row(&id, Duration::from_secs(10), |r| {
            r.ended && r.transferred_to.is_some()
        })
        .await;
    assert_eq!(row.transferred_to.as_deref(), Some("+15550177777"));
    world.stop().await;
}

#[actix_web::test]
async fn the_callers_country_code_chooses_among_the_tenants_languages() {
    let world = sip::start().await;
    // Only the preferred language until the tenant allows several.
    let id = call_id();
    driver(&world)
        .incoming(&id, "+33142000000", TENANT_NUMBER)
        .await;
    let body = wait_for_control(&world, &id, "accept").await;
    assert!(
        body["instructions"]
            .as_str()
            .unwrap()
            .contains("Speak English"),
        "{body}"
    );

    sip::exec(
        &world,
        "UPDATE profiles SET allowed_languages = '{en,fr,rw,ja}' WHERE phone_number = '+15550100001'",
    );
    for (caller, language, transcription) in [
        ("+250788123456", "Kinyarwanda", Value::Null),
        ("+33142000000", "French", Value::from("fr")),
        ("+81312345678", "Japanese", Value::from("ja")),
        ("+15550123456", "English", Value::from("en")),
    ] {
        let id = call_id();
        driver(&world).incoming(&id, caller, TENANT_NUMBER).await;
        let body = wait_for_control(&world, &id, "accept").await;
        let instructions = body["instructions"].as_str().unwrap();
        assert!(
            instructions.contains(&format!("Speak {language}")),
            "{caller}: {instructions}"
        );
        let chosen = &body["audio"]["input"]["transcription"]["language"];
        assert_eq!(chosen, &transcription, "{caller}");
    }
    world.stop().await;
}

#[actix_web::test]
async fn a_twilio_callers_busy_message_is_in_their_countrys_language() {
    let world = sip::start().await;
    sip::exec(
        &world,
        "UPDATE profiles SET allowed_languages = '{en,fr}', max_concurrent_calls = 0",
    );
    let call_sid = format!("CA{}", uuid::Uuid::new_v4().simple());
    let params: Vec<(String, String)> = [
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("CallSid", call_sid.as_str()),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("From", "+33142000000"),
        ("To", TENANT_NUMBER),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let signature = callvisor_wire::signing::twilio::expected_signature(
        crate::helpers::calls::TWILIO_AUTH_TOKEN,
        &format!("{}/twilio/voice", crate::helpers::calls::PUBLIC_URL),
        &params,
    );
    let mut response = awc::Client::new()
        .post(format!("{}/twilio/voice", world.app.address))
        .insert_header(("X-Twilio-Signature", signature))
        .send_form(&params)
        .await
        .unwrap();
    let twiml = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();

    assert!(twiml.contains("Toutes nos lignes sont occupées"), "{twiml}");
    assert!(twiml.contains("fr"), "{twiml}");
    world.stop().await;
}

#[actix_web::test]
async fn a_dropped_sideband_socket_is_reconnected_to_the_same_call() {
    let world = sip::start().await;
    let id = call_id();
    let index = followed_call(&world, &id).await;

    world
        .standins
        .realtime
        .command(SessionTarget::Index(index), SessionCommand::Drop)
        .await;

    let realtime = &world.standins.realtime;
    let reconnected = callvisor_standins::wait_until(Duration::from_secs(10), || {
        realtime
            .sessions()
            .iter()
            .filter(|s| s.call_id.as_deref() == Some(id.as_str()))
            .count()
            == 2
    })
    .await;
    assert!(reconnected, "{:?}", realtime.sessions());
    // Still live: nothing hung it up.
    assert!(!world.call_row(&id).unwrap().ended);
    assert!(world
        .standins
        .openai
        .call_controls(&id)
        .iter()
        .all(|(a, _)| a == "accept"));
    world.stop().await;
}

#[actix_web::test]
async fn a_sideband_that_cannot_come_back_ends_the_call_once() {
    let world = sip::start().await;
    let id = call_id();
    let index = followed_call(&world, &id).await;

    // The call is over on OpenAI's side: the socket closes and will not reopen.
    world.standins.realtime.refuse_connections(true);
    world
        .standins
        .realtime
        .command(SessionTarget::Index(index), SessionCommand::Close)
        .await;

    wait_for_control(&world, &id, "hangup").await;
    let row = world
        .wait_for_row(&id, Duration::from_secs(20), |r| r.ended)
        .await;
    assert_eq!(row.end_reason.as_deref(), Some("upstream_failed"));
    let hangups = world
        .standins
        .openai
        .call_controls(&id)
        .iter()
        .filter(|(a, _)| a == "hangup")
        .count();
    assert_eq!(hangups, 1);
    world.stop().await;
}

#[test]
fn the_webhook_secret_is_required_only_when_sip_is_on() {
    use callvisor::config::{self, Purpose};
    let mut env = crate::helpers::app::test_env("postgres://127.0.0.1/x");
    assert!(config::load_from(std::path::Path::new("config"), &env, Purpose::Serve).is_ok());

    env.insert("CALLVISOR__FEATURES__OPENAI_SIP".into(), "true".into());
    let refused = config::load_from(std::path::Path::new("config"), &env, Purpose::Serve)
        .expect_err("the secret is required");
    let variables: Vec<&str> = refused
        .issues()
        .iter()
        .map(|i| i.variable.as_str())
        .collect();
    assert_eq!(variables, ["OPENAI_WEBHOOK_SECRET"]);

    env.insert("OPENAI_WEBHOOK_SECRET".into(), sip::WEBHOOK_SECRET.into());
    assert!(config::load_from(std::path::Path::new("config"), &env, Purpose::Serve).is_ok());
}
