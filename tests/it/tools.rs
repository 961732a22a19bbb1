//! The agent's tools, wired end to end: the model's function call reaches its
//! effect, and its output goes back to the model (`function_call_output` with
//! the same `call_id`, then `response.create` when the agent should go on).

use std::time::Duration;

use callvisor_standins::{CallEnd, CallerSession, CloseReason};
use diesel::sql_types::{Jsonb, Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl};

use crate::helpers::calls::CallWorld;

async fn live_call(world: &CallWorld) -> CallerSession {
    let mut caller = world.caller();
    caller.speak_for = Duration::from_secs(4);
    caller.end = CallEnd::Stop {
        after_audio: Duration::from_millis(300),
    };
    let session = CallerSession::start(caller).await.unwrap();
    world.wait_for_agent().await;
    assert!(
        session
            .wait_until(Duration::from_secs(5), |r| r.media_received > 0)
            .await
    );
    session
}

fn tool_outputs(world: &CallWorld) -> Vec<(bool, serde_json::Value)> {
    world
        .standins
        .realtime
        .session(0)
        .unwrap()
        .items_created
        .iter()
        .filter(|i| i.item_type == "function_call_output")
        .map(|i| {
            (
                i.call_id_known,
                serde_json::from_str(i.output.as_deref().unwrap()).unwrap(),
            )
        })
        .collect()
}

#[derive(QueryableByName, Debug)]
struct Reservation {
    #[diesel(sql_type = Nullable<Text>)]
    date: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    time: Option<String>,
    #[diesel(sql_type = Jsonb)]
    answers: serde_json::Value,
    #[diesel(sql_type = Nullable<Text>)]
    customer_phone: Option<String>,
}

#[actix_web::test]
async fn create_reservation_is_stored_and_answered() {
    // Arrange
    let world = CallWorld::start().await;
    let session = live_call(&world).await;
    let call_sid = session.call_sid().to_owned();
    // Act: a bad date first, then a good request.
    world
        .standins
        .realtime
        .emit_tool_call(
            "create_reservation",
            r#"{"requested_date":"2026-02-30","requested_time":"19:30"}"#,
        )
        .await;
    world
        .standins
        .realtime
        .emit_tool_call(
            "create_reservation",
            r#"{"customer_name":"Ada","requested_date":"2026-12-24","requested_time":"19:30","party_size":4}"#,
        )
        .await;
    assert!(
        callvisor_standins::wait_until(Duration::from_secs(5), || tool_outputs(&world).len() == 2)
            .await
    );
    session.wait().await;
    // Assert: both answered with the model's own call ids.
    let outputs = tool_outputs(&world);
    assert!(
        outputs.iter().all(|(known, _)| *known),
        "call_id echoed back"
    );
    assert_eq!(outputs[0].1["ok"], false);
    assert_eq!(outputs[0].1["error"], "invalid_date");
    assert_eq!(outputs[1].1["ok"], true);
    assert_eq!(outputs[1].1["status"], "pending");
    assert!(
        world.standins.realtime.session(0).unwrap().response_creates >= 3,
        "greeting + one per tool output"
    );
    let stored: Vec<Reservation> = diesel::sql_query(
        "SELECT requested_date::text AS date, to_char(requested_time, 'HH24:MI') AS time, answers, customer_phone
         FROM reservation_requests WHERE call_sid = $1",
    )
    .bind::<Text, _>(&call_sid)
    .load(&mut world.app.db.as_ref().unwrap().connect())
    .unwrap();
    assert_eq!(stored.len(), 1, "one request per call");
    assert_eq!(stored[0].date.as_deref(), Some("2026-12-24"));
    assert_eq!(stored[0].time.as_deref(), Some("19:30"));
    assert_eq!(stored[0].answers["customer_name"], "Ada");
    assert_eq!(
        stored[0].customer_phone.as_deref(),
        Some("+15550123456"),
        "the caller's number by default"
    );
    world.stop().await;
}

#[actix_web::test]
async fn transfer_to_human_dials_the_tenants_number_through_twilio() {
    let world = CallWorld::start().await;
    let session = live_call(&world).await;
    let call_sid = session.call_sid().to_owned();
    world
        .standins
        .realtime
        .emit_tool_call("transfer_to_human", r#"{"reason":"wants a person"}"#)
        .await;
    assert!(
        callvisor_standins::wait_until(Duration::from_secs(5), || {
            !world.standins.twilio.call_updates(&call_sid).is_empty()
        })
        .await
    );
    session.wait().await;
    let updates = world.standins.twilio.call_updates(&call_sid);
    let twiml = updates[0]
        .iter()
        .find(|(k, _)| k == "Twiml")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(twiml.contains("<Dial"), "{twiml}");
    assert!(
        twiml.contains("<Number>+15550177777</Number>"),
        "the tenant's hand-off number: {twiml}"
    );
    assert!(twiml.contains(r#"callerId="+15550100001""#), "{twiml}");
    let row = world
        .wait_for_row(&call_sid, Duration::from_secs(10), |r| r.ended)
        .await;
    assert_eq!(row.transferred_to.as_deref(), Some("+15550177777"));
    assert_eq!(row.end_reason.as_deref(), Some("transferred"));
    world.stop().await;
}

#[actix_web::test]
async fn end_call_lets_the_last_words_play_then_closes_the_stream() {
    let world = CallWorld::start().await;
    let mut caller = world.caller();
    caller.speak_for = Duration::from_secs(10);
    caller.end = CallEnd::Manual;
    let session = CallerSession::start(caller).await.unwrap();
    let call_sid = session.call_sid().to_owned();
    world.wait_for_agent().await;
    world
        .standins
        .realtime
        .emit_tool_call("end_call", r#"{"reason":"goodbye"}"#)
        .await;
    let report = session.wait().await;
    assert!(
        matches!(report.close, Some(CloseReason::ServerClosed { .. })),
        "{:?}",
        report.close
    );
    assert_eq!(
        report.audio_queued_ms, 0,
        "nothing the agent said was cut off"
    );
    let row = world
        .wait_for_row(&call_sid, Duration::from_secs(10), |r| r.ended)
        .await;
    assert_eq!(row.end_reason.as_deref(), Some("agent_ended"));
    world.stop().await;
}

#[actix_web::test]
async fn a_campaign_calls_reservation_defaults_to_the_called_customers_number() {
    // Arrange: a campaign of the tenant calling a customer from a pool number;
    // Twilio's webhook for the answered call carries `From` = the pool number
    // and `To` = the customer.
    let world = CallWorld::start().await;
    let (pool_number, customer) = ("+15550200042", "+15550807777");
    let call_sid = format!("CA{}", uuid::Uuid::new_v4().simple());
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let campaign = diesel::sql_query(format!(
        "WITH c AS (INSERT INTO campaigns (user_id, max_concurrency, created_by)
                    VALUES ('{tenant}', 1, 'test') RETURNING id),
              t AS (INSERT INTO campaign_targets (campaign_id, position, to_number, status, from_number, call_sid)
                    SELECT id, 0, '{customer}', 'calling', '{pool_number}', '{call_sid}' FROM c)
         SELECT id::text AS id FROM c",
        tenant = world.tenant_id
    ))
    .get_result::<Id>(&mut world.db().connect())
    .unwrap()
    .id;
    let mut caller = world.caller();
    caller.webhook_url = format!("{}/twilio/voice?campaign={campaign}", world.app.address);
    caller.sign_url = Some(format!(
        "{}/twilio/voice?campaign={campaign}",
        crate::helpers::calls::PUBLIC_URL
    ));
    caller.call_sid = Some(call_sid.clone());
    caller.direction = "outbound-api".to_owned();
    caller.from = pool_number.to_owned();
    caller.to = customer.to_owned();
    caller.speak_for = Duration::from_secs(4);
    caller.end = CallEnd::Stop {
        after_audio: Duration::from_millis(300),
    };
    let session = CallerSession::start(caller).await.unwrap();
    world.wait_for_agent().await;

    // Act: the agent books without asking for a number.
    world
        .standins
        .realtime
        .emit_tool_call(
            "create_reservation",
            r#"{"customer_name":"Grace","requested_date":"2026-12-24","requested_time":"20:00"}"#,
        )
        .await;
    assert!(
        callvisor_standins::wait_until(Duration::from_secs(5), || tool_outputs(&world).len() == 1)
            .await
    );
    session.wait().await;

    // Assert: the contact is the customer called, not our pool number.
    assert_eq!(tool_outputs(&world)[0].1["ok"], true);
    let stored: Vec<Reservation> = diesel::sql_query(
        "SELECT requested_date::text AS date, to_char(requested_time, 'HH24:MI') AS time, answers, customer_phone
         FROM reservation_requests WHERE call_sid = $1",
    )
    .bind::<Text, _>(&call_sid)
    .load(&mut world.db().connect())
    .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].customer_phone.as_deref(), Some(customer));
    let row = world.call_row(&call_sid).unwrap();
    assert_eq!(
        row.caller_number.as_deref(),
        Some(pool_number),
        "the log keeps Twilio's From"
    );
    assert_eq!(row.recipient_number.as_deref(), Some(customer));
    world.stop().await;
}
