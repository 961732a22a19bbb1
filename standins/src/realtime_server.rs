//! OpenAI Realtime GA WebSocket stand-in: `GET /v1/realtime?model=…` (or `?call_id=…` for a
//! SIP sideband session) upgraded to a WebSocket.
//!
//! One actor per session moves frames; what a session answers and records lives in
//! [`super::realtime_script`]. Shared state is behind `Arc<Mutex<…>>`: sessions run on the
//! server's worker threads while the test reads records and sends commands from its own
//! thread, through each session's `Addr` (commands are `Send` messages).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, ActorContext, Addr, AsyncContext, Handler, SpawnHandle, StreamHandler};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actix_web_actors::ws;
use callvisor_wire::protocol::realtime::MAX_REALTIME_CLIENT_FRAME_BYTES;
use serde_json::json;

use super::realtime_script::Conversation;
pub use super::realtime_script::{
    ItemRecord, RealtimeMode, RecordedSessionUpdate, ResponseKind, ResponseRecord, ScriptConfig,
    SessionCommand, SessionRecord, ToolCallRecord, TruncateRecord,
};
use super::server::{
    any_local_port, bind, lock, new_sid, wait_until, RunningServer, SHUTDOWN_TIMEOUT_SECS,
};

/// WebSocket frame limit: a whole 15 MiB `input_audio_buffer.append` plus its JSON.
const WS_FRAME_LIMIT: usize = MAX_REALTIME_CLIENT_FRAME_BYTES + 64 * 1024;

/// Model reported for sideband sessions opened with `call_id` only.
const SIDEBAND_MODEL: &str = "gpt-realtime";

/// How the Realtime stand-in behaves.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// Where to listen; `127.0.0.1:0` by default.
    pub bind: SocketAddr,
    /// Worker threads (default 2; benchmarks with many calls may want more).
    pub workers: usize,
    /// Mode of new sessions (default [`RealtimeMode::Scripted`]).
    pub mode: RealtimeMode,
    /// The conversation script.
    pub script: ScriptConfig,
    /// Appended payloads kept per session for order checks (default 20 000 = 400 s of
    /// 20 ms frames, about 4 MB); counts are always complete.
    pub max_recorded_payloads: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        RealtimeConfig {
            bind: any_local_port(),
            workers: 2,
            mode: RealtimeMode::Scripted,
            script: ScriptConfig::default(),
            max_recorded_payloads: 20_000,
        }
    }
}

/// Which sessions a command goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionTarget {
    /// Every session still open.
    AllLive,
    /// The session with this index (0 = the first accepted), if still open.
    Index(usize),
}

#[derive(Debug)]
struct SessionEntry {
    record: Arc<Mutex<SessionRecord>>,
    addr: Option<Addr<RealtimeSession>>,
}

#[derive(Debug)]
struct Shared {
    config: Mutex<RealtimeConfig>,
    sessions: Mutex<Vec<SessionEntry>>,
    opened: AtomicU64,
    rejected: AtomicU64,
    refusing: AtomicBool,
}

/// A running Realtime stand-in; stops when dropped (its sessions end with it).
#[derive(Debug)]
pub struct RealtimeServer {
    server: RunningServer,
    shared: Arc<Shared>,
}

impl RealtimeServer {
    /// Starts the stand-in on the current actix System.
    ///
    /// # Errors
    /// Binding failed, or there is no actix System.
    pub fn start(config: RealtimeConfig) -> io::Result<RealtimeServer> {
        let (listener, addr) = bind(config.bind)?;
        let workers = config.workers.max(1);
        let shared = Arc::new(Shared {
            config: Mutex::new(config),
            sessions: Mutex::new(Vec::new()),
            opened: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            refusing: AtomicBool::new(false),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v1/realtime", web::get().to(connect))
        })
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .listen(listener)?
        .run();
        Ok(RealtimeServer {
            server: RunningServer::spawn(server, addr)?,
            shared,
        })
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `ws://127.0.0.1:P/v1/realtime`: the value for `OPENAI_REALTIME_URL`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("ws://{}/v1/realtime", self.addr())
    }

    /// WebSocket sessions ever accepted (refused or unauthorised upgrades do not count).
    #[must_use]
    pub fn sessions_opened(&self) -> u64 {
        self.shared.opened.load(Ordering::SeqCst)
    }

    /// Upgrades answered with an error (401, 400, 503).
    #[must_use]
    pub fn connections_rejected(&self) -> u64 {
        self.shared.rejected.load(Ordering::SeqCst)
    }

    /// Snapshots of every session's record, in acceptance order.
    #[must_use]
    pub fn sessions(&self) -> Vec<SessionRecord> {
        lock(&self.shared.sessions)
            .iter()
            .map(|entry| lock(&entry.record).clone())
            .collect()
    }

    /// A snapshot of session `index`'s record.
    #[must_use]
    pub fn session(&self, index: usize) -> Option<SessionRecord> {
        lock(&self.shared.sessions)
            .get(index)
            .map(|entry| lock(&entry.record).clone())
    }

    /// Reads session `index`'s record in place, without copying it (payload lists can be large).
    pub fn with_session<R>(
        &self,
        index: usize,
        read: impl FnOnce(&SessionRecord) -> R,
    ) -> Option<R> {
        let sessions = lock(&self.shared.sessions);
        sessions.get(index).map(|entry| read(&lock(&entry.record)))
    }

    /// Sessions whose socket is still open.
    #[must_use]
    pub fn live_sessions(&self) -> usize {
        lock(&self.shared.sessions)
            .iter()
            .filter(|entry| !lock(&entry.record).closed)
            .count()
    }

    /// Waits until at least `n` sessions were accepted; `false` on timeout.
    pub async fn wait_for_sessions(&self, n: u64, timeout: Duration) -> bool {
        wait_until(timeout, || self.sessions_opened() >= n).await
    }

    /// Sends `command` to the targeted open sessions and waits until each has handled it
    /// (its events are queued on the socket). Returns how many sessions got it.
    pub async fn command(&self, target: SessionTarget, command: SessionCommand) -> usize {
        let addrs: Vec<Addr<RealtimeSession>> = {
            let sessions = lock(&self.shared.sessions);
            sessions
                .iter()
                .enumerate()
                .filter(|(i, _)| match target {
                    SessionTarget::AllLive => true,
                    SessionTarget::Index(index) => *i == index,
                })
                .filter(|(_, entry)| !lock(&entry.record).closed)
                .filter_map(|(_, entry)| entry.addr.clone())
                .collect()
        };
        let mut delivered = 0;
        for addr in addrs {
            if addr.send(command.clone()).await.is_ok() {
                delivered += 1;
            }
        }
        delivered
    }

    /// Drops every open session's TCP connection (no close frame), as a network failure would.
    pub async fn drop_sessions(&self) -> usize {
        self.command(SessionTarget::AllLive, SessionCommand::Drop)
            .await
    }

    /// Closes every open session cleanly (close frame 1000).
    pub async fn close_sessions(&self) -> usize {
        self.command(SessionTarget::AllLive, SessionCommand::Close)
            .await
    }

    /// Sends `input_audio_buffer.speech_started` on every open session (barge-in).
    pub async fn emit_speech_started(&self) -> usize {
        self.command(SessionTarget::AllLive, SessionCommand::SpeechStarted)
            .await
    }

    /// Emits a tool call (`response.function_call_arguments.done` with a fresh `call_id`,
    /// inside its own response) on every open session.
    pub async fn emit_tool_call(&self, name: &str, arguments_json: &str) -> usize {
        let command = SessionCommand::ToolCall {
            name: name.to_owned(),
            arguments: arguments_json.to_owned(),
        };
        self.command(SessionTarget::AllLive, command).await
    }

    /// Makes the agent speak `transcript` now on every open session.
    pub async fn emit_agent_response(&self, transcript: &str) -> usize {
        let command = SessionCommand::AgentResponse {
            transcript: transcript.to_owned(),
        };
        self.command(SessionTarget::AllLive, command).await
    }

    /// Switches the mode of new sessions and of every open one.
    pub async fn set_mode(&self, mode: RealtimeMode) -> usize {
        lock(&self.shared.config).mode = mode;
        self.command(SessionTarget::AllLive, SessionCommand::SetMode(mode))
            .await
    }

    /// Replaces the script used by sessions opened from now on.
    pub fn set_script(&self, script: ScriptConfig) {
        lock(&self.shared.config).script = script;
    }

    /// While `true`, upgrades are answered with 503 (to test reconnect failure).
    pub fn refuse_connections(&self, refuse: bool) {
        self.shared.refusing.store(refuse, Ordering::SeqCst);
    }

    /// Stops the server and waits for it; open sessions are dropped.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// OpenAI-style error response.
fn http_error(status: actix_web::http::StatusCode, message: &str, code: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}}))
}

async fn connect(
    req: HttpRequest,
    stream: web::Payload,
    shared: web::Data<Shared>,
) -> Result<HttpResponse, actix_web::Error> {
    use actix_web::http::StatusCode;
    let reject = |response: HttpResponse| {
        shared.rejected.fetch_add(1, Ordering::SeqCst);
        Ok(response)
    };
    if shared.refusing.load(Ordering::SeqCst) {
        return reject(http_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable (stand-in refusing connections).",
            "service_unavailable",
        ));
    }
    let bearer_ok = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|key| !key.trim().is_empty());
    if !bearer_ok {
        return reject(http_error(
            StatusCode::UNAUTHORIZED,
            "Missing bearer authentication in header",
            "invalid_api_key",
        ));
    }
    let query = super::form::parse_form(req.query_string());
    let model = super::form::form_value(&query, "model")
        .filter(|m| !m.is_empty())
        .map(str::to_owned);
    let call_id = super::form::form_value(&query, "call_id")
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    if model.is_none() && call_id.is_none() {
        return reject(http_error(
            StatusCode::BAD_REQUEST,
            "Missing required parameter: 'model'.",
            "missing_required_parameter",
        ));
    }
    if let Err(err) = ws::handshake(&req) {
        shared.rejected.fetch_add(1, Ordering::SeqCst);
        return Err(err.into());
    }
    let (mode, script, max_payloads) = {
        let config = lock(&shared.config);
        (
            config.mode,
            config.script.clone(),
            config.max_recorded_payloads,
        )
    };
    let session_id = new_sid("sess_");
    let record = Arc::new(Mutex::new(SessionRecord {
        session_id: session_id.clone(),
        model: model.clone(),
        call_id,
        openai_beta_header: req
            .headers()
            .get("OpenAI-Beta")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        mode,
        ..SessionRecord::default()
    }));
    let index = {
        let mut sessions = lock(&shared.sessions);
        sessions.push(SessionEntry {
            record: Arc::clone(&record),
            addr: None,
        });
        sessions.len() - 1
    };
    lock(&record).index = index;
    let conversation = Conversation::new(
        mode,
        script,
        session_id,
        model.unwrap_or_else(|| SIDEBAND_MODEL.to_owned()),
        max_payloads,
    );
    let session = RealtimeSession {
        conversation,
        record,
        out: Vec::new(),
        pacer: None,
    };
    let (addr, response) = ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(WS_FRAME_LIMIT)
        .start_with_addr()?;
    if let Some(entry) = lock(&shared.sessions).get_mut(index) {
        entry.addr = Some(addr);
    }
    shared.opened.fetch_add(1, Ordering::SeqCst);
    Ok(response)
}

/// One Realtime WebSocket session.
struct RealtimeSession {
    conversation: Conversation,
    record: Arc<Mutex<SessionRecord>>,
    /// Events to send, reused between frames.
    out: Vec<String>,
    /// The interval sending paced deltas, while one runs.
    pacer: Option<SpawnHandle>,
}

impl RealtimeSession {
    fn flush(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        for event in self.out.drain(..) {
            ctx.text(event);
        }
        self.schedule_pacing(ctx);
    }

    /// Starts the pacing interval when a paced response is in progress.
    fn schedule_pacing(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(pace) = self.conversation.pace() else {
            return;
        };
        if self.pacer.is_some() || !self.conversation.speaking() {
            return;
        }
        self.pacer = Some(ctx.run_interval(pace, |act, ctx| {
            let more = {
                let mut record = lock(&act.record);
                act.conversation.tick(&mut record, &mut act.out)
            };
            for event in act.out.drain(..) {
                ctx.text(event);
            }
            if !more {
                if let Some(handle) = act.pacer.take() {
                    ctx.cancel_future(handle);
                }
            }
        }));
    }

    fn end(&mut self, reason: &str) {
        let mut record = lock(&self.record);
        if record.close_reason.is_none() {
            record.close_reason = Some(reason.to_owned());
        }
    }

    fn text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        {
            let mut record = lock(&self.record);
            self.conversation
                .client_text(text, &mut record, &mut self.out);
        }
        self.flush(ctx);
    }
}

impl Actor for RealtimeSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        {
            let mut record = lock(&self.record);
            self.conversation.open(&mut record, &mut self.out);
        }
        self.flush(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.end("server_stopped");
        lock(&self.record).closed = true;
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for RealtimeSession {
    fn handle(&mut self, message: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match message {
            Ok(ws::Message::Text(text)) => self.text(&text, ctx),
            Ok(ws::Message::Binary(_)) => {
                let mut record = lock(&self.record);
                record.protocol_errors.push("binary frame".to_owned());
            }
            Ok(ws::Message::Continuation(_)) => {
                // The engine's client (awc) never fragments; a fragmented event is recorded
                // as a protocol error rather than reassembled.
                let mut record = lock(&self.record);
                record.protocol_errors.push("fragmented frame".to_owned());
            }
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(_) | ws::Message::Nop) => {}
            Ok(ws::Message::Close(reason)) => {
                self.end("client_close");
                ctx.close(reason);
                ctx.stop();
            }
            Err(err) => {
                lock(&self.record)
                    .protocol_errors
                    .push(format!("websocket: {err}"));
                self.end("client_gone");
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        self.end("client_gone");
        ctx.stop();
    }
}

impl Handler<SessionCommand> for RealtimeSession {
    type Result = ();

    fn handle(&mut self, command: SessionCommand, ctx: &mut Self::Context) {
        match command {
            SessionCommand::Drop => {
                // Stopping without a close frame ends the response stream; actix-http then
                // shuts the TCP connection, which the client sees as a lost connection.
                self.end("dropped_by_standin");
                ctx.stop();
            }
            SessionCommand::Close => {
                self.end("closed_by_standin");
                ctx.close(Some(ws::CloseCode::Normal.into()));
                ctx.stop();
            }
            other => {
                {
                    let mut record = lock(&self.record);
                    self.conversation.command(other, &mut record, &mut self.out);
                }
                self.flush(ctx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use awc::error::WsProtocolError;
    use awc::ws::{Frame, Message};
    use callvisor_wire::protocol::realtime::{
        session_update_json, write_greeting, write_input_audio_append, SessionConfig,
    };
    use futures_util::{Sink, SinkExt as _, Stream, StreamExt as _};
    use serde_json::Value;

    use super::*;
    use crate::audio::{read_tag_base64, tagged_frame_base64};

    const WAIT: Duration = Duration::from_secs(5);

    trait Ws:
        Stream<Item = Result<Frame, WsProtocolError>>
        + Sink<Message, Error = WsProtocolError>
        + Unpin
    {
    }
    impl<T> Ws for T where
        T: Stream<Item = Result<Frame, WsProtocolError>>
            + Sink<Message, Error = WsProtocolError>
            + Unpin
    {
    }

    async fn open(url: &str) -> Result<impl Ws, u16> {
        let client = awc::Client::builder()
            .max_http_version(awc::http::Version::HTTP_11)
            .finish();
        match client
            .ws(url)
            .max_frame_size(8 * 1024 * 1024)
            .set_header("Authorization", "Bearer sk-test")
            .connect()
            .await
        {
            Ok((_, framed)) => Ok(framed),
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => Err(status.as_u16()),
            Err(other) => panic!("connect failed: {other}"),
        }
    }

    async fn send(ws: &mut impl Ws, text: String) {
        ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// The next text event, or `None` at the end of the stream / after `WAIT`.
    async fn next_event(ws: &mut impl Ws) -> Option<Value> {
        loop {
            match tokio::time::timeout(WAIT, ws.next()).await {
                Ok(Some(Ok(Frame::Text(bytes)))) => {
                    return Some(serde_json::from_slice(&bytes).unwrap())
                }
                Ok(Some(Ok(Frame::Ping(_) | Frame::Pong(_)))) => {}
                _ => return None,
            }
        }
    }

    /// Events up to and including the first of type `kind`.
    async fn events_until(ws: &mut impl Ws, kind: &str) -> Vec<Value> {
        let mut events = Vec::new();
        while let Some(event) = next_event(ws).await {
            let done = event["type"] == kind;
            events.push(event);
            if done {
                return events;
            }
        }
        panic!("no {kind} among {events:?}");
    }

    fn session_update() -> String {
        session_update_json(&SessionConfig {
            instructions: "You are the receptionist.".to_owned(),
            ..SessionConfig::default()
        })
    }

    #[actix_web::test]
    async fn upgrades_need_a_bearer_a_model_and_an_open_door() {
        // Arrange
        let server = RealtimeServer::start(RealtimeConfig::default()).unwrap();
        let client = awc::Client::default();

        // Act + Assert: no bearer → 401.
        let err = client
            .ws(format!("{}?model=gpt-realtime", server.url()))
            .connect()
            .await
            .err();
        assert!(
            matches!(err, Some(awc::error::WsClientError::InvalidResponseStatus(s)) if s == 401)
        );
        // No model and no call_id → 400.
        assert_eq!(open(&server.url()).await.err(), Some(400));
        // Refusing → 503, then accepted again.
        server.refuse_connections(true);
        assert_eq!(
            open(&format!("{}?model=m", server.url())).await.err(),
            Some(503)
        );
        assert_eq!(server.sessions_opened(), 0);
        assert_eq!(server.connections_rejected(), 3);
        server.refuse_connections(false);
        let mut ws = open(&format!("{}?call_id=rtc_123", server.url()))
            .await
            .ok()
            .unwrap();
        let created = next_event(&mut ws).await.unwrap();
        assert_eq!(created["type"], "session.created");
        assert_eq!(created["session"]["model"], "gpt-realtime");
        assert_eq!(server.sessions_opened(), 1);
        let record = server.session(0).unwrap();
        assert_eq!(
            (record.call_id.as_deref(), record.model.as_deref()),
            (Some("rtc_123"), None)
        );
        assert_eq!(record.openai_beta_header, None);
        server.stop().await;
    }

    #[actix_web::test]
    async fn session_update_is_recorded_and_answered() {
        let server = RealtimeServer::start(RealtimeConfig::default()).unwrap();
        let mut ws = open(&format!("{}?model=gpt-realtime-mini", server.url()))
            .await
            .ok()
            .unwrap();
        assert_eq!(
            next_event(&mut ws).await.unwrap()["type"],
            "session.created"
        );

        send(&mut ws, session_update()).await;

        let updated = next_event(&mut ws).await.unwrap();
        assert_eq!(updated["type"], "session.updated");
        let record = server.session(0).unwrap();
        assert_eq!(record.model.as_deref(), Some("gpt-realtime-mini"));
        let session = record.applied_session().unwrap();
        assert_eq!(
            session.instructions.as_deref(),
            Some("You are the receptionist.")
        );
        assert_eq!(session.input_format.as_deref(), Some("audio/pcmu"));
        assert_eq!(session.output_format.as_deref(), Some("audio/pcmu"));
        assert_eq!(session.voice.as_deref(), Some("marin"));
        assert_eq!(
            session.transcription_model.as_deref(),
            Some("gpt-4o-mini-transcribe")
        );
        assert_eq!(session.tools.len(), 3);
    }

    #[actix_web::test]
    async fn echo_mode_returns_the_same_payloads_in_order() {
        // Arrange
        let server = RealtimeServer::start(RealtimeConfig {
            mode: RealtimeMode::Echo,
            ..RealtimeConfig::default()
        })
        .unwrap();
        let mut ws = open(&format!("{}?model=gpt-realtime", server.url()))
            .await
            .ok()
            .unwrap();
        next_event(&mut ws).await.unwrap();
        send(&mut ws, session_update()).await;
        next_event(&mut ws).await.unwrap();

        // Act: 300 appends sent back to back.
        let payloads: Vec<String> = (0..300).map(|i| tagged_frame_base64(5, i)).collect();
        for payload in &payloads {
            let mut text = String::new();
            write_input_audio_append(&mut text, payload);
            send(&mut ws, text).await;
        }
        let mut deltas = Vec::new();
        while deltas.len() < payloads.len() {
            let event = next_event(&mut ws).await.unwrap();
            assert_eq!(event["type"], "response.output_audio.delta", "{event}");
            assert_eq!(
                (event["response_id"].as_str(), event["item_id"].as_str()),
                (Some("resp_echo"), Some("item_echo"))
            );
            deltas.push(event["delta"].as_str().unwrap().to_owned());
        }

        // Assert
        assert_eq!(deltas, payloads);
        let indices: Vec<u32> = deltas
            .iter()
            .filter_map(|d| read_tag_base64(d))
            .map(|t| t.index)
            .collect();
        assert_eq!(indices, (0..300).collect::<Vec<_>>());
        let (appends, bytes, kept) = server
            .with_session(0, |r| {
                (r.appends, r.audio_bytes, r.appended_payloads == payloads)
            })
            .unwrap();
        assert_eq!((appends, bytes, kept), (300, 48_000, true));
    }

    #[actix_web::test]
    async fn scripted_mode_greets_and_answers_caller_turns() {
        let server = RealtimeServer::start(RealtimeConfig {
            script: ScriptConfig {
                caller_turn_ms: 500,
                response_audio_ms: 200,
                ..ScriptConfig::default()
            },
            ..RealtimeConfig::default()
        })
        .unwrap();
        let mut ws = open(&format!("{}?model=gpt-realtime", server.url()))
            .await
            .ok()
            .unwrap();
        next_event(&mut ws).await.unwrap();
        send(&mut ws, session_update()).await;
        next_event(&mut ws).await.unwrap();

        // The greeting.
        let mut greeting = String::new();
        write_greeting(&mut greeting, "Welcome to Luigi's.");
        send(&mut ws, greeting).await;
        let events = events_until(&mut ws, "response.done").await;
        assert_eq!(
            events
                .iter()
                .filter(|e| e["type"] == "response.output_audio.delta")
                .count(),
            10
        );
        let transcript = events
            .iter()
            .find(|e| e["type"] == "response.output_audio_transcript.done")
            .unwrap();
        assert_eq!(transcript["transcript"], "Welcome to Luigi's.");
        assert_eq!(transcript["response_id"], "resp_1");

        // Half a second of caller audio → caller turn 1 and agent reply 1.
        for i in 0..25 {
            let mut text = String::new();
            write_input_audio_append(&mut text, &tagged_frame_base64(1, i));
            send(&mut ws, text).await;
        }
        let events = events_until(&mut ws, "response.done").await;
        let caller = events
            .iter()
            .find(|e| e["type"] == "conversation.item.input_audio_transcription.completed")
            .unwrap();
        assert_eq!(caller["transcript"], "caller turn 1");
        let agent = events
            .iter()
            .find(|e| e["type"] == "response.output_audio_transcript.done")
            .unwrap();
        assert_eq!(
            (agent["transcript"].as_str(), agent["response_id"].as_str()),
            (Some("agent reply 1"), Some("resp_2"))
        );
        assert_eq!(events[0]["type"], "input_audio_buffer.speech_started");
        let record = server.session(0).unwrap();
        assert_eq!(record.caller_turns, 1);
        assert_eq!(record.responses.len(), 2);
        assert_eq!(
            record.response_instructions,
            [Some(
                "Greet the caller with exactly: Welcome to Luigi's.".to_owned()
            )]
        );
    }

    #[actix_web::test]
    async fn commands_reach_live_sessions() {
        let server = RealtimeServer::start(RealtimeConfig::default()).unwrap();
        let mut first = open(&format!("{}?model=m", server.url()))
            .await
            .ok()
            .unwrap();
        let mut second = open(&format!("{}?model=m", server.url()))
            .await
            .ok()
            .unwrap();
        next_event(&mut first).await.unwrap();
        next_event(&mut second).await.unwrap();

        assert_eq!(
            server
                .emit_tool_call("end_call", r#"{"reason":"bye"}"#)
                .await,
            2
        );
        for ws in [&mut first, &mut second] {
            let events = events_until(ws, "response.done").await;
            let call = events
                .iter()
                .find(|e| e["type"] == "response.function_call_arguments.done")
                .unwrap();
            assert_eq!(
                (call["name"].as_str(), call["arguments"].as_str()),
                (Some("end_call"), Some(r#"{"reason":"bye"}"#))
            );
            assert!(call["call_id"].as_str().unwrap().starts_with("call_"));
        }
        let target = SessionTarget::Index(1);
        assert_eq!(
            server.command(target, SessionCommand::SpeechStarted).await,
            1
        );
        assert_eq!(
            next_event(&mut second).await.unwrap()["type"],
            "input_audio_buffer.speech_started"
        );
        assert_eq!(
            server
                .command(
                    target,
                    SessionCommand::Raw(
                        r#"{"type":"rate_limits.updated","rate_limits":[]}"#.to_owned()
                    )
                )
                .await,
            1
        );
        assert_eq!(
            next_event(&mut second).await.unwrap()["type"],
            "rate_limits.updated"
        );
        assert_eq!(server.set_mode(RealtimeMode::Echo).await, 2);
        assert_eq!(server.session(0).unwrap().mode, RealtimeMode::Echo);
        assert_eq!(server.session(0).unwrap().tool_calls.len(), 1);

        // A clean close from the stand-in.
        assert_eq!(server.close_sessions().await, 2);
        assert!(matches!(
            tokio::time::timeout(WAIT, first.next()).await,
            Ok(Some(Ok(Frame::Close(_))))
        ));
        assert!(wait_until(WAIT, || server.live_sessions() == 0).await);
        assert_eq!(
            server.session(0).unwrap().close_reason.as_deref(),
            Some("closed_by_standin")
        );
    }

    #[actix_web::test]
    async fn drop_sessions_cuts_the_connection_without_a_close_frame() {
        // Arrange
        let server = RealtimeServer::start(RealtimeConfig::default()).unwrap();
        let mut ws = open(&format!("{}?model=m", server.url()))
            .await
            .ok()
            .unwrap();
        next_event(&mut ws).await.unwrap();

        // Act
        assert_eq!(server.drop_sessions().await, 1);

        // Assert: the stream ends (or errors) with no close frame.
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(None | Some(Err(_))) => {}
            other => panic!("expected the connection to be cut, got {other:?}"),
        }
        assert!(wait_until(WAIT, || server.live_sessions() == 0).await);
        let record = server.session(0).unwrap();
        assert!(record.closed);
        assert_eq!(record.close_reason.as_deref(), Some("dropped_by_standin"));
        assert_eq!(server.drop_sessions().await, 0);
        assert_eq!(server.sessions_opened(), 1);
    }

    #[actix_web::test]
    async fn a_client_that_goes_away_is_recorded() {
        let server = RealtimeServer::start(RealtimeConfig::default()).unwrap();
        let mut ws = open(&format!("{}?model=m", server.url()))
            .await
            .ok()
            .unwrap();
        next_event(&mut ws).await.unwrap();
        ws.send(Message::Close(None)).await.unwrap();
        assert!(wait_until(WAIT, || server.live_sessions() == 0).await);
        assert_eq!(
            server.session(0).unwrap().close_reason.as_deref(),
            Some("client_close")
        );
        let mut ws = open(&format!("{}?model=m", server.url()))
            .await
            .ok()
            .unwrap();
        next_event(&mut ws).await.unwrap();
        drop(ws);
        assert!(wait_until(WAIT, || server.live_sessions() == 0).await);
        assert_eq!(
            server.session(1).unwrap().close_reason.as_deref(),
            Some("client_gone")
        );
    }
}
