//! The simulated caller against a tiny in-test engine (an actix-web server that answers
//! TwiML and echoes media), so the caller is tested without callvisor.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, ActorContext, StreamHandler};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actix_web_actors::ws;
use callvisor_wire::protocol::twilio::{
    parse_inbound, write_clear, write_mark, write_media, TwilioInbound,
};

use super::audio::{agent_tone_frame, FRAME_BYTES};
use super::form::{form_value, parse_form};
use super::server::{lock, RunningServer};
use super::{
    place_call, CallEnd, CallReport, CallerConfig, CallerError, CallerSession, CloseReason,
    SignatureMode,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

const TOKEN: &str = "test-auth-token";
const PUBLIC_VOICE_URL: &str = "https://engine.example.com/twilio/voice";

/// `To` numbers that select the fake engine's answer.
const TO_STREAM: &str = "+15550000000";
const TO_HANGUP: &str = "+15550000001";
const TO_BAD_TWIML: &str = "+15550000002";
const TO_FORBIDDEN_STREAM: &str = "+15550000003";

/// What the engine saw in a `start`: call, parameters, encoding, sample rate.
type StartSeen = (String, Vec<(String, String)>, Option<String>, Option<u64>);

#[derive(Debug, Default)]
struct EngineLog {
    connected: u32,
    starts: Vec<StartSeen>,
    chunks: Vec<u64>,
    timestamps: Vec<u64>,
    marks_back: Vec<String>,
    dtmf: Vec<String>,
    stops: u32,
    ended: u32,
}

struct FakeEngine {
    log: Arc<Mutex<EngineLog>>,
    stream_sid: String,
    mode: String,
    media_in: u32,
}

impl FakeEngine {
    fn send(ctx: &mut ws::WebsocketContext<Self>, write: impl FnOnce(&mut String)) {
        let mut text = String::new();
        write(&mut text);
        ctx.text(text);
    }
}

impl Actor for FakeEngine {
    type Context = ws::WebsocketContext<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        lock(&self.log).ended += 1;
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for FakeEngine {
    fn handle(&mut self, message: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let text = match message {
            Ok(ws::Message::Text(text)) => text,
            Ok(ws::Message::Ping(_) | ws::Message::Pong(_)) => return,
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
                return;
            }
            _ => {
                ctx.stop();
                return;
            }
        };
        let inbound = parse_inbound(&text).unwrap();
        let mut log = lock(&self.log);
        match inbound {
            TwilioInbound::Connected => log.connected += 1,
            TwilioInbound::Start(start) => {
                self.stream_sid = start.stream_sid.to_owned();
                self.mode = start
                    .custom_parameters
                    .get("mode")
                    .unwrap_or("echo")
                    .to_owned();
                log.starts.push((
                    start.call_sid.to_owned(),
                    start.custom_parameters.to_owned_pairs(),
                    start.encoding.as_deref().map(str::to_owned),
                    start.sample_rate,
                ));
            }
            TwilioInbound::Media {
                chunk,
                timestamp,
                payload,
                ..
            } => {
                self.media_in += 1;
                log.chunks.push(chunk);
                log.timestamps.push(timestamp);
                drop(log);
                let sid = self.stream_sid.clone();
                match self.mode.as_str() {
                    "echo" => {
                        Self::send(ctx, |b| write_media(b, &sid, payload));
                        if self.media_in.is_multiple_of(10) {
                            let name = format!("m{}", self.media_in);
                            Self::send(ctx, |b| write_mark(b, &sid, &name));
                        }
                    }
                    "burst" => {
                        if self.media_in == 1 {
                            // One second of agent audio, a mark after every 20 ms.
                            let tone = STANDARD.encode(agent_tone_frame());
                            for i in 0..50 {
                                Self::send(ctx, |b| write_media(b, &sid, &tone));
                                Self::send(ctx, |b| write_mark(b, &sid, &format!("agent{i}")));
                            }
                        } else if self.media_in == 10 {
                            Self::send(ctx, |b| write_clear(b, &sid));
                        }
                    }
                    "close" if self.media_in == 5 => {
                        ctx.close(Some(ws::CloseCode::Normal.into()));
                        ctx.stop();
                    }
                    _ => {}
                }
            }
            TwilioInbound::Mark { name } => log.marks_back.push(name.into_owned()),
            TwilioInbound::Dtmf { digit } => log.dtmf.push(digit.into_owned()),
            TwilioInbound::Stop => log.stops += 1,
            TwilioInbound::Unknown { .. } => {}
        }
    }
}

async fn voice(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let params = parse_form(&String::from_utf8_lossy(&body));
    let signature = req
        .headers()
        .get("X-Twilio-Signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !callvisor_wire::signing::twilio::verify(TOKEN, PUBLIC_VOICE_URL, &params, signature) {
        return HttpResponse::Forbidden().finish();
    }
    let mode = form_value(&params, "CallerCountry")
        .unwrap_or("echo")
        .to_owned();
    let twiml = match form_value(&params, "To") {
        Some(TO_STREAM) => format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Say>Connecting.</Say>
  <Connect><Stream url="wss://engine.example.com/twilio/media">
    <Parameter name="tenant" value="t1"/>
    <Parameter name="mode" value="{mode}"/>
  </Stream></Connect>
</Response>"#
        ),
        Some(TO_HANGUP) => "<Response><Say>Sorry, we are closed.</Say><Hangup/></Response>".to_owned(),
        Some(TO_BAD_TWIML) => "<Response><Say>oops</Response>".to_owned(),
        Some(TO_FORBIDDEN_STREAM) => {
            r#"<Response><Connect><Stream url="wss://engine.example.com/twilio/forbidden"/></Connect></Response>"#.to_owned()
        }
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok().content_type("text/xml").body(twiml)
}

async fn media(
    req: HttpRequest,
    stream: web::Payload,
    log: web::Data<Mutex<EngineLog>>,
) -> Result<HttpResponse, actix_web::Error> {
    let engine = FakeEngine {
        log: log.into_inner(),
        stream_sid: String::new(),
        mode: String::new(),
        media_in: 0,
    };
    ws::start(engine, &req, stream)
}

struct Engine {
    _server: RunningServer,
    base: String,
    log: Arc<Mutex<EngineLog>>,
}

fn start_engine() -> Engine {
    let (listener, addr) = super::server::bind(super::any_local_port()).unwrap();
    let log = Arc::new(Mutex::new(EngineLog::default()));
    let data = web::Data::from(Arc::clone(&log));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/twilio/voice", web::post().to(voice))
            .route("/twilio/media", web::get().to(media))
            .route(
                "/twilio/forbidden",
                web::get().to(|| async { HttpResponse::Forbidden().finish() }),
            )
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .unwrap()
    .run();
    Engine {
        _server: RunningServer::spawn(server, addr).unwrap(),
        base: format!("http://{addr}"),
        log,
    }
}

fn config(engine: &Engine, to: &str, mode: &str) -> CallerConfig {
    let mut config = CallerConfig::new(format!("{}/twilio/voice", engine.base), TOKEN);
    config.sign_url = Some(PUBLIC_VOICE_URL.to_owned());
    config.to = to.to_owned();
    config.stream_url_override = Some(engine.base.replacen("http", "ws", 1));
    config.extra_params = vec![("CallerCountry".to_owned(), mode.to_owned())];
    config.timeout = Duration::from_secs(10);
    config
}

#[actix_web::test]
async fn frames_go_out_tagged_in_real_time_and_every_echo_comes_back() {
    // Arrange
    let engine = start_engine();
    let mut config = config(&engine, TO_STREAM, "echo");
    config.speak_for = Duration::from_millis(600);
    config.end = CallEnd::Stop {
        after_audio: Duration::from_millis(300),
    };
    let started = tokio::time::Instant::now();

    // Act
    let report = place_call(config).await.unwrap();

    // Assert: TwiML and stream.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(880), "{elapsed:?}");
    assert_eq!(report.webhook_status, Some(200));
    assert_eq!(report.verbs, ["Say", "Connect"]);
    assert!(report.stream_opened);
    assert_eq!(
        report.stream_url.as_deref(),
        Some("wss://engine.example.com/twilio/media")
    );
    assert!(report
        .connected_url
        .as_deref()
        .unwrap()
        .starts_with("ws://127.0.0.1:"));
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    // Echoes: every frame, in order, with round trips.
    assert_eq!(
        (
            report.frames_planned,
            report.frames_sent,
            report.frames_echoed
        ),
        (30, 30, 30)
    );
    assert!(report.lost_frames.is_empty());
    assert_eq!(
        (
            report.out_of_order_echoes,
            report.duplicate_echoes,
            report.foreign_frames
        ),
        (0, 0, 0)
    );
    assert_eq!(report.rtt.unwrap().count, 30);
    assert!(report.rtt.unwrap().max_us < 500_000);
    assert_eq!(report.media_received, 30);
    // Marks come back after their audio played.
    let acked: Vec<&str> = report.marks_acked.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(acked, ["m10", "m20", "m30"]);
    for (mark, ack) in report.marks_received.iter().zip(&report.marks_acked) {
        assert!(ack.at_us >= mark.received_at_us && !ack.by_clear);
    }
    assert_eq!(report.audio_played_ms, 600);
    assert!(report.stop_sent);
    assert_eq!(report.close, Some(CloseReason::StopSent));
    // What the engine saw.
    let log = lock(&engine.log);
    assert_eq!(log.connected, 1);
    let (call_sid, params, encoding, rate) = &log.starts[0];
    assert_eq!(call_sid, &report.call_sid);
    assert!(params.contains(&("tenant".to_owned(), "t1".to_owned())));
    assert_eq!(
        (encoding.as_deref(), *rate),
        (Some("audio/x-mulaw"), Some(8000))
    );
    assert_eq!(log.chunks, (1..=30).collect::<Vec<u64>>());
    assert_eq!(
        log.timestamps,
        (0..30).map(|k| k * 20).collect::<Vec<u64>>()
    );
    assert_eq!(log.marks_back, ["m10", "m20", "m30"]);
    assert_eq!(log.stops, 1);
}

#[actix_web::test]
async fn bad_signatures_are_refused_by_the_engine() {
    let engine = start_engine();
    for mode in [SignatureMode::Wrong, SignatureMode::Missing] {
        let mut config = config(&engine, TO_STREAM, "echo");
        config.signature = mode;
        let report = place_call(config).await.unwrap();
        assert_eq!(report.webhook_status, Some(403), "{mode:?}");
        assert_eq!(
            report.close,
            Some(CloseReason::WebhookRejected { status: 403 })
        );
        assert!(!report.stream_opened);
    }
    // Signed for the URL actually connected to instead of the public one.
    let mut config = config(&engine, TO_STREAM, "echo");
    config.sign_url = None;
    assert_eq!(place_call(config).await.unwrap().webhook_status, Some(403));
    assert!(lock(&engine.log).starts.is_empty());
}

#[actix_web::test]
async fn twiml_without_a_stream_or_invalid_twiml_ends_the_call() {
    let engine = start_engine();
    let report = place_call(config(&engine, TO_HANGUP, "echo"))
        .await
        .unwrap();
    assert_eq!(report.verbs, ["Say", "Hangup"]);
    assert_eq!(report.close, Some(CloseReason::NoStream));
    let report = place_call(config(&engine, TO_BAD_TWIML, "echo"))
        .await
        .unwrap();
    assert!(matches!(
        report.close,
        Some(CloseReason::TwimlInvalid { .. })
    ));
    assert!(report.twiml_error.is_some());
    let report = place_call(config(&engine, TO_FORBIDDEN_STREAM, "echo"))
        .await
        .unwrap();
    assert!(
        matches!(
            report.close,
            Some(CloseReason::ConnectFailed {
                status: Some(403),
                ..
            })
        ),
        "{:?}",
        report.close
    );
    assert!(!report.stream_opened);
}

#[actix_web::test]
async fn clear_discards_queued_audio_and_returns_pending_marks_at_once() {
    // Arrange: the engine sends 1 s of audio with 50 marks at once, then clears at the
    // caller's 10th frame (~180 ms).
    let engine = start_engine();
    let mut config = config(&engine, TO_STREAM, "burst");
    config.speak_for = Duration::from_millis(400);
    config.end = CallEnd::Stop {
        after_audio: Duration::from_millis(100),
    };

    // Act
    let report = place_call(config).await.unwrap();

    // Assert
    assert_eq!(report.clears.len(), 1, "{report:#?}");
    let clear = &report.clears[0];
    assert!((600..=900).contains(&clear.discarded_ms), "{clear:?}");
    let by_clear = report.marks_acked.iter().filter(|m| m.by_clear).count();
    assert_eq!(by_clear, clear.marks_released);
    assert_eq!(report.marks_acked.len(), 50);
    assert!(report
        .marks_acked
        .iter()
        .filter(|m| m.by_clear)
        .all(|m| m.at_us >= clear.at_us));
    let played = report.marks_acked.iter().filter(|m| !m.by_clear).count() as u64;
    assert!(
        (played * 20).abs_diff(1000 - clear.discarded_ms) <= 40,
        "{played} {clear:?}"
    );
    assert_eq!(report.audio_discarded_ms, clear.discarded_ms);
    assert_eq!(report.frames_echoed, 0);
    assert!(report.lost_frames.is_empty());
    assert!(wait_for_marks(&engine, 50).await);
    let names: Vec<String> = (0..50).map(|i| format!("agent{i}")).collect();
    assert_eq!(lock(&engine.log).marks_back, names);
}

async fn wait_for_marks(engine: &Engine, n: usize) -> bool {
    super::wait_until(Duration::from_secs(5), || {
        lock(&engine.log).marks_back.len() >= n
    })
    .await
}

#[actix_web::test]
async fn a_manual_call_can_send_dtmf_and_hang_up_when_told() {
    let engine = start_engine();
    let mut config = config(&engine, TO_STREAM, "echo");
    config.speak_for = Duration::from_millis(200);
    config.end = CallEnd::Manual;
    let session = CallerSession::start(config).await.unwrap();
    assert!(session.call_sid().starts_with("CA"));

    assert!(
        session
            .wait_until(Duration::from_secs(5), |r| r.frames_echoed == 10)
            .await
    );
    assert!(!session.is_finished());
    assert!(session.send_dtmf("5"));
    assert!(session.hang_up());
    let report: CallReport = session.wait().await;

    assert_eq!(report.close, Some(CloseReason::StopSent));
    assert_eq!(report.dtmf_sent, ["5"]);
    assert!(super::wait_until(Duration::from_secs(5), || lock(&engine.log).ended == 1).await);
    let log = lock(&engine.log);
    assert_eq!(
        (log.stops, log.dtmf.as_slice()),
        (1, ["5".to_owned()].as_slice())
    );
}

#[actix_web::test]
async fn abrupt_ends_and_server_closes_are_told_apart() {
    let engine = start_engine();
    let mut abrupt = config(&engine, TO_STREAM, "echo");
    abrupt.speak_for = Duration::from_millis(100);
    abrupt.end = CallEnd::Abrupt {
        after_audio: Duration::from_millis(50),
    };
    let report = place_call(abrupt).await.unwrap();
    assert_eq!(report.close, Some(CloseReason::AbruptClose));
    assert!(!report.stop_sent);
    assert!(super::wait_until(Duration::from_secs(5), || lock(&engine.log).ended == 1).await);
    assert_eq!(lock(&engine.log).stops, 0);

    let mut closing = config(&engine, TO_STREAM, "close");
    closing.speak_for = Duration::from_secs(2);
    let report = place_call(closing).await.unwrap();
    assert_eq!(
        report.close,
        Some(CloseReason::ServerClosed {
            code: Some(1000),
            description: None
        })
    );
    assert!(report.frames_sent >= 5 && report.frames_sent < 100);

    let mut timed_out = config(&engine, TO_STREAM, "silent");
    timed_out.end = CallEnd::Manual;
    timed_out.timeout = Duration::from_millis(300);
    let session = CallerSession::start(timed_out).await.unwrap();
    assert_eq!(session.wait().await.close, Some(CloseReason::Timeout));
}

#[actix_web::test]
async fn an_unreachable_webhook_is_an_error() {
    let (listener, addr) = super::server::bind(super::any_local_port()).unwrap();
    drop(listener);
    let config = CallerConfig::new(format!("http://{addr}/twilio/voice"), TOKEN);
    assert!(matches!(
        place_call(config).await,
        Err(CallerError::Webhook(_))
    ));
    let empty = CallerConfig::new("", TOKEN);
    assert!(matches!(
        place_call(empty).await,
        Err(CallerError::Config(_))
    ));
    assert_eq!(FRAME_BYTES, 160);
}
