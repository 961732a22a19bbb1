//! TwilioStreamActor: the Twilio Media Streams socket, and nothing else.
//!
//! It parses Twilio's frames into typed [`FromTwilio`] reports for its call
//! and writes `media`, `mark` and `clear` for it. On `start` it checks the
//! stream token (missing, forged, expired or bound to another call: the
//! socket is closed and nothing is opened upstream), then asks the
//! [`CallSupervisor`](crate::supervisor::CallSupervisor) for the call's
//! actor, which is started on this socket's worker thread. Caller audio
//! that arrives meanwhile is held, in order.
//!
//! `ws::WebsocketContext` (actix-web-actors, deprecated upstream for
//! actix-ws) appears in this file only, so a later swap touches one module.
//!
//! Liveness: `last_seen` is refreshed by every inbound frame (Twilio sends
//! media every 20 ms, so Ping/Pong alone would be the wrong signal); a socket
//! silent for the idle timeout is closed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws;
use bytes::BytesMut;
use bytestring::ByteString;

use crate::call::messages::{FromTwilio, SocketId, ToTwilio};
use crate::events;
use crate::ids::{CallSid, StreamSid, TenantId};
use crate::ports::StreamAuthority;
use crate::supervisor::messages::AttachStream;
use callvisor_wire::protocol::twilio::{self, TwilioInbound};
use callvisor_wire::protocol::{frame_text, json};

/// How often liveness is checked and a ping sent.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// Name of the `<Parameter>` carrying the tenant.
pub const TENANT_PARAMETER: &str = "tenant_id";
/// Name of the `<Parameter>` carrying the stream token.
pub const TOKEN_PARAMETER: &str = "stream_token";
/// Invalid frames logged one by one before the log is sampled.
const INVALID_FRAMES_LOGGED: u64 = 10;

static NEXT_SOCKET: AtomicU64 = AtomicU64::new(1);

enum State {
    /// Waiting for Twilio's `start`.
    AwaitingStart,
    /// Token accepted; waiting for the call's actor. Audio is held.
    Attaching {
        call_sid: CallSid,
        held: Vec<ByteString>,
    },
    /// Audio flows to the call.
    Live {
        call_sid: CallSid,
        call: Recipient<FromTwilio>,
    },
    /// Refused or finished.
    Closed,
}

/// One Twilio media socket.
pub struct TwilioStreamActor {
    socket: SocketId,
    authority: Arc<dyn StreamAuthority>,
    supervisor: Recipient<AttachStream>,
    idle_timeout: Duration,
    max_held: usize,
    state: State,
    stream_sid: Option<StreamSid>,
    last_seen: Instant,
    invalid_frames: u64,
    /// Reused for every outgoing frame's JSON.
    buf: String,
    /// Reused for every outgoing frame's bytes: its allocation comes back once the
    /// encoder has copied the previous frame, so writing allocates nothing.
    out: BytesMut,
    /// Reused for mark names (`m<number>`).
    mark_name: String,
    told_call: bool,
}

impl TwilioStreamActor {
    /// A socket that checks tokens with `authority` and attaches through `supervisor`.
    pub fn new(
        authority: Arc<dyn StreamAuthority>,
        supervisor: Recipient<AttachStream>,
        idle_timeout: Duration,
        max_held: usize,
    ) -> Self {
        Self {
            socket: NEXT_SOCKET.fetch_add(1, Ordering::Relaxed),
            authority,
            supervisor,
            idle_timeout,
            max_held,
            state: State::AwaitingStart,
            stream_sid: None,
            last_seen: Instant::now(),
            invalid_frames: 0,
            buf: String::with_capacity(512),
            out: BytesMut::with_capacity(1024),
            mark_name: String::with_capacity(24),
            told_call: false,
        }
    }

    fn call_sid(&self) -> &str {
        match &self.state {
            State::Attaching { call_sid, .. } | State::Live { call_sid, .. } => call_sid.as_str(),
            _ => "-",
        }
    }

    fn refuse(&mut self, ctx: &mut ws::WebsocketContext<Self>, call_sid: &str, reason: &str) {
        log::warn!(
            "{} call_sid={call_sid} reason={reason:?}",
            events::STREAM_REJECTED
        );
        self.state = State::Closed;
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Policy,
            description: Some(reason.to_owned()),
        }));
        ctx.stop();
    }

    fn on_text(&mut self, text: ByteString, ctx: &mut ws::WebsocketContext<Self>) {
        let frame = match twilio::parse_inbound(&text) {
            Ok(frame) => frame,
            Err(e) => {
                self.invalid_frames += 1;
                if self.invalid_frames <= INVALID_FRAMES_LOGGED
                    || self.invalid_frames.is_multiple_of(1000)
                {
                    log::warn!(
                        "{} call_sid={} count={} error={:?}",
                        events::TWILIO_FRAME_INVALID,
                        self.call_sid(),
                        self.invalid_frames,
                        e.to_string()
                    );
                }
                return;
            }
        };
        match frame {
            TwilioInbound::Media { payload, .. } => {
                let payload = text.slice_ref(payload);
                match &mut self.state {
                    State::Live { call, .. } => call.do_send(FromTwilio::Audio { payload }),
                    State::Attaching { held, .. } if held.len() < self.max_held => {
                        held.push(payload)
                    }
                    State::Attaching { call_sid, held } => log::warn!(
                        "{} call_sid={call_sid} held={}",
                        events::AUDIO_DROPPED,
                        held.len()
                    ),
                    State::AwaitingStart | State::Closed => {}
                }
            }
            TwilioInbound::Mark { name } => {
                if let State::Live { call, .. } = &self.state {
                    let name = match name {
                        std::borrow::Cow::Borrowed(n) => text.slice_ref(n),
                        std::borrow::Cow::Owned(n) => ByteString::from(n),
                    };
                    call.do_send(FromTwilio::MarkPlayed { name });
                }
            }
            TwilioInbound::Start(info) => {
                if !matches!(self.state, State::AwaitingStart) {
                    return; // a repeated start changes nothing
                }
                let tenant = info.custom_parameters.get(TENANT_PARAMETER);
                let token = info.custom_parameters.get(TOKEN_PARAMETER);
                let (Some(tenant), Some(token)) = (tenant, token) else {
                    return self.refuse(ctx, info.call_sid, "missing tenant or stream token");
                };
                let (call_sid, tenant_id, stream_sid) = match (
                    CallSid::parse(info.call_sid),
                    TenantId::parse(tenant),
                    StreamSid::parse(info.stream_sid),
                ) {
                    (Ok(c), Ok(t), Ok(s)) => (c, t, s),
                    _ => return self.refuse(ctx, "-", "malformed call, tenant or stream id"),
                };
                if let Err(reason) =
                    self.authority
                        .check(token, call_sid.as_str(), tenant_id.as_str())
                {
                    return self.refuse(ctx, call_sid.as_str(), &reason);
                }
                self.stream_sid = Some(stream_sid.clone());
                self.state = State::Attaching {
                    call_sid: call_sid.clone(),
                    held: Vec::with_capacity(16),
                };
                let attach = AttachStream {
                    call_sid,
                    tenant_id,
                    stream_sid,
                    twilio: ctx.address().recipient(),
                    socket: self.socket,
                    arbiter: Arbiter::current(),
                };
                ctx.spawn(
                    self.supervisor.send(attach).into_actor(self).map(
                        |reply, act, ctx| match reply {
                            Ok(Ok(call)) => {
                                let State::Attaching { call_sid, held } =
                                    std::mem::replace(&mut act.state, State::Closed)
                                else {
                                    return;
                                };
                                for payload in held {
                                    call.do_send(FromTwilio::Audio { payload });
                                }
                                act.state = State::Live { call_sid, call };
                            }
                            Ok(Err(e)) => {
                                let sid = act.call_sid().to_owned();
                                act.refuse(ctx, &sid, &e.to_string());
                            }
                            Err(e) => {
                                let sid = act.call_sid().to_owned();
                                act.refuse(ctx, &sid, &format!("supervisor unavailable: {e}"));
                            }
                        },
                    ),
                );
            }
            TwilioInbound::Stop => {
                if let State::Live { call, .. } = &self.state {
                    call.do_send(FromTwilio::Stopped {
                        socket: self.socket,
                    });
                    // `stop` is the end; the close that follows need not be reported.
                    self.told_call = true;
                }
                ctx.close(Some(ws::CloseCode::Normal.into()));
                ctx.stop();
            }
            TwilioInbound::Dtmf { digit } => {
                if let State::Live { call, .. } = &self.state {
                    call.do_send(FromTwilio::Dtmf {
                        digit: digit.into_owned(),
                    });
                }
            }
            TwilioInbound::Connected | TwilioInbound::Unknown { .. } => {}
        }
    }
}

impl Actor for TwilioStreamActor {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(HEARTBEAT_INTERVAL, |act, ctx| {
            if act.last_seen.elapsed() > act.idle_timeout {
                log::warn!(
                    "{} call_sid={} idle_ms={}",
                    events::TWILIO_IDLE_TIMEOUT,
                    act.call_sid(),
                    act.last_seen.elapsed().as_millis()
                );
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        // Exactly once: the call learns its socket is gone.
        if !self.told_call {
            self.told_call = true;
            if let State::Live { call, .. } = &self.state {
                call.do_send(FromTwilio::SocketClosed {
                    socket: self.socket,
                });
            }
        }
        Running::Stop
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for TwilioStreamActor {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_seen = Instant::now();
        match msg {
            Ok(ws::Message::Text(text)) => self.on_text(text, ctx),
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Pong(_) | ws::Message::Nop) => {}
            Ok(ws::Message::Binary(_) | ws::Message::Continuation(_)) => {
                self.invalid_frames += 1;
                log::warn!(
                    "{} call_sid={} error=\"binary or fragmented frame\"",
                    events::TWILIO_FRAME_INVALID,
                    self.call_sid()
                );
            }
            Err(e) => {
                log::warn!(
                    "{} call_sid={} error={:?}",
                    events::TWILIO_FRAME_INVALID,
                    self.call_sid(),
                    e.to_string()
                );
                ctx.stop();
            }
        }
    }
}

impl Handler<ToTwilio> for TwilioStreamActor {
    type Result = ();

    fn handle(&mut self, msg: ToTwilio, ctx: &mut Self::Context) {
        let Some(stream_sid) = &self.stream_sid else {
            return;
        };
        match msg {
            ToTwilio::Audio { payload, mark } => {
                // Media and its mark are queued together and go out in one flush
                // (the context encodes everything queued in one poll into one write).
                self.buf.clear();
                twilio::write_media(&mut self.buf, stream_sid.as_str(), &payload);
                let media = frame_text(&mut self.out, &self.buf);
                self.mark_name.clear();
                self.mark_name.push('m');
                json::push_u64(&mut self.mark_name, mark);
                self.buf.clear();
                twilio::write_mark(&mut self.buf, stream_sid.as_str(), &self.mark_name);
                let mark = frame_text(&mut self.out, &self.buf);
                ctx.text(media);
                ctx.text(mark);
            }
            ToTwilio::Clear => {
                self.buf.clear();
                twilio::write_clear(&mut self.buf, stream_sid.as_str());
                ctx.text(frame_text(&mut self.out, &self.buf));
            }
            ToTwilio::Close => {
                // Replaced or ended by the call: it knows, do not report back.
                self.told_call = true;
                self.state = State::Closed;
                ctx.close(Some(ws::CloseCode::Normal.into()));
                ctx.stop();
            }
        }
    }
}
