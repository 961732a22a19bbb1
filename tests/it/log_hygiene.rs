//! A whole call's log, read as a log shipper reads the process's stderr,
//! shows no caller number in full, no key the caller pressed, and no line
//! that a caller shaped: values from requests are escaped, numbers masked.
//! Every line about the call names its tenant.

use std::time::Duration;

use callvisor_standins::{CallEnd, CallerConfig, CallerSession, StandIns, StandInsConfig};
use diesel::connection::SimpleConnection;

use crate::helpers::db::TestDb;
use crate::helpers::pool::{
    tenant, twilio_webhook, Instance, ACCOUNT_SID, PUBLIC_URL, TWILIO_AUTH_TOKEN,
};

/// The caller's number: it must not appear in full in any line.
const PLANTED_NUMBER: &str = "+15557654321";
/// What the caller keys in (a PIN): no digit of it may be logged.
const PLANTED_PIN: &str = "4927";
/// A value shaped to start a line of its own if logged raw.
const FORGED: &str = "+1555\nCALL_ENDED call_sid=CAforged tenant=someone reason=forged";
const TENANT_NUMBER: &str = "+15550140001";

/// True when `line` is one of the logger's lines (`<RFC 3339 time> <LEVEL> ...`).
fn is_logger_line(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 25 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T'
}

#[actix_web::test]
async fn a_calls_log_shows_no_pin_no_full_number_and_no_forged_line() {
    // Arrange: the stand-ins, one tenant with a prompt, one `callvisor serve`.
    let mut config = StandInsConfig::default();
    config.twilio.account_sid = ACCOUNT_SID.to_owned();
    config.twilio.auth_token = TWILIO_AUTH_TOKEN.to_owned();
    let standins = StandIns::start_with(config).await.unwrap();
    let db = TestDb::migrated();
    let mut conn = db.connect();
    let tenant_id = tenant(&mut conn, TENANT_NUMBER, "standard", 10, None);
    conn.batch_execute(&format!(
        "INSERT INTO user_prompts (user_id, system_prompt, config_metadata)
         VALUES ('{tenant_id}', 'You are the receptionist of Chez Log.', '{{}}')"
    ))
    .unwrap();
    let env = standins.env();
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let instance = Instance::start(&db.url, &standins.twilio_api_base(), &extra).await;

    // Act 1: a call whose caller keys in a PIN while talking to the agent.
    let mut caller = CallerConfig::new(
        format!("{}/twilio/voice", instance.address),
        TWILIO_AUTH_TOKEN,
    );
    caller.sign_url = Some(format!("{PUBLIC_URL}/twilio/voice"));
    caller.account_sid = ACCOUNT_SID.to_owned();
    caller.to = TENANT_NUMBER.to_owned();
    caller.from = PLANTED_NUMBER.to_owned();
    caller.stream_url_override = Some(instance.address.replacen("http://", "ws://", 1));
    caller.speak_for = Duration::from_millis(1500);
    caller.end = CallEnd::Stop {
        after_audio: Duration::from_millis(500),
    };
    let session = CallerSession::start(caller).await.unwrap();
    let call_sid = session.call_sid().to_owned();
    assert!(
        session
            .wait_until(Duration::from_secs(10), |r| r.media_received > 0)
            .await,
        "the caller hears the agent:\n{}",
        instance.dump()
    );
    for digit in PLANTED_PIN.chars() {
        assert!(session.send_dtmf(&digit.to_string()));
    }
    let report = session.wait().await;
    assert!(report.stream_opened, "{report:?}");
    assert_eq!(report.dtmf_sent.len(), PLANTED_PIN.len(), "{report:?}");

    // Act 2: webhooks carrying a value shaped as a log line of its own.
    let forged_sid = format!("CA{}", uuid::Uuid::new_v4().simple());
    let _ = twilio_webhook(
        &instance.address,
        "/twilio/voice",
        &[
            ("AccountSid", ACCOUNT_SID),
            ("CallSid", &forged_sid),
            ("CallStatus", "ringing"),
            ("Direction", "inbound"),
            ("From", FORGED),
            ("To", TENANT_NUMBER),
        ],
    )
    .await;
    let _ = twilio_webhook(
        &instance.address,
        "/twilio/status",
        &[
            ("AccountSid", ACCOUNT_SID),
            ("CallSid", &call_sid),
            ("CallStatus", FORGED),
            ("CallDuration", "2"),
        ],
    )
    .await;
    // An unsigned one: refused, and its CallSid is not trusted in the log either.
    let unsigned = awc::Client::new()
        .post(format!("{}/twilio/voice", instance.address))
        .send_form(&[("CallSid", FORGED), ("From", FORGED), ("To", TENANT_NUMBER)])
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 403);
    let ended = instance
        .wait_for_log(Duration::from_secs(15), |l| {
            l.contains("CALL_ENDED") && l.contains(&call_sid)
        })
        .await;
    assert!(ended.is_some(), "the call ended:\n{}", instance.dump());
    // The keys pressed reached the engine (so the check below is not vacuous).
    assert_eq!(
        instance.count_lines("CALL_DTMF", 4).await,
        4,
        "{}",
        instance.dump()
    );

    // Assert
    let logs = instance.logs();
    let full_number = PLANTED_NUMBER.trim_start_matches('+');
    for line in &logs {
        assert!(
            is_logger_line(line),
            "a line that is not the logger's (forged?): {line:?}\n{}",
            instance.dump()
        );
        assert!(!line.contains(full_number), "full caller number in: {line}");
        assert!(
            !line.contains("digit="),
            "a key the caller pressed in: {line}"
        );
        if line.contains("CALL_DTMF") {
            // Ids are hex and may hold any four digits: look at the other fields.
            let rest: Vec<&str> = line
                .split_whitespace()
                .skip(3)
                .filter(|f| !f.starts_with("call_sid=") && !f.starts_with("tenant="))
                .collect();
            assert!(
                rest.iter()
                    .all(|f| !f.chars().any(|c| PLANTED_PIN.contains(c))),
                "a key the caller pressed in: {line}"
            );
        }
    }
    assert!(
        logs.iter()
            .any(|l| l.contains("CALL_ANSWERED") && l.contains("…4321")),
        "the caller's number is shown masked:\n{}",
        instance.dump()
    );
}
