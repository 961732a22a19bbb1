//! `callvisor-dev demo`: the whole call path on a laptop. It starts the local
//! stand-ins (OpenAI Realtime and REST, Twilio REST), seeds demo tenants,
//! serves on `PORT` exactly as `serve` does, places a few simulated Twilio
//! calls through the real webhook and media socket, prints each call's
//! transcript and summary as read back from PostgreSQL, and keeps serving
//! until Ctrl-C (or exits, with `--exit-after-calls`). Next to the Twilio
//! calls, one WhatsApp call arrives the way OpenAI SIP delivers it: a signed
//! `realtime.call.incoming` webhook, the accept, the sideband socket (a
//! Kigali caller, answered in Kinyarwanda), then `realtime.call.ended`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use diesel::sql_types::{Integer, Jsonb, Nullable, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};

use callvisor_actors::events;

use callvisor::config::{self, EnvVars, Purpose, Settings};
use callvisor::startup::Application;
use callvisor_standins::{
    place_call, CallEnd, CallerConfig, SessionCommand, SessionTarget, SipDriver, StandIns,
};

/// Prints a line to stdout; a closed pipe (`| head`) is not an error worth a panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Demo tenants: (number, subscribed, language, prompt, greeting).
const TENANTS: &[(&str, bool, &str, &str, &str)] = &[
    (
        "+15550100100",
        true,
        "en",
        "You are the receptionist of Chez Demo, a bistro open 12:00-22:00. Take table reservations.",
        "Good evening, Chez Demo, how can I help you?",
    ),
    (
        "+15550100200",
        true,
        "fr",
        "Tu es la réceptionniste du Salon Démo, un salon de coiffure à Kigali.",
        "Bonjour, Salon Démo, que puis-je faire pour vous ?",
    ),
    ("+15550100300", false, "en", "", ""),
];

/// Placeholders for secrets the demo does not need real values of (stand-ins accept any).
const PLACEHOLDERS: &[(&str, &str)] = &[
    ("OPENAI_API_KEY", "sk-demo-placeholder"),
    ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000"),
    ("TWILIO_AUTH_TOKEN", "demo-twilio-auth-token"),
    ("ADMIN_TOKEN", "demo-admin-token-change-me"),
    // The stand-in driver signs the demo's webhooks with this.
    ("OPENAI_WEBHOOK_SECRET", DEMO_WEBHOOK_SECRET),
    ("CALLVISOR__FEATURES__OPENAI_SIP", "true"),
];

/// The demo project's webhook secret (base64 of "callvisor-demo-webhook-secret").
const DEMO_WEBHOOK_SECRET: &str = "whsec_Y2FsbHZpc29yLWRlbW8td2ViaG9vay1zZWNyZXQ=";
/// The WhatsApp call: a Kigali number calling the salon, which allows several languages.
const WHATSAPP_CALLER: &str = "+250788100100";
const WHATSAPP_TENANT: &str = "+15550100200";

#[derive(QueryableByName)]
struct CallSummaryRow {
    #[diesel(sql_type = Text)]
    call_sid: String,
    #[diesel(sql_type = Nullable<Text>)]
    recipient_number: Option<String>,
    #[diesel(sql_type = Text)]
    channel: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Integer>)]
    duration_seconds: Option<i32>,
    #[diesel(sql_type = Jsonb)]
    transcript: serde_json::Value,
    #[diesel(sql_type = Nullable<Text>)]
    summary: Option<String>,
}

/// Runs the demo; the process exit code comes back.
pub fn run(exit_after_calls: bool) -> ExitCode {
    let system = actix_web::rt::System::new();
    match system.block_on(demo(exit_after_calls)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{} error={e:?}", events::SERVICE_FAILED);
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo_settings(standins: &StandIns) -> Result<Settings, String> {
    let mut env: EnvVars = std::env::vars().collect();
    for (key, value) in PLACEHOLDERS {
        env.entry((*key).to_owned())
            .or_insert_with(|| (*value).to_owned());
    }
    for (key, value) in standins.env() {
        env.insert(key.to_owned(), value);
    }
    let port = env
        .get("PORT")
        .cloned()
        .unwrap_or_else(|| "8080".to_owned());
    env.insert("PUBLIC_URL".into(), format!("http://127.0.0.1:{port}"));
    env.entry("APP_ENV".into())
        .or_insert_with(|| "development".into());
    let dir = env
        .get("CALLVISOR_CONFIG_DIR")
        .map_or_else(|| PathBuf::from("config"), PathBuf::from);
    config::load_from(&dir, &env, Purpose::Serve).map_err(|e| e.to_string())
}

fn seed(url: &str) -> Result<(), String> {
    let mut conn = PgConnection::establish(url).map_err(|e| e.to_string())?;
    for (number, subscribed, language, prompt, greeting) in TENANTS {
        diesel::sql_query(
            "WITH t AS (
                 INSERT INTO profiles (phone_number, is_subscribed, preferred_language, display_name)
                 VALUES ($1, $2, $3, 'demo')
                 ON CONFLICT (phone_number) DO UPDATE
                     SET is_subscribed = EXCLUDED.is_subscribed,
                         preferred_language = EXCLUDED.preferred_language
                 RETURNING id)
             INSERT INTO user_prompts (user_id, system_prompt, config_metadata)
             SELECT id, $4, jsonb_build_object('greeting_message', $5::text) FROM t
             ON CONFLICT (user_id) DO UPDATE
                 SET system_prompt = EXCLUDED.system_prompt, config_metadata = EXCLUDED.config_metadata",
        )
        .bind::<Text, _>(*number)
        .bind::<diesel::sql_types::Bool, _>(*subscribed)
        .bind::<Text, _>(*language)
        .bind::<Text, _>(*prompt)
        .bind::<Text, _>(*greeting)
        .execute(&mut conn)
        .map_err(|e| e.to_string())?;
    }
    diesel::sql_query(
        "UPDATE profiles SET allowed_languages = '{fr,rw,en}' WHERE phone_number = $1",
    )
    .bind::<Text, _>(WHATSAPP_TENANT)
    .execute(&mut conn)
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// One WhatsApp call through OpenAI SIP, driven by the stand-ins; returns its call id.
async fn whatsapp_call(address: &str, standins: &StandIns) -> Result<String, String> {
    let driver = SipDriver::new(format!("{address}/openai/webhook"), DEMO_WEBHOOK_SECRET);
    let call_id = format!("rtc_{}", uuid::Uuid::new_v4().simple());
    let (_, status) = driver
        .incoming_whatsapp(&call_id, WHATSAPP_CALLER, WHATSAPP_TENANT)
        .await;
    if status != 200 {
        return Err(format!("the webhook answered {status}"));
    }
    let realtime = &standins.realtime;
    let opened = callvisor_standins::wait_until(Duration::from_secs(10), || {
        realtime.sessions().iter().any(|s| {
            s.call_id.as_deref() == Some(call_id.as_str()) && !s.session_updates.is_empty()
        })
    })
    .await;
    let index = realtime
        .sessions()
        .iter()
        .find(|s| s.call_id.as_deref() == Some(call_id.as_str()))
        .map(|s| s.index)
        .filter(|_| opened)
        .ok_or("no sideband session was opened")?;
    let accept = standins.openai.call_controls(&call_id);
    out!(
        "whatsapp call {call_id} to {WHATSAPP_TENANT}: OpenAI got {:?}, sideband session {index}",
        accept.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>()
    );
    // The greeting plays; then the caller asks, the agent answers.
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let mut frame = String::new();
    callvisor_wire::protocol::realtime::write_input_transcription_completed(
        &mut frame,
        "item_wa_1",
        "Muraho, ndashaka gufata umwanya ejo saa tatu.",
    );
    realtime
        .command(SessionTarget::Index(index), SessionCommand::Raw(frame))
        .await;
    realtime
        .command(
            SessionTarget::Index(index),
            SessionCommand::AgentResponse {
                transcript: "Yego, ejo saa tatu. Murakoze!".into(),
            },
        )
        .await;
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    driver.ended(&call_id).await;
    Ok(call_id)
}

async fn demo(exit_after_calls: bool) -> Result<(), String> {
    callvisor_actors::tls::install_provider();
    let standins = StandIns::start().await.map_err(|e| e.to_string())?;
    let settings = demo_settings(&standins)?;
    let _ = callvisor::logging::init(settings.logging.dir.as_deref());
    let url = settings
        .database
        .url
        .as_ref()
        .map(|u| u.expose().to_owned())
        .ok_or("DATABASE_URL is not set (scripts/run starts a private PostgreSQL)")?;
    let public_url = settings.server.public_url.clone().unwrap_or_default();
    let auth_token = settings
        .twilio
        .auth_token
        .as_ref()
        .map(|t| t.expose().to_owned())
        .unwrap_or_default();

    let app = Application::build(settings)
        .await
        .map_err(|e| e.to_string())?;
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_handle();
    let server = actix_web::rt::spawn(app.run_until_stopped());
    {
        let url = url.clone();
        actix_web::rt::task::spawn_blocking(move || seed(&url))
            .await
            .map_err(|e| e.to_string())??;
    }
    out!("\ncallvisor-dev demo: serving on {address} (readiness: {address}/readyz)\n");

    let calls = TENANTS.iter().enumerate().map(|(i, (number, ..))| {
        let mut caller = CallerConfig::new(format!("{address}/twilio/voice"), auth_token.clone());
        caller.sign_url = Some(format!("{}/twilio/voice", public_url.trim_end_matches('/')));
        caller.to = (*number).to_owned();
        // The TwiML names PUBLIC_URL's host; connect to where we actually listen (PORT=0 works).
        caller.stream_url_override = Some(address.replacen("http://", "ws://", 1));
        caller.from = format!("+1555020{:04}", i + 1);
        caller.speak_for = Duration::from_millis(2300);
        caller.end = CallEnd::Stop {
            after_audio: Duration::from_millis(700),
        };
        place_call(caller)
    });
    let (reports, whatsapp) = futures_util::future::join(
        futures_util::future::join_all(calls),
        whatsapp_call(&address, &standins),
    )
    .await;
    let mut answered = Vec::new();
    match whatsapp {
        Ok(call_id) => answered.push(call_id),
        Err(e) => out!("whatsapp call failed: {e}"),
    }
    for (report, (number, ..)) in reports.into_iter().zip(TENANTS) {
        let report = report.map_err(|e| e.to_string())?;
        out!(
            "call {} to {number}: TwiML {:?}, stream {}, {} caller frames sent, {} ms of agent audio heard",
            report.call_sid,
            report.verbs,
            if report.stream_opened { "opened" } else { "not opened" },
            report.frames_sent,
            report.audio_played_ms
        );
        if report.stream_opened {
            answered.push(report.call_sid);
        }
    }
    let rows = {
        let url = url.clone();
        actix_web::rt::task::spawn_blocking(move || read_back(&url, &answered))
            .await
            .map_err(|e| e.to_string())??
    };
    for row in rows {
        print_call(&row);
    }
    if exit_after_calls {
        shutdown.shutdown().await;
    } else {
        out!("Serving until Ctrl-C.");
    }
    let served = server.await.map_err(|e| e.to_string())?;
    standins.stop().await;
    served.map_err(|e| e.to_string())
}

/// Waits (bounded) for the calls' logs and summaries, then reads them.
fn read_back(url: &str, call_sids: &[String]) -> Result<Vec<CallSummaryRow>, String> {
    let mut conn = PgConnection::establish(url).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows: Vec<CallSummaryRow> = diesel::sql_query(
            "SELECT call_sid, recipient_number, channel, status, duration_seconds, transcript, summary
             FROM call_logs WHERE call_sid = ANY($1) ORDER BY recipient_number",
        )
        .bind::<diesel::sql_types::Array<Text>, _>(call_sids)
        .load(&mut conn)
        .map_err(|e| e.to_string())?;
        let complete = rows.len() == call_sids.len() && rows.iter().all(|r| r.summary.is_some());
        if complete || Instant::now() > deadline {
            return Ok(rows);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn print_call(row: &CallSummaryRow) {
    out!(
        "\n── {} to {} ({}) ── status {}, {} s",
        row.call_sid,
        row.recipient_number.as_deref().unwrap_or("-"),
        row.channel,
        row.status,
        row.duration_seconds.unwrap_or_default()
    );
    for segment in row.transcript.as_array().into_iter().flatten() {
        let who = match segment["role"].as_str() {
            Some("user") => "caller",
            _ => "agent ",
        };
        out!("  {who}: {}", segment["text"].as_str().unwrap_or_default());
    }
    let summary = row.summary.as_deref().unwrap_or("(not written yet)");
    out!("  summary: {}", summary.replace('\n', "\n           "));
}
