//! RealtimeActor: one OpenAI Realtime WebSocket (awc client), and nothing else.
//!
//! It opens the socket, configures the session (`session.update`, then the
//! greeting, or the conversation so far when it replaces a dropped
//! connection), forwards caller audio as `input_audio_buffer.append` once the
//! session is configured (the call holds audio until then, see
//! [`crate::call::audio_bounds`]; audio that arrives earlier anyway is dropped
//! and counted, never sent in the default format), and reports what the API
//! says to its call as typed [`RealtimeEvent`]s. Audio is base64 text both
//! ways, sliced out of the received frame and never decoded. The writer's
//! backlog is bounded (see [`writer`]): past `max_queued_bytes` caller audio
//! is dropped, one [`RealtimeEvent::AudioDropped`] per run of drops, while
//! control events (tool outputs, truncations) still go.
//!
//! Supervision: *transient*. When the socket fails to open or drops, it
//! reports [`RealtimeEvent::Closed`] once and stops; the CallActor decides
//! whether to start a new one (its restart budget). awc is per-thread, so the
//! actor lives on its call's worker thread.

pub mod preopen;
mod session;
pub mod writer;

use std::borrow::Cow;
use std::time::{Duration, Instant};

use actix::io::{SinkWrite, WriteHandler};
use actix::prelude::*;
use actix_codec::Framed;
use awc::error::WsProtocolError;
use awc::ws::{CloseCode, CloseReason, Codec, Frame, Message};
use awc::BoxedSocket;
use bytestring::ByteString;
use futures_util::stream::{SplitSink, StreamExt};

use crate::call::audio_bounds::DropBurst;
use crate::call::messages::{
    FromRealtime, GetUpstreamStats, RealtimeEvent, ToRealtime, UpstreamStats,
};
use crate::error_chain::Chain;
use crate::events;
use crate::ids::{CallSid, TenantId};
use crate::ports::{RealtimeEndpoint, Role};
use callvisor_wire::protocol::realtime::{
    self as rt, ServerEvent, SessionConfig, MAX_REALTIME_FRAME_BYTES,
};

pub use session::realtime_url;
use writer::{Backlog, CountingSink};

type WsSink = CountingSink<SplitSink<Framed<BoxedSocket, Codec>, Message>>;

/// How often the connection is pinged (a half-open TCP connection is silent forever).
const LIVENESS_INTERVAL: Duration = Duration::from_secs(10);
/// A server silent this long (not even a pong) is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(30);

/// Events a parked session holds at most (a long greeting is a few hundred).
const MAX_PARKED_EVENTS: usize = 4096;

/// How the connection starts: a new conversation, or one restored after a drop.
#[derive(Debug, Clone)]
pub enum Opening {
    /// First connection of the call: the agent greets the caller.
    Greet,
    /// A replacement: the conversation so far is given back as context.
    Restore(Vec<(Role, String)>),
}

/// One Realtime session of one call.
pub struct RealtimeActor {
    call_sid: CallSid,
    /// The call's tenant, for the log lines about this connection.
    tenant: TenantId,
    endpoint: RealtimeEndpoint,
    session: SessionConfig,
    opening: Opening,
    /// The call's actor; `None` while parked (pre-opened, not adopted yet).
    owner: Option<Recipient<FromRealtime>>,
    /// Events that arrived while parked, replayed on adoption (the greeting).
    parked_events: Vec<RealtimeEvent>,
    /// Close if not adopted within this time.
    park_timeout: Option<Duration>,
    generation: u32,
    connect_timeout: Duration,
    /// Bytes the writer may hold before caller audio is dropped.
    max_queued_bytes: usize,
    sink: Option<SinkWrite<Message, WsSink>>,
    /// What waits in `sink`.
    backlog: Backlog,
    /// `session.updated` arrived: appends may flow.
    ready: bool,
    /// Caller audio dropped (backlog over its bound, or not ready).
    drops: DropBurst,
    /// Appends written.
    appends: u64,
    /// Reused for every outgoing event's JSON.
    buf: String,
    /// Reused for every outgoing event's bytes (see [`callvisor_wire::protocol::frame_text`]).
    out: bytes::BytesMut,
    /// When the server was last heard from (any frame).
    last_frame: Instant,
    /// We closed it: no `Closed` report.
    closing: bool,
    reported: bool,
}

impl RealtimeActor {
    /// A connection for `call_sid`, reporting to `owner` with `generation`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        call_sid: CallSid,
        tenant: TenantId,
        endpoint: RealtimeEndpoint,
        session: SessionConfig,
        opening: Opening,
        owner: Recipient<FromRealtime>,
        generation: u32,
        connect_timeout: Duration,
        max_queued_bytes: usize,
    ) -> Self {
        let mut actor = Self::new_unowned(
            call_sid,
            tenant,
            endpoint,
            session,
            connect_timeout,
            max_queued_bytes,
        );
        actor.opening = opening;
        actor.owner = Some(owner);
        actor.generation = generation;
        actor
    }

    /// A session opened before its call has an actor (see [`preopen`]):
    /// it connects and is configured, holds what it hears until adopted
    /// through [`ToRealtime::Adopt`], or closes after `park_timeout`. The
    /// greeting (a paid response) starts only on adoption.
    pub fn parked(
        call_sid: CallSid,
        tenant: TenantId,
        endpoint: RealtimeEndpoint,
        session: SessionConfig,
        connect_timeout: Duration,
        max_queued_bytes: usize,
        park_timeout: Duration,
    ) -> Self {
        let mut actor = Self::new_unowned(
            call_sid,
            tenant,
            endpoint,
            session,
            connect_timeout,
            max_queued_bytes,
        );
        actor.park_timeout = Some(park_timeout);
        actor
    }

    fn new_unowned(
        call_sid: CallSid,
        tenant: TenantId,
        endpoint: RealtimeEndpoint,
        session: SessionConfig,
        connect_timeout: Duration,
        max_queued_bytes: usize,
    ) -> Self {
        Self {
            call_sid,
            tenant,
            endpoint,
            session,
            opening: Opening::Greet,
            owner: None,
            parked_events: Vec::new(),
            park_timeout: None,
            generation: 0,
            connect_timeout,
            max_queued_bytes,
            sink: None,
            backlog: Backlog::default(),
            ready: false,
            drops: DropBurst::default(),
            appends: 0,
            buf: String::with_capacity(512),
            out: bytes::BytesMut::with_capacity(1024),
            last_frame: Instant::now(),
            closing: false,
            reported: false,
        }
    }

    fn report(&mut self, event: RealtimeEvent) {
        match &self.owner {
            Some(owner) => owner.do_send(FromRealtime {
                generation: self.generation,
                event,
            }),
            None if self.parked_events.len() < MAX_PARKED_EVENTS => self.parked_events.push(event),
            None => {}
        }
    }

    /// The connection failed or dropped: report it once and stop.
    fn fail(&mut self, reason: String, ctx: &mut Context<Self>) {
        self.report_closed(reason, ctx);
        ctx.stop();
    }

    fn report_closed(&mut self, reason: String, ctx: &mut Context<Self>) {
        if self.closing || self.reported {
            return;
        }
        self.reported = true;
        self.report_drops();
        if self.owner.is_none() {
            // Parked: nobody to tell; the call will open its own when it comes.
            preopen::forget(self.call_sid.as_str(), &ctx.address());
        }
        log::warn!(
            "{} call_sid={} tenant={} generation={} reason={reason:?}",
            events::REALTIME_CLOSED,
            self.call_sid,
            self.tenant,
            self.generation
        );
        self.report(RealtimeEvent::Closed { reason });
    }

    /// Reports the run of drops that just ended, if any.
    fn report_drops(&mut self) {
        if let Some(dropped) = self.drops.close() {
            self.report(RealtimeEvent::AudioDropped { dropped });
        }
    }

    /// Queues one frame on the socket, counted in the backlog.
    fn write(&mut self, message: Message) {
        let Some(sink) = &mut self.sink else { return };
        self.backlog.queued(&message);
        if let Err(refused) = sink.write(message) {
            self.backlog.left(&refused);
            log::debug!("REALTIME_WRITE_AFTER_CLOSE call_sid={}", self.call_sid);
        }
    }

    /// Sends what is in `buf` as one text frame.
    fn send_buf(&mut self) {
        let text = callvisor_wire::protocol::frame_text(&mut self.out, &self.buf);
        self.write(Message::Text(text));
    }

    /// Caller audio: written if the session is configured and the writer is
    /// not backed up past its bound; otherwise dropped and counted.
    fn send_append(&mut self, payload: &str) {
        if !self.ready || self.backlog.bytes() > self.max_queued_bytes {
            self.drops.drop_frame(payload.len());
            return;
        }
        self.report_drops();
        self.appends += 1;
        self.buf.clear();
        rt::write_input_audio_append(&mut self.buf, payload);
        self.send_buf();
    }

    /// `session.update`; the opening waits for `session.updated` (a response
    /// created before the update applies would speak 24 kHz PCM into a μ-law call).
    fn configure(&mut self, ctx: &mut Context<Self>) {
        self.buf = rt::session_update_json(&self.session);
        self.send_buf();
        // The update is kilobytes (instructions, tools); audio appends need ~300 bytes.
        self.buf = String::with_capacity(512);
        self.out = bytes::BytesMut::with_capacity(1024);
        ctx.run_later(self.connect_timeout, |act, ctx| {
            if !act.ready {
                act.fail(
                    "no session.updated: the session was not configured".to_owned(),
                    ctx,
                );
            }
        });
    }

    /// The greeting, or the conversation so far (and a nudge to answer if the
    /// caller spoke last, so the caller is not left waiting).
    fn open_conversation(&mut self) {
        match std::mem::replace(&mut self.opening, Opening::Restore(Vec::new())) {
            Opening::Greet => {
                self.buf.clear();
                match &self.session.greeting {
                    Some(greeting) => rt::write_greeting(&mut self.buf, greeting),
                    None => rt::write_response_create(&mut self.buf),
                }
                self.send_buf();
            }
            Opening::Restore(turns) => {
                let caller_spoke_last = turns.last().is_some_and(|(role, _)| *role == Role::User);
                for (role, text) in turns {
                    self.buf.clear();
                    match role {
                        Role::User => rt::write_user_text_item(&mut self.buf, &text),
                        Role::Assistant => rt::write_assistant_text_item(&mut self.buf, &text),
                    }
                    self.send_buf();
                }
                if caller_spoke_last {
                    self.buf.clear();
                    rt::write_response_create(&mut self.buf);
                    self.send_buf();
                }
            }
        }
    }

    fn close(&mut self, ctx: &mut Context<Self>) {
        // The call still counts what this connection dropped.
        self.report_drops();
        self.closing = true;
        self.write(Message::Close(Some(CloseReason::from(CloseCode::Normal))));
        if let Some(sink) = &mut self.sink {
            sink.close();
        }
        ctx.stop();
    }

    fn on_text(&mut self, text: ByteString, ctx: &mut Context<Self>) {
        let event = match rt::parse_server_event(&text) {
            Ok(event) => event,
            Err(e) => {
                log::warn!(
                    "{} call_sid={} tenant={} error={:?}",
                    events::REALTIME_EVENT_INVALID,
                    self.call_sid,
                    self.tenant,
                    Chain(&e)
                );
                return;
            }
        };
        match event {
            ServerEvent::SessionUpdated if !self.ready => {
                self.ready = true;
                // Parked: nobody is on the line yet, and a greeting is a paid
                // response; it starts when a call adopts the session.
                if self.owner.is_some() {
                    self.open_conversation();
                }
                log::info!(
                    "{} call_sid={} tenant={} generation={}",
                    events::REALTIME_READY,
                    self.call_sid,
                    self.tenant,
                    self.generation
                );
                self.report(RealtimeEvent::Ready);
            }
            ServerEvent::AudioDelta { item_id, delta, .. } => {
                let payload = match delta {
                    Cow::Borrowed(d) => text.slice_ref(d),
                    Cow::Owned(d) => ByteString::from(d),
                };
                let item_id = text.slice_ref(item_id);
                self.report(RealtimeEvent::AgentAudio { item_id, payload });
            }
            ServerEvent::SpeechStarted { item_id, .. } => {
                self.report(RealtimeEvent::SpeechStarted {
                    item_id: text.slice_ref(item_id),
                })
            }
            ServerEvent::ResponseDone { .. } => self.report(RealtimeEvent::ResponseDone),
            ServerEvent::InputTranscriptionCompleted {
                item_id,
                transcript,
            } => self.report(RealtimeEvent::UserTranscript {
                item_id: text.slice_ref(item_id),
                text: transcript.into_owned(),
            }),
            ServerEvent::OutputTranscriptDone { transcript, .. } => {
                self.report(RealtimeEvent::AgentTranscript {
                    text: transcript.into_owned(),
                })
            }
            ServerEvent::FunctionCallArgumentsDone {
                call_id,
                name,
                arguments,
                ..
            } => self.report(RealtimeEvent::ToolCall {
                call_id: call_id.to_owned(),
                name: name.to_owned(),
                arguments: arguments.into_owned(),
            }),
            ServerEvent::Error { code, message, .. } => {
                log::warn!(
                    "{} call_sid={} tenant={} code={:?} message={:?}",
                    events::REALTIME_ERROR,
                    self.call_sid,
                    self.tenant,
                    code.unwrap_or(""),
                    message
                );
                if self.ready {
                    self.report(RealtimeEvent::Error {
                        message: message.into_owned(),
                    });
                } else {
                    // The session.update was refused: without it the session speaks
                    // the wrong audio format, so this connection is of no use.
                    self.fail(format!("session.update rejected: {message}"), ctx);
                }
            }
            _ => {}
        }
    }
}

impl Actor for RealtimeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(timeout) = self.park_timeout {
            ctx.run_later(timeout, |act, ctx| {
                if act.owner.is_none() {
                    log::info!(
                        "{} call_sid={} tenant={} reason=not_adopted",
                        events::REALTIME_PREOPEN_EXPIRED,
                        act.call_sid,
                        act.tenant
                    );
                    preopen::forget(act.call_sid.as_str(), &ctx.address());
                    act.close(ctx);
                }
            });
        }
        let url = realtime_url(&self.endpoint.url, &self.session.model);
        let key = self.endpoint.api_key.clone();
        let timeout = self.connect_timeout;
        let connect = async move {
            crate::tls::install_provider();
            let client = awc::Client::builder()
                // HTTP/2 cannot carry a WebSocket upgrade in awc: offer HTTP/1.1 only.
                .max_http_version(awc::http::Version::HTTP_11)
                .timeout(timeout)
                .finish();
            let request = client
                .ws(url)
                .bearer_auth(&*key)
                .max_frame_size(MAX_REALTIME_FRAME_BYTES)
                .connect();
            match actix_rt::time::timeout(timeout, request).await {
                Ok(Ok((_response, framed))) => Ok(framed),
                Ok(Err(e)) => Err(Chain(&e).to_string()),
                Err(_) => Err(format!("no answer within {timeout:?}")),
            }
        };
        ctx.spawn(
            connect
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(framed) => {
                        let (sink, stream) = framed.split();
                        ctx.add_stream(stream);
                        let sink = CountingSink::new(sink, act.backlog.clone());
                        act.sink = Some(SinkWrite::new(sink, ctx));
                        log::info!(
                            "{} call_sid={} tenant={} generation={}",
                            events::REALTIME_CONNECTED,
                            act.call_sid,
                            act.tenant,
                            act.generation
                        );
                        act.last_frame = Instant::now();
                        act.configure(ctx);
                        ctx.run_interval(LIVENESS_INTERVAL, |act, ctx| {
                            if act.last_frame.elapsed() > SILENCE_LIMIT {
                                act.fail(
                                    "no frame from the server: connection presumed dead".to_owned(),
                                    ctx,
                                );
                            } else {
                                act.write(Message::Ping(bytes::Bytes::new()));
                            }
                        });
                    }
                    Err(reason) => {
                        act.fail(format!("connect failed: {reason}"), ctx);
                    }
                }),
        );
    }
}

impl Handler<ToRealtime> for RealtimeActor {
    type Result = ();

    fn handle(&mut self, msg: ToRealtime, ctx: &mut Self::Context) {
        match msg {
            ToRealtime::Audio { payload } => self.send_append(&payload),
            ToRealtime::Truncate {
                item_id,
                audio_end_ms,
            } => {
                self.buf.clear();
                rt::write_truncate(&mut self.buf, &item_id, 0, audio_end_ms);
                self.send_buf();
            }
            ToRealtime::ToolOutput {
                call_id,
                output,
                respond,
            } => {
                self.buf.clear();
                rt::write_function_call_output(&mut self.buf, &call_id, &output);
                self.send_buf();
                if respond {
                    self.buf.clear();
                    rt::write_response_create(&mut self.buf);
                    self.send_buf();
                }
            }
            ToRealtime::Note { text, respond } => {
                self.buf.clear();
                rt::write_user_text_item(&mut self.buf, &text);
                self.send_buf();
                if respond {
                    self.buf.clear();
                    rt::write_response_create(&mut self.buf);
                    self.send_buf();
                }
            }
            ToRealtime::Close => self.close(ctx),
            ToRealtime::Adopt { owner, generation } => {
                self.generation = generation;
                for event in std::mem::take(&mut self.parked_events) {
                    owner.do_send(FromRealtime { generation, event });
                }
                self.owner = Some(owner);
                // Configured while parked: the greeting was held for this moment.
                if self.ready {
                    self.open_conversation();
                }
            }
        }
    }
}

impl StreamHandler<Result<Frame, WsProtocolError>> for RealtimeActor {
    fn handle(&mut self, item: Result<Frame, WsProtocolError>, ctx: &mut Self::Context) {
        self.last_frame = Instant::now();
        match item {
            Ok(Frame::Text(bytes)) => match ByteString::try_from(bytes) {
                Ok(text) => self.on_text(text, ctx),
                Err(_) => log::warn!(
                    "{} call_sid={} error=\"text frame is not UTF-8\"",
                    events::REALTIME_EVENT_INVALID,
                    self.call_sid
                ),
            },
            Ok(Frame::Ping(payload)) => self.write(Message::Pong(payload)),
            Ok(Frame::Close(reason)) => {
                self.fail(format!("closed by the server: {reason:?}"), ctx);
            }
            Ok(Frame::Pong(_) | Frame::Binary(_) | Frame::Continuation(_)) => {}
            Err(e) => {
                self.fail(format!("protocol error: {}", Chain(&e)), ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        self.fail("connection ended".to_owned(), ctx);
    }
}

impl Handler<GetUpstreamStats> for RealtimeActor {
    type Result = MessageResult<GetUpstreamStats>;

    fn handle(&mut self, _msg: GetUpstreamStats, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(UpstreamStats {
            queued_bytes: self.backlog.bytes(),
            appends: self.appends,
            dropped: self.drops.total(),
            drop_reports: self.drops.reports(),
        })
    }
}

impl WriteHandler<WsProtocolError> for RealtimeActor {
    fn error(&mut self, err: WsProtocolError, ctx: &mut Self::Context) -> Running {
        self.report_closed(format!("write failed: {}", Chain(&err)), ctx);
        Running::Stop
    }
}
