//! Calls that end in every way leave nothing behind on the instance: no live
//! call in the supervisor, no session parked or still open at the Realtime
//! API (each one is paid for), no media socket holding a place in the start
//! gate, no call log left open and no pool number still leased.

use std::time::Duration;

use callvisor_actors::realtime::preopen;
use callvisor_actors::supervisor::messages::ListCalls;
use callvisor_actors::twilio_stream::TOKEN_PARAMETER;
use callvisor_standins::{place_call, wait_until, CallEnd, CallerSession, CloseReason};
use serde_json::json;

use crate::helpers::calls::{CallWorld, PUBLIC_URL};
use crate::helpers::pool::{count, shared_numbers, Admin, ACCOUNT_SID};
use crate::helpers::raw_stream::{Ending, RawStream};

/// What is still held, as one line for an assertion message.
#[derive(Debug, PartialEq, Eq)]
struct Held {
    live_calls: usize,
    parked: Vec<String>,
    realtime_sessions: usize,
    awaiting_start: usize,
    open_call_logs: i64,
    leased_numbers: i64,
}

const NOTHING: Held = Held {
    live_calls: 0,
    parked: Vec::new(),
    realtime_sessions: 0,
    awaiting_start: 0,
    open_call_logs: 0,
    leased_numbers: 0,
};

async fn held(world: &CallWorld, call_sids: &[String]) -> Held {
    let mut conn = world.db().connect();
    Held {
        live_calls: world.app.state.calls.supervisor.send(ListCalls).await.unwrap().len(),
        // The registry is process-wide and other tests run alongside: ask per CallSid.
        parked: call_sids
            .iter()
            .filter(|sid| preopen::is_parked(sid))
            .cloned()
            .collect(),
        realtime_sessions: world.standins.realtime.live_sessions(),
        awaiting_start: world.app.state.calls.start_gate.waiting(),
        open_call_logs: count(
            &mut conn,
            "SELECT count(*) AS n FROM call_logs WHERE ended_at IS NULL",
        ),
        leased_numbers: count(
            &mut conn,
            "SELECT count(*) AS n FROM phone_numbers WHERE status = 'in_use' OR lease_holder IS NOT NULL",
        ),
    }
}

/// Ends the campaign's one outbound call as the carrier would (busy), once the
/// service has placed it; returns its CallSid.
async fn outbound_call_ended_busy(world: &CallWorld) -> String {
    let twilio = &world.standins.twilio;
    assert!(
        wait_until(Duration::from_secs(10), || twilio
            .calls()
            .iter()
            .any(|c| c.direction == "outbound-api"))
        .await,
        "the campaign placed its call"
    );
    let call = twilio
        .calls()
        .into_iter()
        .find(|c| c.direction == "outbound-api")
        .unwrap();
    let mut conn = world.db().connect();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM phone_numbers WHERE status = 'in_use'"
        ),
        1,
        "the outbound call holds a pool number while it rings"
    );
    let callback = call.status_callback.clone().expect("a StatusCallback");
    let path = callback
        .strip_prefix(PUBLIC_URL)
        .expect("a StatusCallback under PUBLIC_URL");
    let params: Vec<(String, String)> = [
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", call.sid.as_str()),
        ("CallStatus", "busy"),
        ("CallDuration", "0"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let (status, body) = world.signed_post(path, &params).await;
    assert!(status < 300, "status callback: {status} {body}");
    call.sid
}

#[actix_web::test]
async fn calls_ended_every_way_leave_no_call_session_socket_log_or_lease_behind() {
    // Arrange: one instance, its stand-ins, two pool numbers for outbound calls.
    let world = CallWorld::start().await;
    shared_numbers(&mut world.db().connect(), 0, 2);
    let realtime = &world.standins.realtime;
    let mut call_sids = Vec::new();

    // Act 1: the caller says goodbye (stop, then a clean close).
    let mut caller = world.caller();
    caller.speak_for = Duration::from_millis(600);
    let report = place_call(caller).await.unwrap();
    assert_eq!(report.close, Some(CloseReason::StopSent));
    call_sids.push(report.call_sid.clone());

    // Act 2: the caller's network goes (TCP dropped, no stop, no close frame).
    let mut caller = world.caller();
    caller.speak_for = Duration::from_millis(600);
    caller.end = CallEnd::Abrupt {
        after_audio: Duration::from_millis(100),
    };
    let report = place_call(caller).await.unwrap();
    call_sids.push(report.call_sid.clone());

    // Act 3: the Realtime API drops the agent mid-call and refuses it again:
    // the caller is told sorry and our side closes the stream.
    let mut caller = world.caller();
    caller.speak_for = Duration::from_secs(8);
    caller.end = CallEnd::Manual;
    let session = CallerSession::start(caller).await.unwrap();
    call_sids.push(session.call_sid().to_owned());
    world.wait_for_agent().await;
    realtime.refuse_connections(true);
    assert!(realtime.drop_sessions().await >= 1);
    let report = session.wait().await;
    assert!(
        matches!(report.close, Some(CloseReason::ServerClosed { .. })),
        "{:?}",
        report.close
    );
    realtime.refuse_connections(false);

    // Act 4: a webhook pre-opens a session, then the socket's token is forged:
    // the socket is refused, and Twilio ends the call with a status callback.
    let (call_sid, params) = world.answer().await;
    call_sids.push(call_sid.clone());
    let forged: Vec<(String, String)> = params
        .into_iter()
        .map(|(k, v)| {
            if k == TOKEN_PARAMETER {
                (k, format!("{v}x"))
            } else {
                (k, v)
            }
        })
        .collect();
    let mut stream = RawStream::connect(&world.app.address).await;
    stream.start(&call_sid, &forged).await;
    let ending = stream.ending(Duration::from_secs(3)).await;
    assert!(
        matches!(ending, Ending::Closed(Some(1008)) | Ending::Dropped),
        "{ending:?}"
    );
    let callback: Vec<(String, String)> = [
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", call_sid.as_str()),
        ("CallStatus", "completed"),
        ("CallDuration", "3"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let (status, body) = world.signed_post("/twilio/status", &callback).await;
    assert!(status < 300, "status callback: {status} {body}");

    // Act 5: an outbound campaign call leases a pool number; the callee is busy.
    let (status, created) = Admin::new(&world.app.address)
        .post(
            "/admin/campaigns",
            &json!({ "tenant_id": world.tenant_id, "numbers": ["+15550800001"], "name": "leaks" }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    call_sids.push(outbound_call_ended_busy(&world).await);

    // Assert: every call ended and was let go of, whatever ended it. Within
    // 10 s: a parked session nobody closes would close itself after its park
    // timeout (15 s), hiding the leak.
    let mut last = held(&world, &call_sids).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while last != NOTHING && std::time::Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        last = held(&world, &call_sids).await;
    }
    assert_eq!(last, NOTHING, "still held after {} calls", call_sids.len());
    let mut conn = world.db().connect();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM call_logs WHERE ended_at IS NOT NULL"
        ),
        call_sids.len() as i64,
        "every call has its log, ended"
    );
    assert_eq!(
        realtime.sessions_opened(),
        4,
        "one agent per inbound call (the dropped one was refused again)"
    );
    world.stop().await;
}
